#!/usr/bin/env bash
# The GPU check of issue 15, one script, one table, nothing downloaded. For a GPU machine with
# PyTorch and transformers installed and no package registry:
#   - spear built elsewhere with scripts/cuda-build.sh (CUDA 13.0; the GPU needs driver R580+),
#     passed as SPEAR_BIN (default target/cuda/release/spear); its CUDA libraries
#     (libcublas.so.13, libcublasLt.so.13, libcurand.so.10, libnvrtc.so.13) must be findable:
#     the script adds every nvidia/*/lib directory of the Python's site-packages to
#     LD_LIBRARY_PATH (PyTorch's CUDA 13 wheels bring them);
#   - random-weight Qwen2-shaped models (0.5B and 1.5B shapes) are created on the machine.
# It measures, spear and PyTorch side by side on the same weights:
#   1. training tokens/s (forward + backward + AdamW, 8 x 1024), spear bf16 vs torch autocast bf16;
#   2. generation tokens/s at batch 1 and 8 (spear's bench) and torch at 1, 8 and 64; peak GPU
#      memory of a training step with and without activation checkpointing, both sides;
#   3. log-prob agreement: spear on the GPU, spear on the CPU, PyTorch (fp32); the training
#      path's fused ops on the GPU against composed ops (`spear bench model --only kernels`);
#   4. 3 iterations of `spear train --preset household-tiny --set model.device=cuda:0`, and of
#      `household-smollm2` on the 0.5B-shaped model.
#   GPU_CHECK_SIZES="0.5b 1.5b" (default), GPU_CHECK_OUT=/tmp/spear-gpu-check.
# Target: under 8 minutes on one H100/H200. Not yet run on a GPU: BENCHMARKS.md says so.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SPEAR="${SPEAR_BIN:-$ROOT/target/cuda/release/spear}"
OUT="${GPU_CHECK_OUT:-/tmp/spear-gpu-check}"
SIZES="${GPU_CHECK_SIZES:-0.5b 1.5b}"
PY="${PYTHON:-python3}"
T0=$(date +%s)
log() { printf '[gpu-check %4ss] %s\n' $(( $(date +%s) - T0 )) "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
ROWS=()
row() { ROWS+=("$*"); }

command -v nvidia-smi >/dev/null || die "no nvidia-smi: this is not a GPU machine"
GPU=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)
log "GPU: $GPU"
"$PY" -c 'import torch, transformers; assert torch.cuda.is_available()' \
    || die "$PY lacks torch/transformers with CUDA"
[ -x "$SPEAR" ] || die "$SPEAR missing: build it with scripts/cuda-build.sh and pass SPEAR_BIN"
LIBS=$("$PY" -c 'import glob, os, site; print(":".join(sorted(set(os.path.dirname(p) for d in site.getsitepackages() for p in glob.glob(d + "/nvidia/**/lib/*.so*", recursive=True)))))')
export LD_LIBRARY_PATH="${LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ldd "$SPEAR" | grep -q "not found" && { ldd "$SPEAR" | grep "not found" >&2; die "spear's CUDA libraries are missing (see the header)"; }
"$SPEAR" --version >&2 || die "spear does not start"
mkdir -p "$OUT"
BENCH="$ROOT/benches/torch_gpu_check.py"

for size in $SIZES; do
    M="$OUT/qwen2-$size"
    [ -f "$M/config.json" ] || "$PY" "$BENCH" make-model --size "$size" --out "$M" >&2 || die "make-model $size"
    log "$size: spear bench (train bf16 8x1024, score, gen1, gen8) on cuda:0"
    "$SPEAR" bench model --model "$M" --device cuda:0 --dtype bf16 --batch 8 --seq-len 1024 \
        --reps 3 --only train,score,gen1,gen8 > "$OUT/spear-$size.txt" 2>&1 \
        || { tail -20 "$OUT/spear-$size.txt" >&2; row "| $size | spear bench | FAILED (see $OUT/spear-$size.txt) |"; }
    grep '^|' "$OUT/spear-$size.txt" | sed "s/^/| $size /" | while read -r l; do echo "$l"; done > "$OUT/spear-$size.rows"
    while read -r l; do row "$l"; done < "$OUT/spear-$size.rows"
    log "$size: torch bench (train amp bf16 8x1024, generate 1/8/64)"
    "$PY" "$BENCH" bench --hf-dir "$M" --batch 8 --seq-len 1024 --gen-batches 1,8,64 > "$OUT/torch-$size.txt" 2>&1 \
        || { tail -20 "$OUT/torch-$size.txt" >&2; row "| $size | torch bench | FAILED |"; }
    while read -r l; do row "| $size $l"; done < <(grep '^|' "$OUT/torch-$size.txt")
done

# 2b. Peak GPU memory of one training step (8 x 1024) on the smallest model, with and without
# activation checkpointing, spear and PyTorch, read the same way for both: the highest
# `memory.used` nvidia-smi reports every 100 ms while the process runs (CUDA context and
# allocator caches included; torch's own max_memory_allocated is in its rows above).
peak_gpu() {  # peak_gpu OUTFILE CMD... -> prints the peak MiB used during CMD
    local f="$1"; shift
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$f.smi" 2>/dev/null &
    local smi=$!
    "$@" > "$f" 2>&1; local rc=$?
    kill "$smi" 2>/dev/null; wait "$smi" 2>/dev/null
    [ $rc = 0 ] && sort -n "$f.smi" | tail -1 || echo "FAILED (see $f)"
}
M="$OUT/qwen2-$(echo "$SIZES" | awk '{print $1}')"
base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
for ck in off on; do
    flag=$([ $ck = on ] && echo --activation-checkpointing)
    log "peak GPU memory, spear train bf16 8x1024, checkpointing $ck"
    row "| memory | spear train 8x1024 bf16, checkpointing $ck | peak $(peak_gpu "$OUT/mem-spear-$ck.txt" "$SPEAR" bench model --model "$M" --device cuda:0 --dtype bf16 --batch 8 --seq-len 1024 --reps 1 --only train $flag) MiB (idle $base MiB) |"
    flag=$([ $ck = on ] && echo --grad-ckpt)
    log "peak GPU memory, torch train amp bf16 8x1024, checkpointing $ck"
    row "| memory | torch train 8x1024 amp bf16, checkpointing $ck | peak $(peak_gpu "$OUT/mem-torch-$ck.txt" "$PY" "$BENCH" bench --hf-dir "$M" --batch 8 --seq-len 1024 --reps 1 --warmup 0 --only train $flag) MiB (idle $base MiB) |"
done

# 3. Log-prob agreement on the smallest model: 4 rows of 64 random tokens.
M="$OUT/qwen2-$(echo "$SIZES" | awk '{print $1}')"
"$PY" - "$OUT/ids.jsonl" <<'PY'
import json, random, sys
r = random.Random(0)
with open(sys.argv[1], "w") as f:
    for _ in range(4):
        ids = [r.randrange(151936) for _ in range(64)]
        f.write(json.dumps({"prompt_ids": ids[:8], "token_ids": ids[8:]}) + "\n")
PY
"$SPEAR" score logprobs --model "$M" --device cuda:0 < "$OUT/ids.jsonl" > "$OUT/lp-spear-gpu.jsonl" || die "spear score on cuda:0"
"$SPEAR" score logprobs --model "$M" --device cpu < "$OUT/ids.jsonl" > "$OUT/lp-spear-cpu.jsonl" || die "spear score on cpu"
"$PY" - "$M" "$OUT/ids.jsonl" > "$OUT/lp-torch.jsonl" <<'PY'
import json, sys, torch, transformers
m = transformers.AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32).cuda().eval()
with torch.no_grad():
    for line in open(sys.argv[2]):
        s = json.loads(line)
        ids = torch.tensor([s["prompt_ids"] + s["token_ids"]]).cuda()
        lp = torch.log_softmax(m(ids).logits[0, :-1].float(), -1)
        n = len(s["prompt_ids"])
        print(json.dumps({"logprobs": lp[n - 1:].gather(-1, ids[0, n:, None])[:, 0].tolist()}))
PY
agree() {
    "$PY" - "$1" "$2" <<'PY'
import json, sys
a = [x for l in open(sys.argv[1]) for x in json.loads(l)["logprobs"]]
b = [x for l in open(sys.argv[2]) for x in json.loads(l)["logprobs"]]
d = [abs(x - y) for x, y in zip(a, b)]
print(f"{len(d)} tokens, max |d| {max(d):.2e}, mean {sum(d) / len(d):.2e}")
PY
}
row "| log-probs | spear cuda vs spear cpu (f32) | $(agree "$OUT/lp-spear-gpu.jsonl" "$OUT/lp-spear-cpu.jsonl") |"
row "| log-probs | spear cuda vs torch cuda (f32) | $(agree "$OUT/lp-spear-gpu.jsonl" "$OUT/lp-torch.jsonl") |"

# 3b. The training path's fused ops on the GPU (candle's CUDA kernels forward, a backward in
# tensor ops) against the composed ops, values and gradients.
log "kernels on cuda:0 against composed ops"
if "$SPEAR" bench model --model tiny --device cuda:0 --threads 1 --only kernels > "$OUT/kernels.txt" 2>&1; then
    while read -r l; do row "| kernel $l"; done < <(grep -E '^\| (softmax|rms-norm|rope|masked|log-prob)' "$OUT/kernels.txt")
else
    tail -20 "$OUT/kernels.txt" >&2; row "| kernels | FAILED (see $OUT/kernels.txt) |"
fi

# 4. Training on the GPU.
for spec in "household-tiny" "household-smollm2 --set model.name=\"$M\""; do
    name=$(echo "$spec" | awk '{print $1}')
    log "spear train --preset $name on cuda:0, 3 iterations"
    eval "\"$SPEAR\" train --preset $spec --set model.device=\"cuda:0\" --set run.iterations=3 \
        --set run.out_dir=\"$OUT/runs\" --set run.name=$name --set run.eval_before=false --set run.eval_every=1000" \
        > "$OUT/train-$name.log" 2>&1 || { tail -20 "$OUT/train-$name.log" >&2; row "| train | $name | FAILED |"; continue; }
    while read -r l; do row "| train | $name | $l |"; done < <("$PY" - "$OUT/runs/$name/metrics.jsonl" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    print(f"iteration {r['iteration']}: success {r['success_rate']:.2f}, samples {r['samples']}, "
          f"train tokens/s {r['train_tokens_per_s']:.0f}, gen tokens/s {r['gen_tokens_per_s']:.0f}, "
          f"total {r['time']['total']:.1f} s")
PY
)
done

echo "# spear gpu-check, $(date -u +%Y-%m-%d), $GPU, $(( $(date +%s) - T0 )) s"
printf '%s\n' "${ROWS[@]}"
