#!/usr/bin/env python3
"""Latency of one `dynmm prompt` run, for tests/bench/bench_prompt.sh.

  bench_prompt_h5.py PROMPT.h5

Prints one line per row of /prompt/latency: "L median p95 median_explain p95_explain median_pc
p95_pc" (prompt tokens L; seconds per batch of prompt.latency_batch users x 20 candidates for llm,
llm_explain and llm_explain@per_candidate, the per-candidate layout timed beside them with
explain.latency_per_candidate; nan for a model the run did not time), then "batch_users N".
"""
import sys

import h5py

NAMES = ("llm", "llm_explain", "llm_explain@per_candidate")

with h5py.File(sys.argv[1], "r") as f:
    d = f["prompt/latency"]
    cols = d.attrs["columns"]
    cols = (cols.decode() if isinstance(cols, bytes) else cols).split(", ")
    for row in d[...]:
        out = ["%d" % int(row[0])]
        for m in NAMES:
            for stat in ("median", "p95"):
                name = "%s %s seconds per batch" % (m, stat)
                out.append("%.6f" % row[cols.index(name)] if name in cols else "nan")
        print(" ".join(out))
    print("batch_users %d" % int(d.attrs["batch_users"]))
