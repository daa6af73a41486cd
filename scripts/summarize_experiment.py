#!/usr/bin/env python3
"""Tabulates the experiment of scripts/experiment.sh: final and best evaluation success per
learner and split (mean ± sample std over seeds, and each seed), and step time per learner."""
import json
import statistics
import sys
from pathlib import Path

out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/experiment")
learners = ["grpo", "gigpo", "spear"]
names = {"grpo": "GRPO", "gigpo": "GiGPO", "spear": "SPEAR (GiGPO)"}


def read(path):
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def fmt(xs):
    if not xs:
        return "–"
    m = statistics.mean(xs)
    s = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{m:.3f} ± {s:.3f}"


rows, times = {}, {}
for algo in learners:
    for run in sorted(out.glob(f"{algo}-s*")):
        ev = read(run / "eval.jsonl")
        m = read(run / "metrics.jsonl")
        last_it = max(e["iteration"] for e in ev)
        first_it = min(e["iteration"] for e in ev)
        for e in ev:
            key = (algo, e["split"])
            r = rows.setdefault(key, {"first": [], "last": [], "seeds": []})
            if e["iteration"] == first_it:
                r["first"].append(e["success_rate"])
            if e["iteration"] == last_it:
                r["last"].append(e["success_rate"])
                r["seeds"].append(f"{run.name}: {e['success_rate']:.3f}")
        t = [x["time"]["total"] - x["time"].get("eval", 0.0) for x in m]
        times.setdefault(algo, []).append(statistics.median(t))

print("| learner | split | before RL (iteration 0) | after RL (last iteration) | per seed |")
print("|---|---|---|---|---|")
for (algo, split), r in sorted(rows.items(), key=lambda kv: (learners.index(kv[0][0]), kv[0][1])):
    print(f"| {names[algo]} | {split} | {fmt(r['first'])} | {fmt(r['last'])} | {'; '.join(r['seeds'])} |")
print()
print("| learner | median step time without evaluation (s), mean over seeds | vs. GiGPO |")
print("|---|---|---|")
base = statistics.mean(times.get("gigpo", [float("nan")]))
for algo in learners:
    if algo in times:
        t = statistics.mean(times[algo])
        print(f"| {names[algo]} | {t:.2f} | {t / base - 1:+.1%} |")
