#!/usr/bin/env bash
# The whole test suite: the README's test command (`bash scripts/test.sh`).
#
# It first installs the system packages the suite needs and refuses to go on
# without them, so that no test skips silently:
#   - bubblewrap: the math sandbox's isolation boundary (model-written code
#     never runs unisolated unless a test asks for rlimits-only by name);
#   - chromium: the report render test drives headless Chromium;
#   - python3 with venv and pip: the sandbox's cached venv (numpy, sympy).
# Then it runs `cargo test --workspace`. Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "scripts/test.sh: installing ${need[*]} (apt-get)" >&2
  S=$([ "$(id -u)" = 0 ] || echo sudo)
  if ! ($S apt-get update -qq && DEBIAN_FRONTEND=noninteractive $S apt-get install -y -qq "${need[@]}") >/dev/null; then
    echo "scripts/test.sh: could not install ${need[*]}; install them with" >&2
    echo "  sudo apt-get install ${need[*]}" >&2
    echo "and run again (the sandbox and report tests need them and do not skip)." >&2
    exit 1
  fi
fi

cargo test --workspace "$@"
