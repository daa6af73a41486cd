#!/usr/bin/env python3
"""Tabulates scripts/math-tool-use.sh: per arm, held-out accuracy and tool-call rate at every
evaluation (mean ± sample std over seeds, with the 95 % Wilson interval of the pooled
episodes), the training rollouts' accuracy and tool-call rate over iterations, the first
iteration whose training tool-call rate reaches 0.5, and the trained samples per iteration."""
import statistics
import sys
from pathlib import Path

from summary_util import ms, pooled, read

out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/math-tool-use")
arms = ["spear", "spear-nobonus", "grpo", "spear-noreplay", "spear-nocovrep"]
names = {
    "spear": "SPEAR (Dr.BoT + replay + Clip-Cov + tool-call reward)",
    "spear-nobonus": "SPEAR without the tool-call reward",
    "grpo": "Dr.BoT (GRPO), the math baseline",
    "spear-noreplay": "SPEAR without replay",
    "spear-nocovrep": "SPEAR without Clip-Cov on replay",
}


def last_eval(r):
    p = r / "eval.jsonl"
    return max((e["iteration"] for e in read(p)), default=-1) if p.is_file() else -1


# Complete runs only: those evaluated at the last iteration any run reached (a run still in
# progress, or stopped, is left out and counted).
cands = {arm: sorted(out.glob(f"{arm}-s*")) for arm in arms}
final = max((last_eval(r) for rs in cands.values() for r in rs), default=-1)
runs, partial = {}, 0
for arm, rs in cands.items():
    done = [r for r in rs if last_eval(r) == final]
    partial += len(rs) - len(done)
    if done:
        runs[arm] = done

print(f"# Math tool use in miniature ({out})\n")
print("Seeds per arm: " + ", ".join(f"{a} {len(r)}" for a, r in runs.items())
      + (f" ({partial} incomplete run(s) left out)" if partial else "") + "\n")
print("## Held-out accuracy (T = 1), mean ± std over seeds [95 % Wilson interval, pooled]\n")
iters = sorted({e["iteration"] for rs in runs.values() for r in rs for e in read(r / "eval.jsonl")})


def eval_table(cell):
    """One row per arm, one column per evaluation: cell(records of that arm and iteration)."""
    print("| arm | " + " | ".join(f"it {i}" for i in iters) + " |")
    print("|---|" + "---|" * len(iters))
    for arm, rs in runs.items():
        evals = [e for r in rs for e in read(r / "eval.jsonl")]
        cells = [cell([e for e in evals if e["iteration"] == i]) for i in iters]
        print(f"| {arm} | " + " | ".join(cells) + " |")


eval_table(pooled)
print("\n## Held-out tool calls per conversation, mean ± std over seeds\n")
eval_table(lambda es: ms([e["math"]["mean_tool_calls"] for e in es]))

print("\n## Training rollouts (128 conversations per iteration), mean ± std over seeds\n")
marks = [1, 3, 5, 8, 10, 15, 20]
print("| arm | what | " + " | ".join(f"it {i}" for i in marks) + " | first it with tool-call rate ≥ 0.5 |")
print("|---|---|" + "---|" * len(marks) + "---|")
for arm, rs in runs.items():
    ms_by_run = [read(r / "metrics.jsonl") for r in rs]
    firsts = []
    for m in ms_by_run:
        hit = [x["iteration"] for x in m if x["math"]["tool_call_rate"] >= 0.5]
        firsts.append(hit[0] if hit else None)
    first = ms([f for f in firsts if f is not None])
    never = sum(f is None for f in firsts)
    first_cell = first + (f" ({never} never)" if never else "")
    for what, key in [("accuracy", lambda x: x["success_rate"]),
                      ("tool-call rate", lambda x: x["math"]["tool_call_rate"])]:
        cells = []
        for i in marks:
            xs = [key(x) for m in ms_by_run for x in m if x["iteration"] == i]
            cells.append(ms(xs))
        print(f"| {arm} | {what} | " + " | ".join(cells) + f" | {first_cell if what != 'accuracy' else ''} |")

print("\n## Training rollouts averaged over iterations 1–10 and 11–20 (per seed, then mean ± std)\n")
print("| arm | accuracy 1–10 | accuracy 11–20 | tool-call rate 1–10 | tool-call rate 11–20 | per seed: accuracy 1–10 |")
print("|---|---|---|---|---|---|")
for arm, rs in runs.items():
    def avg(m, lo, hi, key):
        xs = [key(x) for x in m if lo <= x["iteration"] <= hi]
        return statistics.mean(xs) if xs else float("nan")
    acc = lambda x: x["success_rate"]
    tool = lambda x: x["math"]["tool_call_rate"]
    per = [read(r / "metrics.jsonl") for r in rs]
    cells = [ms([avg(m, 1, 10, acc) for m in per]), ms([avg(m, 11, 20, acc) for m in per]),
             ms([avg(m, 1, 10, tool) for m in per]), ms([avg(m, 11, 20, tool) for m in per])]
    seeds = ", ".join(f"s{r.name.rsplit('-s', 1)[1]} {avg(m, 1, 10, acc):.2f}" for r, m in zip(rs, per))
    print(f"| {arm} | " + " | ".join(cells) + f" | {seeds} |")

print("\n## Budget per iteration (mean over iterations and seeds)\n")
print("| arm | on-policy samples trained | replay samples | masked | update s | iteration s |")
print("|---|---|---|---|---|---|")
for arm, rs in runs.items():
    m = [x for r in rs for x in read(r / "metrics.jsonl")]
    f = lambda k: statistics.mean(x[k] for x in m)
    upd = statistics.mean(x["time"]["update"] for x in m)
    tot = statistics.mean(x["time"]["total"] for x in m)
    print(f"| {arm} | {f('trained_samples'):.1f} | {f('replay_samples'):.1f} | {f('masked_samples'):.1f} | {upd:.2f} | {tot:.1f} |")
print()
for arm in runs:
    print(f"* {arm}: {names[arm]}")
