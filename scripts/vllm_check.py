"""Checks for scripts/test-vllm.sh against a running vLLM server (stdlib only).

  vllm_check.py sample  URL PROMPTS.json T SEED N  > samples.jsonl   # completions, one per prompt
  vllm_check.py compare SAMPLES.jsonl SCORES.jsonl TOL                # vLLM vs spear log-probs
  vllm_check.py admin   URL PATH [JSON]                               # POST an admin call
  vllm_check.py perturb SRC DST SCALE SEED                            # DST = SRC + noise
  vllm_check.py same    A.jsonl B.jsonl                               # identical tokens+logprobs?
  vllm_check.py untie   DIR                                           # write lm_head, untie (in place)
  vllm_check.py bench   URL CLIENTS NEW_TOKENS PROMPT_LEN VOCAB       # generated tokens/s

Request fields follow vLLM 0.32.0's completion protocol; every sampling field is sent
explicitly so the server's log-probs are those of softmax(logits / T) (shared/docs/scale-out.md §1.3).
"""

import json
import shutil
import sys
import urllib.request


def post(url, body):
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=600) as r:
        text = r.read().decode()
    return json.loads(text) if text.strip() else None


def sample(url, prompts_path, temperature, seed, max_tokens):
    prompts = json.load(open(prompts_path))
    for i, p in enumerate(prompts):
        body = {
            "model": "policy", "prompt": p, "max_tokens": int(max_tokens),
            "temperature": float(temperature), "top_p": 1.0, "top_k": -1, "min_p": 0.0,
            "presence_penalty": 0.0, "frequency_penalty": 0.0, "repetition_penalty": 1.0,
            "return_token_ids": True, "logprobs": 0, "skip_special_tokens": False,
            "seed": int(seed) + i, "n": 1,
        }
        c = post(url + "/v1/completions", body)["choices"][0]
        out = {"prompt_ids": p, "token_ids": c["token_ids"],
               "logprobs": c["logprobs"]["token_logprobs"], "finish_reason": c["finish_reason"]}
        if c.get("prompt_token_ids") not in (None, p):
            sys.exit(f"prompt_token_ids {c['prompt_token_ids']} != sent prompt {p}")
        print(json.dumps(out))


def compare(samples_path, scores_path, tol):
    samples = [json.loads(l) for l in open(samples_path) if l.strip()]
    scores = [json.loads(l) for l in open(scores_path) if l.strip()]
    if len(samples) != len(scores):
        sys.exit(f"{len(samples)} samples but {len(scores)} scores")
    diffs = []
    for s, r in zip(samples, scores):
        a, b = s["logprobs"], r["logprobs"]
        if len(a) != len(b):
            sys.exit(f"{len(a)} vLLM log-probs but {len(b)} spear log-probs")
        diffs += [abs(x - y) for x, y in zip(a, b)]
    diffs.sort()
    n = len(diffs)
    mean = sum(diffs) / n
    p50, p99, mx = diffs[n // 2], diffs[min(n - 1, int(0.99 * n))], diffs[-1]
    bins = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
    hist = []
    lo = 0.0
    for hi in bins:
        hist.append(f"[{lo:g},{hi:g}): {sum(lo <= d < hi for d in diffs)}")
        lo = hi
    hist.append(f">={lo:g}: {sum(d >= lo for d in diffs)}")
    print(f"{n} tokens: |vLLM - spear| log-prob mean {mean:.2e}, median {p50:.2e}, "
          f"p99 {p99:.2e}, max {mx:.2e}; histogram " + ", ".join(hist))
    if mx > float(tol):
        sys.exit(f"max difference {mx:.3e} exceeds the tolerance {tol}")


def admin(url, path, body=None):
    r = post(url + path, json.loads(body) if body else {})
    print(json.dumps(r))
    return r


def perturb(src, dst, scale, seed):
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst, dirs_exist_ok=True)
    t = load_file(f"{src}/model.safetensors")
    g = torch.Generator().manual_seed(int(seed))
    out = {k: (v + float(scale) * torch.randn(v.shape, generator=g, dtype=v.dtype)).contiguous()
           for k, v in t.items()}
    save_file(out, f"{dst}/model.safetensors", metadata={"format": "pt"})


def untie(d):
    """vLLM 0.32.0 (CPU) reload_weights leaves one use of a tied embedding stale (measured: with
    only the embedding perturbed, the reloaded server matches neither the old nor the new
    weights; untied, it matches spear's scoring of the new ones to 4e-5). Writing lm_head.weight
    and tie_word_embeddings = false makes a reload complete."""
    import torch
    from safetensors.torch import load_file, save_file

    t = load_file(f"{d}/model.safetensors")
    if "lm_head.weight" not in t:
        t["lm_head.weight"] = t["model.embed_tokens.weight"].clone().contiguous()
    save_file(t, f"{d}/model.safetensors", metadata={"format": "pt"})
    c = json.load(open(f"{d}/config.json"))
    c["tie_word_embeddings"] = False
    json.dump(c, open(f"{d}/config.json", "w"), indent=2)


def same(a_path, b_path):
    a = [json.loads(l) for l in open(a_path) if l.strip()]
    b = [json.loads(l) for l in open(b_path) if l.strip()]
    if a != b:
        sys.exit(f"{a_path} and {b_path} differ")
    print(f"{a_path} == {b_path} ({len(a)} samples, tokens and log-probs bit-identical)")


def bench(url, clients, new_tokens, prompt_len, vocab):
    """CLIENTS concurrent requests of NEW_TOKENS tokens each (ignore_eos), seeded random prompts."""
    import random
    import threading
    import time

    rng = random.Random(0)
    n, new = int(clients), int(new_tokens)
    prompts = [[rng.randrange(int(vocab)) for _ in range(int(prompt_len))] for _ in range(n)]
    out = [None] * n

    def one(i):
        body = {"model": "policy", "prompt": prompts[i], "max_tokens": new, "temperature": 1.0,
                "top_p": 1.0, "top_k": -1, "ignore_eos": True, "logprobs": 0,
                "return_token_ids": True, "seed": i, "n": 1}
        out[i] = len(post(url + "/v1/completions", body)["choices"][0]["token_ids"])

    t = time.perf_counter()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    dt = time.perf_counter() - t
    total = sum(out)
    print(f"{n} clients x {new} new tokens (prompt {prompt_len}): {total} tokens in {dt:.2f} s "
          f"= {total / dt:.1f} generated tokens/s")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"sample": sample, "compare": compare, "admin": admin, "perturb": perturb, "same": same,
     "bench": bench, "untie": untie}[cmd](*args)
