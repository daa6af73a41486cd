#!/usr/bin/env python3
"""Tabulates scripts/household-sparse.sh: per arm, evaluation success after the warm start and
after RL on both splits (mean ± sample std over seeds, with the 95 % Wilson interval of the
pooled episodes), training-rollout success over the run's thirds, SPEAR's replay and
tool-call-reward activity, and the trained samples per iteration (the budget)."""
import math
import statistics
import sys
from pathlib import Path

from summary_util import ms, pooled, read, wilson

out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/household-sparse")
names = {
    "drbot-grpo": "Dr.BoT(GRPO): filters + subsample, vanilla PPO loss",
    "drbot-gigpo": "Dr.BoT(GiGPO)",
    "spear-grpo": "SPEAR on Dr.BoT(GRPO)",
    "spear": "SPEAR on Dr.BoT(GiGPO)",
    "spear-noreplay": "SPEAR (GiGPO) without replay",
    "spear-nobonus": "SPEAR (GiGPO) without the tool-call reward",
    "spear-nocovrep": "SPEAR (GiGPO) without Clip-Cov on replay",
}
arms = list(names)


def iters_done(r):
    p = r / "metrics.jsonl"
    return len(read(p)) if p.is_file() else 0


# Complete runs only: evaluated at the last iteration, which the longest run reached.
cands = {arm: sorted(out.glob(f"{arm}-s*[0-9]")) for arm in arms}
cands = {a: [r for r in rs if r.is_dir()] for a, rs in cands.items()}
n_iters = max((iters_done(r) for rs in cands.values() for r in rs), default=0)
runs, partial = {}, 0
for arm, rs in cands.items():
    done = [r for r in rs if iters_done(r) == n_iters and (r / "eval.jsonl").is_file()]
    partial += len(rs) - len(done)
    if done:
        runs[arm] = done

warm = out / "warm-sft" / "eval.jsonl"
splits = ["valid_seen", "valid_unseen"]
print(f"# SPEAR on the household in a sparse setting ({out})\n")
print(f"{n_iters} iterations; seeds per arm: " + ", ".join(f"{a} {len(r)}" for a, r in runs.items())
      + (f" ({partial} incomplete run(s) left out)" if partial else "") + "\n")
print("## Evaluation success (T = 0.4), mean ± std over seeds [95 % Wilson interval, pooled]\n")
if warm.is_file():
    w = {e["split"]: e for e in read(warm)}
    cells = [pooled([w[s]]) if s in w else "–" for s in splits]
    print("Warm start (the same checkpoint for every arm, one evaluation): "
          + "; ".join(f"{s} {c}" for s, c in zip(splits, cells)) + "\n")
print("| arm | " + " | ".join(f"{s} after RL" for s in splits) + " | rise (mean of both splits), per seed |")
print("|---|" + "---|" * len(splits) + "---|")
for arm, rs in runs.items():
    cells = []
    for s in splits:
        es = [e for r in rs for e in read(r / "eval.jsonl") if e["split"] == s and e["iteration"] == n_iters]
        cells.append(pooled(es))
    per = []
    for r in rs:
        es = [e for e in read(r / "eval.jsonl") if e["iteration"] == n_iters]
        base = statistics.mean(w[e["split"]]["success_rate"] for e in es) if warm.is_file() else 0.0
        per.append(f"s{r.name.rsplit('-s', 1)[1]} {statistics.mean(e['success_rate'] for e in es) - base:+.2f}")
    print(f"| {arm} | " + " | ".join(cells) + " | " + ", ".join(per) + " |")

rare = ["pick_heat_then_place_in_recep", "pick_cool_then_place_in_recep"]


def rare_cell(es):
    """Success on the rarely demonstrated types (heat, cool): mean ± std over runs of each
    run's rate on them [Wilson interval of their episodes pooled]."""
    ks, ns, rates = 0, 0, []
    for e in es:
        k = sum(round(e["success_by_type"].get(t, 0.0) * e["episodes_by_type"].get(t, 0)) for t in rare)
        n = sum(e["episodes_by_type"].get(t, 0) for t in rare)
        ks, ns = ks + k, ns + n
        rates.append(k / n if n else 0.0)
    lo, hi = wilson(ks, ns)
    return f"{ms(rates)} [{lo:.2f}, {hi:.2f}] (n={ns})"


print("\n## Evaluation success on the rarely demonstrated types (heat, cool), both splits together\n")
if warm.is_file():
    print("Warm start: " + rare_cell(read(warm)) + "\n")
print("| arm | after RL | clean (the demonstrated type) after RL |")
print("|---|---|---|")
for arm, rs in runs.items():
    es = [e for r in rs for e in read(r / "eval.jsonl") if e["iteration"] == n_iters]
    # Per run: both splits pooled into one rate.
    per_run = []
    for r in rs:
        rs_es = [e for e in read(r / "eval.jsonl") if e["iteration"] == n_iters]
        merged = {"success_by_type": {}, "episodes_by_type": {}}
        for t in rare + ["pick_clean_then_place_in_recep"]:
            n = sum(e["episodes_by_type"].get(t, 0) for e in rs_es)
            k = sum(e["success_by_type"].get(t, 0.0) * e["episodes_by_type"].get(t, 0) for e in rs_es)
            merged["episodes_by_type"][t] = n
            merged["success_by_type"][t] = k / n if n else 0.0
        per_run.append(merged)
    clean = [m["success_by_type"]["pick_clean_then_place_in_recep"] for m in per_run]
    print(f"| {arm} | {rare_cell(per_run)} | {ms(clean)} |")

# Paired by seed: the same seed gives every arm the same tasks and first rollouts, so the
# per-seed difference removes the task draw's share of the spread.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def final_rates(r):
    """(success over both splits, success on heat and cool over both splits) at the end."""
    es = [e for e in read(r / "eval.jsonl") if e["iteration"] == n_iters]
    k = sum(e["success_rate"] * e["episodes"] for e in es)
    n = sum(e["episodes"] for e in es)
    kr = sum(e["success_by_type"].get(t, 0.0) * e["episodes_by_type"].get(t, 0) for e in es for t in rare)
    nr = sum(e["episodes_by_type"].get(t, 0) for e in es for t in rare)
    return k / n, (kr / nr if nr else 0.0)


def paired(a, b, idx):
    da = {r.name.rsplit("-s", 1)[1]: final_rates(r)[idx] for r in runs.get(a, [])}
    db = {r.name.rsplit("-s", 1)[1]: final_rates(r)[idx] for r in runs.get(b, [])}
    seeds = sorted(set(da) & set(db))
    d = [da[x] - db[x] for x in seeds]
    if len(d) < 2:
        return "–", ""
    m, sd = statistics.mean(d), statistics.stdev(d)
    h = T95.get(len(d) - 1, 1.96) * sd / math.sqrt(len(d))
    wins = sum(x > 0 for x in d)
    return f"{m:+.3f} ± {sd:.3f} [{m - h:+.3f}, {m + h:+.3f}]", f"{wins} of {len(d)}"


print("\n## Paired by seed: final evaluation, arm A − arm B (mean ± std over seeds [95 % t-interval]; seeds where A is ahead)\n")
print("| A − B | success, both splits | A ahead | heat + cool success | A ahead |")
print("|---|---|---|---|---|")
for a, b in [("spear", "drbot-gigpo"), ("spear-grpo", "drbot-grpo"), ("spear", "spear-grpo"),
             ("drbot-gigpo", "drbot-grpo"), ("spear", "spear-noreplay"), ("spear", "spear-nobonus"),
             ("spear", "spear-nocovrep")]:
    if a in runs and b in runs:
        c0, w0 = paired(a, b, 0)
        c1, w1 = paired(a, b, 1)
        print(f"| {a} − {b} | {c0} | {w0} | {c1} | {w1} |")

third = max(n_iters // 3, 1)
spans = [(1, third), (third + 1, 2 * third), (2 * third + 1, n_iters)]
print("\n## Training-rollout success (64 episodes per iteration, T = 0.7), mean over each span per seed, then mean ± std\n")
print("| arm | " + " | ".join(f"it {a}–{b}" for a, b in spans) + " | it 1 | episode length, last span |")
print("|---|" + "---|" * len(spans) + "---|---|")
for arm, rs in runs.items():
    per = [read(r / "metrics.jsonl") for r in rs]

    def avg(m, lo, hi, key):
        xs = [key(x) for x in m if lo <= x["iteration"] <= hi]
        return statistics.mean(xs) if xs else float("nan")
    succ = lambda x: x["success_rate"]
    cells = [ms([avg(m, a, b, succ) for m in per]) for a, b in spans]
    cells.append(ms([m[0]["success_rate"] for m in per]))
    cells.append(ms([avg(m, *spans[-1], lambda x: x["episode_length"]) for m in per], 1))
    print(f"| {arm} | " + " | ".join(cells) + " |")

print("\n## Training-rollout success on heat and cool tasks (mean of the per-iteration rates of the two types over each span, per seed, then mean ± std)\n")
print("| arm | " + " | ".join(f"it {a}–{b}" for a, b in spans) + " |")
print("|---|" + "---|" * len(spans))
for arm, rs in runs.items():
    per = [read(r / "metrics.jsonl") for r in rs]

    def rare_avg(m, lo, hi):
        xs = [v for x in m if lo <= x["iteration"] <= hi
              for t, v in x["success_by_type"].items() if t in rare]
        return statistics.mean(xs) if xs else float("nan")
    print(f"| {arm} | " + " | ".join(ms([rare_avg(m, a, b) for m in per]) for a, b in spans) + " |")

print("\n## Budget and SPEAR's parts per iteration (mean over iterations and seeds)\n")
print("| arm | on-policy samples trained | replay samples (iterations replaying) | tool-call reward coef. (mean) | replay Clip-Cov frac. | update s | iteration s |")
print("|---|---|---|---|---|---|---|")
for arm, rs in runs.items():
    m = [x for r in rs for x in read(r / "metrics.jsonl")]
    f = lambda k: statistics.mean(x.get(k) or 0.0 for x in m)
    fired = sum(1 for x in m if (x.get("replay_samples") or 0) > 0)
    upd = statistics.mean(x["time"]["update"] for x in m)
    tot = statistics.mean(x["time"]["total"] for x in m)
    print(f"| {arm} | {f('trained_samples'):.1f} | {f('replay_samples'):.1f} ({fired} of {len(m)}) "
          f"| {f('toolcall_coef'):.2f} | {f('replay_clip_cov_frac'):.4f} | {upd:.2f} | {tot:.1f} |")
print()
for arm in runs:
    print(f"* {arm}: {names[arm]}")
