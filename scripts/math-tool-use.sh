#!/usr/bin/env bash
# The math tool-use experiment (issue 18, "the mechanism in miniature"; RESULTS.md): a tiny
# character-level policy on generated products of two 2-digit numbers ("Compute $47 \times
# 83$."), which it cannot multiply in its head but can copy into `print(47 * 83)`. The warm
# start rarely calls the interpreter; RL arms then start from that one checkpoint:
#
#   spear            math-tiny-spear (Dr.BoT(GRPO) + self-imitation replay + Clip-Cov +
#                    the Qwen3 math tool-call reward with its cosine decay)
#   spear-nobonus    the same without the tool-call reward (rl.reward.toolcall_reward = none)
#   spear-noreplay   the same without replay (rl.replay.enabled = false)
#   spear-nocovrep   the same without Clip-Cov on replay: its covariance band is moved out of
#                    reach (rl.loss.clip_cov_lb_replay = 1e12, ub 2e12), so no replay token is
#                    dropped and the replay loss is the PPO-clipped one alone (verl refuses a
#                    ratio of 0, and n_clip is at least 1 whenever a token is in the band)
#   grpo             math-tiny-grpo (the math Dr.BoT baseline: vanilla PPO loss, no replay,
#                    no tool-call reward)
#
#   bash scripts/math-tool-use.sh [OUT_DIR]
#
# ARMS="spear spear-nobonus ..." and SEEDS="0 1 2 3 4" (the defaults) choose the runs. Runs
# already complete are kept (delete OUT_DIR to start over). Writes OUT_DIR (default
# runs/math-tool-use): the two warm-start stages, one run per (arm, seed), the combined
# report OUT_DIR/report.html and the summary OUT_DIR/summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/math-tool-use}
ITERS=${ITERS:-20}
# SPEAR_BIN=path: use that binary instead of building one.
if [ -z "${SPEAR_BIN:-}" ]; then cargo build --release -p spear; fi
SPEAR=${SPEAR_BIN:-./target/release/spear}
mkdir -p "$OUT"
# The problems, the policy and the evaluation, shared by every stage and arm.
COMMON=(
  --set run.out_dir="\"$OUT\""
  --set 'env.math.families=["multiply"]' --set 'env.math.levels=[1]'
  --set env.math.train_problems=2048 --set env.math.eval_problems=128 --set env.math.eval_k=1
  --set env.math.sandbox.concurrency=8
  # Evaluate the sampling policy itself (T = 1, no top-p cut), so its tool-call rate shows.
  --set eval.top_p=1.0
  --set sft.games=2048
)
# Warm start, stage 1: every demonstration calls the tool (the policy learns to copy the two
# numbers into the call and the tool's output into the box); stage 2: one pass over
# demonstrations of which 10 % call the tool, at a tenth of the learning rate (it mostly
# answers directly from then on, and its rare calls still copy).
stage() {
  local name=$1; shift
  if [ ! -f "$OUT/$name-sft/checkpoints/latest" ]; then
    rm -rf "${OUT:?}/$name-sft"
    $SPEAR sft --preset math-tiny-grpo --set run.name="$name" "${COMMON[@]}" "$@" 2>&1 | tail -3
  fi
}
stage tool-sft1 --set sft.epochs=4 --set env.math.demo_tool_rate=1.0
stage tool-sft2 --set sft.epochs=1 --set sft.lr=3e-4 --set env.math.demo_tool_rate=0.1 \
  --set model.init_checkpoint="\"$OUT/tool-sft1-sft\""
runs=()
for seed in ${SEEDS:-0 1 2 3 4}; do
  for arm in ${ARMS:-spear spear-nobonus grpo spear-noreplay spear-nocovrep}; do
    case $arm in
      spear) preset=math-tiny-spear; extra=() ;;
      spear-nobonus) preset=math-tiny-spear; extra=(--set rl.reward.toolcall_reward=none) ;;
      spear-noreplay) preset=math-tiny-spear; extra=(--set rl.replay.enabled=false) ;;
      spear-nocovrep) preset=math-tiny-spear
        extra=(--set rl.loss.clip_cov_lb_replay=1e12 --set rl.loss.clip_cov_ub_replay=2e12) ;;
      grpo) preset=math-tiny-grpo; extra=() ;;
      *) echo "unknown arm $arm" >&2; exit 2 ;;
    esac
    name=$arm-s$seed
    runs+=("$OUT/$name")
    if [ -f "$OUT/$name/eval.jsonl" ] && [ "$(grep -c . "$OUT/$name/metrics.jsonl")" = "$ITERS" ]; then
      continue
    fi
    rm -rf "${OUT:?}/$name"
    # T_decay and T_warm follow the run's length (the preset scales them to its own 10).
    $SPEAR train --preset $preset --set run.name="$name" --set run.seed="$seed" "${COMMON[@]}" \
      --set sft.enabled=false --set model.init_checkpoint="\"$OUT/tool-sft2-sft\"" \
      --set env.tasks_per_iter=16 --set env.group_size=8 \
      --set run.iterations="$ITERS" --set run.eval_every=5 --set run.log_episodes=16 \
      --set rl.reward.max_toolcall_steps="$ITERS" --set rl.replay.max_replay_loss_steps="$ITERS" \
      ${extra[@]+"${extra[@]}"} 2>&1 | tail -2
  done
done
$SPEAR report "${runs[@]}" --out "$OUT/report.html"
python3 scripts/summarize_math_tool_use.py "$OUT" > "$OUT/summary.md"
cat "$OUT/summary.md"
