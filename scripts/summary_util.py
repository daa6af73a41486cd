"""Helpers shared by the experiment summarisers (scripts/summarize_*.py): JSONL reading,
mean ± std cells and the Wilson interval."""
import json
import math
import statistics


def read(path):
    """The records of a JSONL file (blank lines skipped)."""
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def ms(xs, digits=2):
    """`mean ± sample std` of xs ("–" when empty; std 0 for one value)."""
    if not xs:
        return "–"
    m = statistics.mean(xs)
    s = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def wilson(k, n, z=1.96):
    """The 95 % Wilson score interval of k successes in n trials ((0, 0) for n = 0)."""
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (c - h, c + h)


def pooled(es):
    """`mean ± std` over evaluation records of their success rates, with the Wilson interval
    of all their episodes together."""
    k = sum(round(e["success_rate"] * e["episodes"]) for e in es)
    n = sum(e["episodes"] for e in es)
    lo, hi = wilson(k, n)
    return f"{ms([e['success_rate'] for e in es])} [{lo:.2f}, {hi:.2f}]"
