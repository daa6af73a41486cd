#!/usr/bin/env bash
# Golden runs: a behaviour check for refactors of the trainer (issue 12).
#
#   bash scripts/golden.sh record   # run the three tiny presets, store their metrics
#   bash scripts/golden.sh check    # run them again, compare exactly with the recording
#
# Three iterations each of household-tiny, webshop-tiny and math-tiny (fixed seeds; a few
# size overrides, below, keep the whole check to a few minutes on 2 cores). What is stored:
# metrics.jsonl and eval.jsonl of each run with the wall-clock fields removed (`time`,
# `elapsed`, `gen_tokens_per_s`, `train_tokens_per_s`), keys sorted, plus the CPU's model name
# and flags. Floating point differs between CPU kinds (AVX2, AVX-512, AMX), so a seed
# reproduces its metrics exactly only on the same kind of machine: `check` refuses to compare
# on a machine whose CPU differs from the recording's. To check a change against the code
# before it on a new machine, record from a worktree of the earlier commit first:
#
#   git worktree add /tmp/pre <commit>
#   (cd /tmp/pre && GOLDEN_DIR=$PWD/../golden-pre bash scripts/golden.sh record)
#   GOLDEN_DIR=/tmp/golden-pre bash scripts/golden.sh check
#
# GOLDEN_DIR (default .cache/golden, git-ignored) holds the recording; SPEAR_BIN overrides the
# binary (default: the release build, built first; CARGO_TARGET_DIR is respected).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
case "$mode" in
  record | check) ;;
  *)
    echo "usage: bash scripts/golden.sh record|check" >&2
    exit 2
    ;;
esac
GOLDEN_DIR=${GOLDEN_DIR:-.cache/golden}
mkdir -p "$GOLDEN_DIR"
GOLDEN_DIR=$(cd "$GOLDEN_DIR" && pwd)

if [ -z "${SPEAR_BIN:-}" ]; then
  cargo build --release -p spear >&2
  SPEAR_BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/spear
fi

cpu_id() {
  # The CPU's model name and its feature flags (sorted): what decides floating point here.
  local model flags
  model=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
  flags=$(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2- | tr ' ' '\n' | sed '/^$/d' | sort | tr '\n' ' ')
  printf 'model: %s\nflags: %s\n' "$model" "$flags"
}

if [ "$mode" = check ]; then
  if [ ! -f "$GOLDEN_DIR/cpu.txt" ]; then
    echo "golden: no recording in $GOLDEN_DIR: run 'bash scripts/golden.sh record' on the code before the change first" >&2
    exit 1
  fi
  if [ "$(cpu_id)" != "$(cat "$GOLDEN_DIR/cpu.txt")" ]; then
    echo "golden: refusing to compare: this CPU differs from the recording's, and floating point differs between CPU kinds." >&2
    echo "  recorded on: $(head -1 "$GOLDEN_DIR/cpu.txt")" >&2
    echo "  this machine: $(cpu_id | head -1)" >&2
    echo "  Record again here from a worktree of the earlier commit (see the head of this script)." >&2
    exit 3
  fi
fi

# preset  then its overrides (the same for record and check)
PRESETS=(household-tiny webshop-tiny math-tiny)
common_sets=(run.iterations=3 run.eval_every=3 run.eval_before=true run.seed=0 run.log_episodes=2)
sets_for() {
  case "$1" in
    household-tiny)
      echo "env.household.train_games=200 env.household.eval_games=24 sft.games=80 sft.epochs=1 eval.episodes=24"
      ;;
    webshop-tiny)
      echo "env.webshop.products=600 sft.games=30 sft.epochs=1 eval.episodes=8 env.tasks_per_iter=4 env.group_size=4"
      ;;
    math-tiny)
      echo "env.math.train_problems=16 env.math.eval_problems=4 env.math.eval_k=2 sft.games=8 sft.epochs=1"
      ;;
  esac
}

normalise() {
  # JSON lines → one canonical line each (sorted keys), wall-clock fields removed.
  python3 - "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    v = json.loads(line)
    for k in ("time", "elapsed", "gen_tokens_per_s", "train_tokens_per_s"):
        v.pop(k, None)
    print(json.dumps(v, sort_keys=True))
PY
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=$work/out
mkdir -p "$out"
for p in "${PRESETS[@]}"; do
  echo "golden: $p (3 iterations)" >&2
  args=(train --preset "$p" --set "run.out_dir=\"$work/runs\"" --set "run.name=$p")
  for s in "${common_sets[@]}" $(sets_for "$p"); do
    args+=(--set "$s")
  done
  if ! "$SPEAR_BIN" "${args[@]}" >"$work/$p.log" 2>&1; then
    tail -20 "$work/$p.log" >&2
    echo "golden: $p failed" >&2
    exit 1
  fi
  normalise "$work/runs/$p/metrics.jsonl" >"$out/$p.metrics.jsonl"
  normalise "$work/runs/$p/eval.jsonl" >"$out/$p.eval.jsonl"
done
cpu_id >"$out/cpu.txt"

if [ "$mode" = record ]; then
  rm -f "$GOLDEN_DIR"/*.jsonl "$GOLDEN_DIR"/cpu.txt
  cp "$out"/* "$GOLDEN_DIR"/
  git rev-parse HEAD >"$GOLDEN_DIR/commit.txt" 2>/dev/null || true
  echo "golden: recorded in $GOLDEN_DIR ($(ls "$GOLDEN_DIR" | wc -l) files)"
  exit 0
fi

status=0
for f in "$out"/*.jsonl; do
  name=$(basename "$f")
  if ! diff -u "$GOLDEN_DIR/$name" "$f" >"$work/diff.txt"; then
    echo "golden: $name DIFFERS from the recording (commit $(cat "$GOLDEN_DIR/commit.txt" 2>/dev/null || echo '?')):" >&2
    head -40 "$work/diff.txt" >&2
    status=1
  else
    echo "golden: $name identical ($(wc -l <"$f") records)"
  fi
done
[ $status = 0 ] && echo "golden: check passed against $(cat "$GOLDEN_DIR/commit.txt" 2>/dev/null || echo 'the recording')"
exit $status
