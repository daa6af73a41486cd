#!/usr/bin/env bash
# Rollout throughput, one run on one machine (issue 14): `spear train --preset household-tiny`
# for N iterations with rollouts in process (sync, async), on one and on two `spear serve`
# processes (sync, async), every row from one shared warm start (`spear sft`). Prints environment steps/s and generated tokens/s of the collection
# phase (metrics.jsonl: samples, gen_tokens_per_s, time.generate + time.env).
#   SPEAR_BIN=target/release/spear bash scripts/bench-rollout.sh [ITERATIONS]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SPEAR="${SPEAR_BIN:-$ROOT/target/release/spear}"
[ -x "$SPEAR" ] || { echo "bench-rollout.sh: $SPEAR missing (cargo build --release, or set SPEAR_BIN)" >&2; exit 1; }
N="${1:-3}"
W="$(mktemp -d /tmp/spear-bench-rollout.XXXXXX)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
serve() {
    "$SPEAR" serve --port 0 > "$W/serve-$1.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 600); do
        url=$(sed -n 's/^spear serve: listening on //p' "$W/serve-$1.log")
        [ -n "$url" ] && { echo "$url"; return; }
        sleep 0.1
    done
    echo "bench-rollout.sh: spear serve did not start" >&2; exit 1
}
U1=$(serve a); U2=$(serve b)
# One warm start for every row (the preset's `spear sft`), so the rows differ only in the engine.
"$SPEAR" sft --preset household-tiny --set "run.out_dir=\"$W/runs\"" --set run.name=warm > "$W/warm.log" 2>&1 \
    || { tail -20 "$W/warm.log" >&2; exit 1; }
WARM="$W/runs/warm-sft"
[ -f "$WARM/checkpoints/latest" ] || { echo "bench-rollout.sh: no warm start in $WARM" >&2; exit 1; }
run() {
    local name=$1; shift
    "$SPEAR" train --preset household-tiny --set run.iterations="$N" --set run.eval_before=false \
        --set run.eval_every=1000 --set "run.out_dir=\"$W/runs\"" --set run.name="$name" \
        --set "model.init_checkpoint=\"$WARM\"" "$@" > "$W/$name.log" 2>&1 \
        || { tail -20 "$W/$name.log" >&2; exit 1; }
    python3 - "$W/runs/$name/metrics.jsonl" "$name" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
steps = sum(r["samples"] for r in rows)
# Collection wall time: sync, generation + environment steps; async, time.generate is already
# the wall time of the whole concurrent phase (time.env sums the episodes' threads).
is_async = "async" in sys.argv[2]
secs = sum(r["time"]["generate"] + (0 if is_async else r["time"]["env"]) for r in rows)
toks = sum(r["gen_tokens_per_s"] * r["time"]["generate"] for r in rows)
print(f"| {sys.argv[2]} | {len(rows)} | {steps} | {secs:.1f} | {steps / secs:.1f} | {toks / secs:.0f} |")
PY
}
echo "| engine | iterations | env steps | collection s | env steps/s | generated tokens/s |"
echo "|---|---:|---:|---:|---:|---:|"
# BENCH_CONFIGS picks rows (default all). local-async samples each episode alone in process
# (no batching): far slower, which is why async is meant for engines with their own weights.
CONFIGS="${BENCH_CONFIGS:-local-sync local-async serve1-sync serve2-sync serve2-async}"
for c in $CONFIGS; do
    case "$c" in
        local-sync) run local-sync ;;
        local-async) run local-async --set rollout.mode=async ;;
        serve1-sync) run serve1-sync --set rollout.engine=http --set rollout.api=spear --set "rollout.endpoints=[\"$U1\"]" ;;
        serve2-sync) run serve2-sync --set rollout.engine=http --set rollout.api=spear --set "rollout.endpoints=[\"$U1\",\"$U2\"]" ;;
        serve2-async) run serve2-async --set rollout.engine=http --set rollout.api=spear --set "rollout.endpoints=[\"$U1\",\"$U2\"]" --set rollout.mode=async ;;
        *) echo "bench-rollout.sh: unknown config $c" >&2; exit 2 ;;
    esac
done
