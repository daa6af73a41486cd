#!/usr/bin/env python3
"""PyTorch side of scripts/gpu-check.sh (issue 15): everything the GPU check needs from torch and
transformers, with nothing downloaded.

    torch_gpu_check.py make-model --size 0.5b --out DIR     # random-weight Qwen2-shaped HF directory
    torch_gpu_check.py bench --hf-dir DIR [--batch 8 --seq-len 1024 --gen-batches 1,64]
    torch_gpu_check.py logprobs --hf-dir DIR --ids IDS.json --out OUT.json [--dtype float32|bfloat16]

`make-model` builds a Qwen2 config with the shapes of Qwen2.5-0.5B / -1.5B (tied embeddings, GQA with
2 key/value heads), initialises it randomly with a fixed seed, and saves it as safetensors in bf16 with
a word-level tokenizer.json (the benchmarks use random token ids; the tokenizer only lets spear load
the directory).

`bench` prints rows `| what | tokens/s | median s | peak GPU MiB |`:
- train: forward + backward + clip_grad_norm + AdamW on batch x seq_len random tokens, loss = mean
  log-prob of tokens 1.. (log-softmax in fp32), `torch.autocast("cuda", dtype=torch.bfloat16)` with fp32
  master weights and AdamW state, SDPA attention (PyTorch eager bf16 mixed precision);
- generate: `model.generate` in bf16 at each batch of --gen-batches, sampling at T = 1, --new-tokens new
  tokens after --prompt-len random prompt tokens (EOS ignored through min_new_tokens).
Timing uses torch.cuda.synchronize(); the median of --reps repetitions after --warmup.

`logprobs` writes log_softmax(logits)[next token] for each row of IDS (a JSON list of lists of token
ids), computed in fp32 (or the model in bf16 with fp32 log-softmax), for comparison with spear's.
"""
import argparse
import json
import os
import statistics
import time

import torch
import transformers
from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

# Shapes of Qwen2.5-0.5B and Qwen2.5-1.5B (their config.json on the Hub).
SIZES = {
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2),
    "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2),
}
VOCAB = 151936


def make_model(a):
    cfg = Qwen2Config(vocab_size=VOCAB, max_position_embeddings=32768, rope_theta=1000000.0,
                      rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=0, eos_token_id=1,
                      torch_dtype="bfloat16", **SIZES[a.size])
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = Qwen2ForCausalLM(cfg)
    model = model.to(torch.bfloat16)
    os.makedirs(a.out, exist_ok=True)
    model.save_pretrained(a.out, safe_serialization=True)
    # A word-level tokenizer over the ids: "t0" ... "t{VOCAB-1}" (spear needs one to load the dir).
    vocab = {f"t{i}": i for i in range(VOCAB)}
    tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
           "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": None, "decoder": None,
           "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "t0"}}
    with open(os.path.join(a.out, "tokenizer.json"), "w") as f:
        json.dump(tok, f)
    with open(os.path.join(a.out, "tokenizer_config.json"), "w") as f:
        json.dump({"eos_token": "t1", "bos_token": "t0", "model_max_length": 32768}, f)
    n = sum(p.numel() for p in model.parameters())
    print(f"# wrote {a.out}: Qwen2 {a.size}, {n / 1e9:.3f} B parameters, bf16", flush=True)


def timed(fn, reps, warmup):
    out = []
    for i in range(warmup + reps):
        torch.cuda.synchronize()
        s = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        if i >= warmup:
            out.append(time.perf_counter() - s)
    return statistics.median(out)


def bench(a):
    dev = torch.device("cuda")
    print(f"# torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{torch.cuda.get_device_name(0)}, model {a.hf_dir}", flush=True)
    model = AutoModelForCausalLM.from_pretrained(a.hf_dir, dtype=torch.float32, attn_implementation="sdpa")
    model.to(dev)
    if a.grad_ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    g = torch.Generator(device="cpu").manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (a.batch, a.seq_len), generator=g).to(dev)

    def row(what, toks, secs):
        mib = torch.cuda.max_memory_allocated() / 2**20
        print(f"| torch {what} | {toks / secs:.1f} | {secs:.3f} | {mib:.0f} |", flush=True)

    if "train" in a.only:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01)
        torch.cuda.reset_peak_memory_stats()

        def step():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                h = model.model(ids).last_hidden_state[:, :-1]
                lg = model.lm_head(h)
            loss = -torch.log_softmax(lg.float(), -1).gather(-1, ids[:, 1:, None]).mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)

        ck = ", grad-ckpt" if a.grad_ckpt else ""
        row(f"train {a.batch}x{a.seq_len} amp_bf16{ck} (fwd+bwd+AdamW)", a.batch * a.seq_len,
            timed(step, a.reps, a.warmup))
        del opt
    if "gen" in a.only:
        model.eval()
        model.to(torch.bfloat16)
        for b in [int(x) for x in a.gen_batches.split(",")]:
            p = torch.randint(0, model.config.vocab_size, (b, a.prompt_len), generator=g).to(dev)
            torch.cuda.reset_peak_memory_stats()

            def gen():
                with torch.no_grad():
                    out = model.generate(p, attention_mask=torch.ones_like(p), do_sample=True, top_k=0,
                                         top_p=1.0, temperature=1.0, max_new_tokens=a.new_tokens,
                                         min_new_tokens=a.new_tokens, pad_token_id=0)
                assert out.shape[1] == a.prompt_len + a.new_tokens

            row(f"generate batch {b}, {a.prompt_len}+{a.new_tokens} bf16 (new tokens/s)", b * a.new_tokens,
                timed(gen, a.reps, a.warmup))


def logprobs(a):
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = getattr(torch, a.dtype)
    model = AutoModelForCausalLM.from_pretrained(a.hf_dir, dtype=dtype, attn_implementation="sdpa").to(dev)
    model.eval()
    rows = json.load(open(a.ids))
    out = []
    with torch.no_grad():
        for r in rows:
            x = torch.tensor([r], device=dev)
            lg = model(x).logits[0, :-1].float()
            lp = torch.log_softmax(lg, -1).gather(-1, x[0, 1:, None])[:, 0]
            out.append(lp.cpu().tolist())
    json.dump({"dtype": a.dtype, "device": str(dev), "logprobs": out}, open(a.out, "w"))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-model")
    m.add_argument("--size", choices=sorted(SIZES), required=True)
    m.add_argument("--out", required=True)
    b = sub.add_parser("bench")
    b.add_argument("--hf-dir", required=True)
    b.add_argument("--batch", type=int, default=8)
    b.add_argument("--seq-len", type=int, default=1024)
    b.add_argument("--prompt-len", type=int, default=128)
    b.add_argument("--new-tokens", type=int, default=128)
    b.add_argument("--gen-batches", default="1,64")
    b.add_argument("--reps", type=int, default=3)
    b.add_argument("--warmup", type=int, default=1)
    b.add_argument("--only", default="train,gen")
    b.add_argument("--grad-ckpt", action="store_true",
                   help="train with HF gradient checkpointing (as spear's --activation-checkpointing)")
    lp = sub.add_parser("logprobs")
    lp.add_argument("--hf-dir", required=True)
    lp.add_argument("--ids", required=True)
    lp.add_argument("--out", required=True)
    lp.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    a = ap.parse_args()
    {"make-model": make_model, "bench": bench, "logprobs": logprobs}[a.cmd](a)


if __name__ == "__main__":
    main()
