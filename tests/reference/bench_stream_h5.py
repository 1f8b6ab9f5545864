#!/usr/bin/env python3
"""Timings of one `dynmm stream` run, for tests/bench/bench_stream.sh.

  bench_stream_h5.py STREAM.h5 [ADAPTER_VARIANTS]

Reads the per-window datasets of stream.h5 and prints one line of key=value pairs:
  windows            streaming windows W
  users_med          median users scored per window (static variant)
  adapter_s          median over windows of /stream/adapter/train_seconds (the adapter's update:
                     its optimisation steps, the Fisher for EWC)
  retrained_s        median over the windows that retrained of /stream/retrained/train_seconds
                     (SASRec from scratch on everything before the window; 0 = not retrained there)
  retrain_windows    windows that retrained
  ratio_w            median over those windows of retrained_s / adapter_s, window by window
  score_static_s     median over windows of /stream/static/score_seconds (base latents h . z,
                     full ranking of the window's users, metrics included)
  score_adapter_s    the same for the adapter's latents
  serve_s            median over windows of /stream/serve_seconds / ADAPTER_VARIANTS (computing
                     the dynamic latents of every item and user once per window; the stage times
                     all adapter variants together, default 1)
  overhead_w         median over windows of (score_adapter + serve - score_static) / score_static
  overhead_sum       the same from the sums over windows
Windows without scored users are left out of the scoring figures.
"""
import sys

import h5py
import numpy as np


def main():
    path = sys.argv[1]
    nvar = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    with h5py.File(path, "r") as f:
        g = f["stream"]
        users = g["static/users"][...] if "static" in g else g["adapter/users"][...]
        ta = g["adapter/train_seconds"][...]
        tr = g["retrained/train_seconds"][...] if "retrained" in g else np.zeros_like(ta)
        ss = g["static/score_seconds"][...]
        sa = g["adapter/score_seconds"][...]
        sv = g["serve_seconds"][...] / nvar
    W = len(ta)
    rw = tr > 0
    scored = users > 0
    out = {
        "windows": W,
        "users_med": float(np.median(users)),
        "adapter_s": float(np.median(ta)),
        "retrained_s": float(np.median(tr[rw])) if rw.any() else float("nan"),
        "retrain_windows": int(rw.sum()),
        "ratio_w": float(np.median(tr[rw] / ta[rw])) if rw.any() else float("nan"),
        "score_static_s": float(np.median(ss[scored])),
        "score_adapter_s": float(np.median(sa[scored])),
        "serve_s": float(np.median(sv[scored])),
        "overhead_w": float(np.median((sa[scored] + sv[scored] - ss[scored]) / ss[scored])),
        "overhead_sum": float((sa[scored].sum() + sv[scored].sum() - ss[scored].sum()) / ss[scored].sum()),
    }
    print(" ".join("%s=%s" % (k, ("%.6g" % v) if isinstance(v, float) else v) for k, v in out.items()))


if __name__ == "__main__":
    main()
