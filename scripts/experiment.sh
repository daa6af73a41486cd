#!/usr/bin/env bash
# The RESULTS.md experiment (issue #5): GRPO, GiGPO and SPEAR(GiGPO) on the default
# household preset, 3 seeds each, equal iterations. Each seed's three runs start from the
# same supervised warm start (`spear sft`), so the learners differ only in RL.
#
#   bash scripts/experiment.sh [OUT_DIR] [extra --set args...]     (SEEDS="0 1 2" by default)
#
# SFT_SEED=N: every seed's runs start from the one warm start of seed N (the seed spread is
# then the RL's alone; it saves two SFT runs). By default each seed has its own warm start.
#
# Writes OUT_DIR (default runs/experiment): one run directory per (learner, seed), the
# combined report OUT_DIR/report.html and the summary table OUT_DIR/summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/experiment}
shift || true
EXTRA=("$@")
cargo build --release -p spear
SPEAR=./target/release/spear
mkdir -p "$OUT"
runs=()
for seed in ${SEEDS:-0 1 2}; do
  sft_seed=${SFT_SEED:-$seed}
  sft="$OUT/sft-s$sft_seed-sft"
  if [ ! -f "$sft/checkpoints/latest" ]; then
    rm -rf "$sft"
    $SPEAR sft --preset household-tiny --set run.out_dir="\"$OUT\"" --set run.name=sft-s$sft_seed \
      --set run.seed=$sft_seed "${EXTRA[@]/#/--set=}" 2>&1 | tail -3
  fi
  for algo in grpo gigpo spear; do
    name=$algo-s$seed
    if [ -f "$OUT/$name/checkpoints/latest" ] && grep -q . "$OUT/$name/metrics.jsonl" 2>/dev/null; then
      $SPEAR train --resume "$OUT/$name" 2>&1 | tail -2
    else
      rm -rf "${OUT:?}/$name"
      $SPEAR train --preset household-tiny-$algo --set run.out_dir="\"$OUT\"" --set run.name=$name \
        --set run.seed=$seed --set model.init_checkpoint="\"$sft\"" "${EXTRA[@]/#/--set=}" 2>&1 | tail -3
    fi
    runs+=("$OUT/$name")
  done
done
$SPEAR report "${runs[@]}" --out "$OUT/report.html"
python3 scripts/summarize_experiment.py "$OUT" > "$OUT/summary.md"
cat "$OUT/summary.md"
