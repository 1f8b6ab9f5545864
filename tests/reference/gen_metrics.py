#!/usr/bin/python3
"""gen_metrics.py: brute-force reference values for src/eval/metrics.c.

Writes $1/metrics_cases.json. Every case is small enough to enumerate *every* order of the
candidates that is consistent with the scores (all permutations inside each tied block). For each
order the metrics are computed from the targets' positions; then
  expected    = the mean over all those orders (math.fsum, so exact to rounding),
  pessimistic = the minimum over the orders, optimistic = the maximum.
This checks the closed forms in metrics.c (uniform rank, first-target distribution) independently.

Case kinds:
  full     scores over n items, a list of excluded items (never competing unless a target) and one
           or more target items (duplicates allowed in both lists)
  sampled  the target's score and N negative scores (target = candidate 0, nothing excluded)
Scores are multiples of 1/4 so float32 and float64 agree exactly.
"""
import itertools
import json
import math
import os
import sys

import numpy as np

KS = [1, 2, 3, 5, 10]
MAX_ORDERS = 40320


def metrics_of_order(order, targets):
    """order: candidate ids, best first; targets: set of ids. Returns the row layout of metrics.h."""
    ranks = [pos + 1 for pos, c in enumerate(order) if c in targets]
    m = len(targets)
    row_hit, row_ndcg, row_rec = [], [], []
    for k in KS:
        top = [r for r in ranks if r <= k]
        row_hit.append(1.0 if top else 0.0)
        idcg = sum(1.0 / math.log2(i + 1) for i in range(1, min(m, k) + 1))
        row_ndcg.append(sum(1.0 / math.log2(r + 1) for r in top) / idcg)
        row_rec.append(len(top) / m)
    return row_hit + row_ndcg + row_rec + [1.0 / min(ranks)]


def orders(cands, scores):
    """Every order of `cands` sorted by score (descending), ties permuted in all ways."""
    levels = sorted({scores[c] for c in cands}, reverse=True)
    blocks = [[c for c in cands if scores[c] == s] for s in levels]
    for perm in itertools.product(*(itertools.permutations(b) for b in blocks)):
        yield [c for block in perm for c in block]


def n_orders(cands, scores):
    from collections import Counter
    cnt = Counter(scores[c] for c in cands)
    return math.prod(math.factorial(v) for v in cnt.values())


def reference(scores, targets, excluded):
    tset = set(targets)
    cands = [i for i in range(len(scores)) if i in tset or i not in set(excluded)]
    rows = [metrics_of_order(o, tset) for o in orders(cands, scores)]
    cols = list(zip(*rows))
    return {
        "expected": [math.fsum(c) / len(rows) for c in cols],
        "pessimistic": [min(c) for c in cols],
        "optimistic": [max(c) for c in cols],
        "orders": len(rows),
    }


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20240611)
    cases = []

    # hand-picked shapes
    hand = [
        # (scores, targets, excluded)
        ([1.0] * 6, [2], []),                      # constant scorer, one target
        ([1.0] * 7, [0, 4], [5]),                  # constant scorer, two targets, one excluded
        ([3, 2, 2, 2, 1, 0], [2], []),             # target tied with two others below one
        ([3, 2, 2, 2, 1, 0], [1, 3], [0]),         # two tied targets, the top item excluded
        ([0, 1, 2, 3, 4, 5, 6], [0], []),          # worst target, no ties
        ([5, 5, 4, 4, 4, 3, 3, 3], [2, 6], [1, 3]),
        ([2, 2, 2, 2, 2, 1, 1, 1, 1], [0, 5, 6], [0]),  # a target that is also excluded stays a target
        ([1, 1, 1, 1, 1, 1, 1, 1], [3, 3], [3, 4, 4]),   # duplicates in both lists
        ([0.5, 0.25, 0.5, 0.75], [1], [0, 2, 3]),  # the only candidate
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [11, 10], []),  # perfect ranking of two targets
    ]
    for sc, tg, ex in hand:
        sc = [float(x) for x in sc]
        cases.append({"kind": "full", "scores": sc, "targets": tg, "excluded": ex, **reference(sc, tg, ex)})

    # random full-ranking cases with heavy ties
    while len(cases) < 160:
        n = int(rng.integers(2, 11))
        levels = int(rng.integers(1, 5))
        sc = [float(x) / 4 for x in rng.integers(0, levels, n)]
        m = int(rng.integers(1, min(n, 4) + 1))
        tg = [int(x) for x in rng.choice(n, m, replace=False)]
        ne = int(rng.integers(0, n))
        ex = [int(x) for x in rng.choice(n, ne, replace=False)]
        if rng.random() < 0.2 and ex:
            ex.append(ex[0])  # duplicate
        tset = set(tg)
        cands = [i for i in range(n) if i in tset or i not in set(ex)]
        if n_orders(cands, sc) > MAX_ORDERS:
            continue
        cases.append({"kind": "full", "scores": sc, "targets": tg, "excluded": ex, **reference(sc, tg, ex)})

    # sampled protocol: target + N negatives
    while len(cases) < 220:
        nneg = int(rng.integers(0, 10))
        levels = int(rng.integers(1, 4))
        sc = [float(x) / 4 for x in rng.integers(0, levels, nneg + 1)]
        if n_orders(list(range(nneg + 1)), sc) > MAX_ORDERS:
            continue
        cases.append({"kind": "sampled", "scores": sc, "targets": [0], "excluded": [], **reference(sc, [0], [])})

    doc = {"format": "dynmm-ref-metrics", "version": 1, "ks": KS, "cases": cases}
    with open(os.path.join(out, "metrics_cases.json"), "w") as f:
        json.dump(doc, f)
    print(f"metrics reference: {len(cases)} cases, up to {max(c['orders'] for c in cases)} tie orders each")


if __name__ == "__main__":
    main()
