#!/usr/bin/env bash
# SPEAR's claim in a sparse household setting, with equal budgets (issue 18; RESULTS.md,
# "Issue 18: SPEAR on the household in a sparse setting"). The two-stage household tasks
# (clean, heat or cool an object, then place it: `pick_{clean,heat,cool}_then_place_in_recep`)
# with a warm start that has seen few heat and cool demonstrations, so the tiny policy wins
# those two task types rarely at the start of RL. Every arm starts from that one warm start
# and runs the same iterations:
#
#   drbot-grpo      Dr.BoT(GRPO): Dr.BoT's response filters, its 75 % group filter and
#                   power-of-two subsample, vanilla PPO loss (clip-higher, dual clip),
#                   seq-mean-token-sum-norm; no replay, no tool-call reward (spec §3)
#   drbot-gigpo     Dr.BoT(GiGPO): the same with GiGPO advantages
#   spear-grpo      SPEAR on Dr.BoT(GRPO): + self-imitation replay (P50 baseline, γ(t) ramp),
#                   Clip-Cov on the on-policy and replayed samples, the cosine tool-call reward
#   spear           SPEAR on Dr.BoT(GiGPO) (the household-tiny-spear learner)
#   spear-noreplay  SPEAR without replay (rl.replay.enabled = false)
#   spear-nobonus   SPEAR without the tool-call reward (rl.reward.toolcall_reward = none)
#   spear-nocovrep  SPEAR without Clip-Cov on replay: its covariance band is moved out of reach
#                   (rl.loss.clip_cov_lb_replay = 1e12, ub 2e12; verl refuses a ratio of 0)
#
# Equal budgets: every arm has the same group filter and subsample, so each iteration trains
# the same number of on-policy step-samples (a power of two; 256 here) in the same number of
# optimizer steps; the replay arms add their γ(t)-weighted replay samples on top, as SPEAR does.
# In the household every environment step counts as a "tool call" (verl-agent's
# EpisodeRewardManager, spec §2.2): the bonus is min(1, 0.1 × episode length), decaying on a
# cosine to 0 over the run, so early on it rewards acting for longer (exploring).
#
#   bash scripts/household-sparse.sh [OUT_DIR]
#
# ARMS="…" and SEEDS="0 1 2 3 4" (the defaults: every arm above, five seeds) choose the runs;
# JOBS=N runs N at a time (each with RAYON_NUM_THREADS = cores / N; default 1). Complete runs
# are kept (delete OUT_DIR to start over). ITERS (default 30) sets the run length; T_decay and
# T_warm follow it. Writes OUT_DIR (default runs/household-sparse): the warm start, one run per
# (arm, seed) with its log, the combined report OUT_DIR/report.html (every complete run in
# OUT_DIR) and OUT_DIR/summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/household-sparse}
ITERS=${ITERS:-30}
JOBS=${JOBS:-1}
# SPEAR_BIN=path: use that binary instead of building one.
if [ -z "${SPEAR_BIN:-}" ]; then cargo build --release -p spear; fi
SPEAR=${SPEAR_BIN:-./target/release/spear}
CORES=$(nproc)
THREADS=$(( CORES / JOBS > 0 ? CORES / JOBS : 1 ))
mkdir -p "$OUT"
# The tasks, the evaluation and the warm start, shared by every arm.
COMMON=(
  --set run.out_dir="\"$OUT\""
  --set 'env.household.task_types=["pick_clean_then_place_in_recep","pick_heat_then_place_in_recep","pick_cool_then_place_in_recep"]'
  --set 'env.household.demo_share={pick_heat_then_place_in_recep=0.05, pick_cool_then_place_in_recep=0.05}'
  --set env.max_turns=12
  --set eval.episodes=256
)
# The warm start: the preset's searching expert on its 600 games for 8 epochs, but only about
# one in twenty heat and cool games keeps its demonstration (env.household.demo_share): the
# policy learns the household's words and the clean-then-place routine, and wins the heat and
# cool tasks rarely (measured: 0-9 % at T = 0.4), which RL then has to learn from rare wins.
if [ ! -f "$OUT/warm-sft/checkpoints/latest" ]; then
  rm -rf "${OUT:?}/warm-sft"
  RAYON_NUM_THREADS=$CORES $SPEAR sft --preset household-tiny-spear --set run.name=warm \
    "${COMMON[@]}" --set sft.epochs=8 2>&1 | tail -3
fi
running=0
for seed in ${SEEDS:-0 1 2 3 4}; do
  for arm in ${ARMS:-drbot-grpo drbot-gigpo spear-grpo spear spear-noreplay spear-nobonus spear-nocovrep}; do
    drbot=(--set rl.replay.enabled=false --set rl.reward.toolcall_reward=none
      --set rl.loss.loss_mode=vanilla)
    grpo=(--set rl.advantage.estimator=dr_grpo)
    case $arm in
      drbot-grpo) extra=("${drbot[@]}" "${grpo[@]}") ;;
      drbot-gigpo) extra=("${drbot[@]}") ;;
      spear-grpo) extra=("${grpo[@]}") ;;
      spear) extra=() ;;
      spear-noreplay) extra=(--set rl.replay.enabled=false) ;;
      spear-nobonus) extra=(--set rl.reward.toolcall_reward=none) ;;
      spear-nocovrep) extra=(--set rl.loss.clip_cov_lb_replay=1e12 --set rl.loss.clip_cov_ub_replay=2e12) ;;
      *) echo "unknown arm $arm" >&2; exit 2 ;;
    esac
    name=$arm-s$seed
    if [ -f "$OUT/$name/eval.jsonl" ] && [ "$(grep -c . "$OUT/$name/metrics.jsonl")" = "$ITERS" ]; then
      continue
    fi
    rm -rf "${OUT:?}/$name"
    if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
    echo "run $name"
    RAYON_NUM_THREADS=$THREADS $SPEAR train --preset household-tiny-spear --set run.name="$name" \
      --set run.seed="$seed" "${COMMON[@]}" \
      --set sft.enabled=false --set model.init_checkpoint="\"$OUT/warm-sft\"" \
      --set env.tasks_per_iter=8 --set env.group_size=8 \
      --set run.iterations="$ITERS" --set run.eval_before=false --set run.eval_every="$ITERS" \
      --set rl.reward.max_toolcall_steps="$ITERS" --set rl.replay.max_replay_loss_steps="$ITERS" \
      ${extra[@]+"${extra[@]}"} > "$OUT/$name.log" 2>&1 &
    running=$((running + 1))
  done
done
wait
# One report of every complete run in OUT (earlier invocations with other SEEDS/ARMS included).
all=()
for d in "$OUT"/*-s[0-9]*/; do [ -f "$d/eval.jsonl" ] && all+=("${d%/}"); done
$SPEAR report "${all[@]}" --out "$OUT/report.html"
python3 scripts/summarize_household_sparse.py "$OUT" > "$OUT/summary.md"
cat "$OUT/summary.md"
