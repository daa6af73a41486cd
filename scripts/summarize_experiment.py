#!/usr/bin/env python3
"""Tabulates the experiment of scripts/experiment.sh: evaluation success per learner, split and
evaluated iteration (mean ± sample std over seeds, and each seed's final value), training-rollout
success at the start and end of RL, and step time per learner (with the replay's share)."""
import json
import statistics
import sys
from pathlib import Path

out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/experiment")
learners = ["grpo", "gigpo", "spear"]
names = {"grpo": "GRPO", "gigpo": "GiGPO", "spear": "SPEAR (GiGPO)"}
WINDOW = 5  # iterations averaged for the training-rollout success at the start and the end


def read(path):
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def fmt(xs):
    if not xs:
        return "–"
    m = statistics.mean(xs)
    s = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{m:.3f} ± {s:.3f}"


evals, train, times, seeds = {}, {}, {}, {}
for algo in learners:
    for run in sorted(out.glob(f"{algo}-s*")):
        if not (run / "eval.jsonl").is_file() or not (run / "metrics.jsonl").is_file():
            continue
        ev = read(run / "eval.jsonl")
        m = read(run / "metrics.jsonl")
        seeds.setdefault(algo, []).append(run.name)
        last_it = max(e["iteration"] for e in ev)
        for e in ev:
            evals.setdefault((algo, e["split"]), {}).setdefault(e["iteration"], []).append(
                e["success_rate"]
            )
            if e["iteration"] == last_it:
                evals[(algo, e["split"])].setdefault("seeds", []).append(
                    f"s{run.name.rsplit('-s', 1)[1]} {e['success_rate']:.2f}"
                )
        sr = [x["success_rate"] for x in m]
        t = train.setdefault(algo, {"first": [], "last": [], "all": []})
        t["first"].append(statistics.mean(sr[:WINDOW]))
        t["last"].append(statistics.mean(sr[-WINDOW:]))
        t["all"].append(statistics.mean(sr))
        tm = times.setdefault(algo, {"total": [], "generate": [], "update": [], "replay_upd": [], "plain_upd": []})
        tm["total"].append(statistics.median(x["time"]["total"] - x["time"].get("eval", 0.0) for x in m))
        tm["generate"].append(statistics.median(x["time"]["generate"] for x in m))
        tm["update"].append(statistics.mean(x["time"]["update"] for x in m))
        rep = [x["time"]["update"] for x in m if x.get("replay_samples", 0) > 0]
        plain = [x["time"]["update"] for x in m if x.get("replay_samples", 0) == 0]
        if rep:
            tm["replay_upd"].append(statistics.mean(rep))
        if plain:
            tm["plain_upd"].append(statistics.mean(plain))

iters = sorted({i for r in evals.values() for i in r if i != "seeds"})
print("### Evaluation success (128 episodes per split, T = 0.4), mean ± std over seeds\n")
print("| learner | split | " + " | ".join(f"iteration {i}" for i in iters) + " | final, per seed |")
print("|---|---|" + "---|" * len(iters) + "---|")
for (algo, split), r in sorted(evals.items(), key=lambda kv: (learners.index(kv[0][0]), kv[0][1])):
    cells = " | ".join(fmt(r.get(i, [])) for i in iters)
    print(f"| {names[algo]} | {split} | {cells} | {'; '.join(r['seeds'])} |")
print()
print(f"### Training-rollout success (64 episodes per iteration), mean ± std over seeds\n")
print(f"| learner | first {WINDOW} iterations | last {WINDOW} iterations | all iterations |")
print("|---|---|---|---|")
for algo in learners:
    if algo in train:
        t = train[algo]
        print(f"| {names[algo]} | {fmt(t['first'])} | {fmt(t['last'])} | {fmt(t['all'])} |")
print()
print("### Step time (seconds, mean over seeds)\n")
print("| learner | median iteration without evaluation | vs. GiGPO | median generate | mean update | mean update, iterations with replay | mean update, iterations without |")
print("|---|---|---|---|---|---|---|")
base = statistics.mean(times["gigpo"]["total"]) if "gigpo" in times else float("nan")


def mean_or_dash(xs):
    return f"{statistics.mean(xs):.2f}" if xs else "–"


for algo in learners:
    if algo in times:
        tm = times[algo]
        t = statistics.mean(tm["total"])
        print(
            f"| {names[algo]} | {t:.2f} | {t / base - 1:+.1%} | {mean_or_dash(tm['generate'])} | "
            f"{mean_or_dash(tm['update'])} | {mean_or_dash(tm['replay_upd'])} | {mean_or_dash(tm['plain_upd'])} |"
        )
