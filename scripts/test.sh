#!/usr/bin/env bash
# The whole test suite: the README's test command (`bash scripts/test.sh`).
#
# It first installs the system packages the suite needs and refuses to go on
# without them, so that no test skips silently:
#   - bubblewrap: the math sandbox's isolation boundary (model-written code
#     never runs unisolated unless a test asks for rlimits-only by name);
#   - chromium: the report render test drives headless Chromium;
#   - python3 with venv and pip: the sandbox's cached venv (numpy, sympy).
# Then it runs `cargo test --workspace` (extra arguments go to cargo test), and
# finally the Python package's tests: `pip install ./crates/spear-py` into a cached
# venv (maturin builds the extension in the dev profile, whose optimised
# dependencies cargo test has just built), then pytest on crates/spear-py/tests.
# A failure to build or install the package fails the script: nothing is skipped.
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

# The Python package (crates/spear-py, module spear_rs).
py_start=$SECONDS
PY_VENV="${SPEAR_PY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/spear/py-test-venv}"
if [ ! -x "$PY_VENV/bin/python" ]; then
  python3 -m venv "$PY_VENV" || { echo "scripts/test.sh: cannot create the venv $PY_VENV for the Python tests" >&2; exit 1; }
fi
"$PY_VENV/bin/python" -m pip install -q --disable-pip-version-check "maturin>=1.9,<2" "pytest>=7" numpy \
  || { echo "scripts/test.sh: cannot install maturin/pytest/numpy into $PY_VENV (PyPI needed once)" >&2; exit 1; }
# `pip install ./crates/spear-py` is the documented install; the dev profile reuses cargo test's build.
PATH="$PY_VENV/bin:$PATH" MATURIN_PEP517_ARGS="--profile dev" "$PY_VENV/bin/python" -m pip install -q --disable-pip-version-check \
  --force-reinstall --no-deps --no-build-isolation ./crates/spear-py \
  || { echo "scripts/test.sh: building the Python package (pip install ./crates/spear-py) failed" >&2; exit 1; }
"$PY_VENV/bin/python" -m pytest -q -p no:cacheprovider crates/spear-py/tests
echo "scripts/test.sh: Python package built and tested in $((SECONDS - py_start)) s"

# Rollouts on a real vLLM server (issue 14): vLLM 0.32.0's CPU build in a cached venv (installed
# on first use, ~6 GB), an exported SmolLM2-135M policy, log-prob agreement, pause/reload/resume
# and 2 iterations of `spear train` through it (scripts/test-vllm.sh says what it checks).
vllm_start=$SECONDS
SPEAR_BIN="$(realpath "${CARGO_TARGET_DIR:-target}")/debug/spear" bash scripts/test-vllm.sh
echo "scripts/test.sh: real-vLLM checks passed in $((SECONDS - vllm_start)) s"
