#!/usr/bin/env python3
"""PyTorch + transformers side of `spear bench model` (issue #4): same weights, shapes and workloads.

Both sides load identical weights: `spear` writes the model it benchmarks as an HF directory, and this
script loads that directory with transformers.

    spear bench model --model smollm2-135m --export-hf /tmp/smollm2-hf     # or --model tiny
    nice -n 10 /path/to/venv/bin/python benches/torch_model_bench.py --hf-dir /tmp/smollm2-hf \
        --threads 1 --reps 3 --modes fp32,amp_bf16

Measured with torch 2.15.0 (PyPI CPU path) and transformers 5.24.0 (BENCHMARKS.md records the exact
versions and the machine of each run). Needs only `pip install torch transformers safetensors`.

Workloads (tokens/s, median over --reps timed repetitions after --warmup untimed ones):
- train: forward + backward + clip_grad_norm + AdamW on batch x seq_len random tokens, the loss being
  the mean log-prob of tokens 1.. given the prefix (the LM head runs on seq_len - 1 rows per sequence,
  as `spear` scores a 1-token prompt + the rest as response). Modes: `fp32`, and `amp_bf16`
  (`torch.autocast('cpu', dtype=torch.bfloat16)` with fp32 master weights and optimizer state).
  The forward / backward / optimizer split is printed too.
- score: the same forward under `torch.no_grad()`, fp32.
- gen1 / gen8: `model.generate` (sampling at temperature 1, no top-k, EOS ignored through
  `min_new_tokens`) of --new-tokens tokens after --prompt-len random prompt tokens, batch 1 and 8
  (gen32, batch 32, on request);
  --gen-modes fp32 (default) and/or bf16 (the model cast to bf16, transformers' bf16 inference).

Each row: | threads | workload | tokens/s | median s | tokens per CPU-s | peak RSS MB |
(tokens per CPU second, user + system over all threads, is the steadier figure on a loaded machine at
1 thread.)
"""
import argparse
import resource
import statistics
import time

import torch
import transformers
from transformers import AutoModelForCausalLM


def cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hf-dir", required=True, help="HF directory written by `spear bench model --export-hf`")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--modes", default="fp32,amp_bf16")
    ap.add_argument("--only", default="train,score,gen1,gen8")
    ap.add_argument("--gen-modes", default="fp32",
                    help="weights for gen1/gen8: fp32, bf16 (cast to bf16), or both (fp32,bf16)")
    ap.add_argument("--grad-ckpt", action="store_true",
                    help="train with HF gradient checkpointing per decoder layer (as spear's "
                         "--activation-checkpointing)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    only = a.only.split(",")
    print(f"# torch {torch.__version__}, transformers {transformers.__version__}, "
          f"cpu capability {torch.backends.cpu.get_cpu_capability()}, threads {torch.get_num_threads()}, "
          f"model {a.hf_dir}", flush=True)
    model = AutoModelForCausalLM.from_pretrained(a.hf_dir, dtype=torch.float32, attn_implementation="sdpa")
    if a.grad_ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    v = model.config.vocab_size
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, v, (a.batch, a.seq_len), generator=g)
    tokens = a.batch * a.seq_len

    def row(what, toks, secs, cpu):
        m = statistics.median(secs)
        print(f"| {a.threads} | torch {what} | {toks / m:.1f} | {m:.3f} | {toks / statistics.median(cpu):.1f} "
              f"| {rss_mb():.0f} |", flush=True)

    def mean_logprob():
        h = model.model(ids).last_hidden_state[:, :-1]
        lg = model.lm_head(h)
        return torch.log_softmax(lg.float(), -1).gather(-1, ids[:, 1:, None]).mean()

    if "score" in only:
        model.eval()
        t, c = [], []
        for i in range(a.warmup + a.reps):
            s, c0 = time.perf_counter(), cpu_s()
            with torch.no_grad():
                mean_logprob().item()
            if i >= a.warmup:
                t.append(time.perf_counter() - s)
                c.append(cpu_s() - c0)
        row(f"score {a.batch}x{a.seq_len} fp32", tokens, t, c)
    if "train" in only:
        for mode in a.modes.split(","):
            model.train()
            opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01)
            t, tf, tb, to, c = [], [], [], [], []
            for i in range(a.warmup + a.reps):
                s, c0 = time.perf_counter(), cpu_s()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=(mode == "amp_bf16")):
                    loss = -mean_logprob()
                s1 = time.perf_counter()
                loss.backward()
                s2 = time.perf_counter()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
                e = time.perf_counter()
                if i >= a.warmup:
                    t.append(e - s)
                    tf.append(s1 - s)
                    tb.append(s2 - s1)
                    to.append(e - s2)
                    c.append(cpu_s() - c0)
            ck = ", grad-ckpt" if a.grad_ckpt else ""
            row(f"train {a.batch}x{a.seq_len} {mode}{ck} (fwd+bwd+AdamW)", tokens, t, c)
            print(f"#   {mode} split: fwd {statistics.median(tf):.3f} s, bwd {statistics.median(tb):.3f} s, "
                  f"clip+AdamW {statistics.median(to):.3f} s", flush=True)
            del opt
    model.eval()
    gens = [(w, b) for w, b in (("gen1", 1), ("gen8", 8), ("gen32", 32)) if w in only]
    for gmode in (a.gen_modes.split(",") if gens else []):
        # fp32 weights, or the weights cast to bf16 (`model.to(torch.bfloat16)`, transformers'
        # usual bf16 inference: bf16 matmuls and activations).
        model.to(torch.bfloat16 if gmode == "bf16" else torch.float32)
        for w, b in gens:
            p = torch.randint(0, v, (b, a.prompt_len), generator=g)
            t, c = [], []
            for i in range(a.warmup + a.reps):
                s, c0 = time.perf_counter(), cpu_s()
                with torch.no_grad():
                    out = model.generate(p, attention_mask=torch.ones_like(p), do_sample=True, top_k=0,
                                         top_p=1.0, temperature=1.0, max_new_tokens=a.new_tokens,
                                         min_new_tokens=a.new_tokens, pad_token_id=0)
                assert out.shape[1] == a.prompt_len + a.new_tokens
                if i >= a.warmup:
                    t.append(time.perf_counter() - s)
                    c.append(cpu_s() - c0)
            row(f"generate batch {b} {gmode}, {a.prompt_len} prompt + {a.new_tokens} new (new tokens/s)",
                b * a.new_tokens, t, c)


if __name__ == "__main__":
    main()
