#!/usr/bin/env python3
"""Latency of one `dynmm prompt` run, for tests/bench/bench_prompt.sh.

  bench_prompt_h5.py PROMPT.h5

Prints one line per row of /prompt/latency: "L median p95 median_explain p95_explain" (prompt
tokens L; seconds per batch of prompt.latency_batch users x 20 candidates for llm, then for
llm_explain, or nan when the run trained llm only), then "batch_users N".
"""
import sys

import h5py

with h5py.File(sys.argv[1], "r") as f:
    d = f["prompt/latency"]
    for row in d[...]:
        e = (row[3], row[4]) if len(row) >= 5 else (float("nan"), float("nan"))
        print("%d %.6f %.6f %.6f %.6f" % (int(row[0]), row[1], row[2], e[0], e[1]))
    print("batch_users %d" % int(d.attrs["batch_users"]))
