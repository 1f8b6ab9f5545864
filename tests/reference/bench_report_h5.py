#!/usr/bin/env python3
"""Helpers of tests/bench/bench_report.sh (h5py, NumPy).

  bench_report_h5.py seconds RESULTS.h5 SPLIT
      one line per scored entry of SPLIT: "protocol model users seconds" from the attributes
      `dynmm eval` writes on /<split>/<protocol>/<model> (entries without 'seconds' are skipped)
  bench_report_h5.py plant DYNMM SRC.h5 OUT N
      writes N results files OUT/run<k>/results.h5 for a sweep, in the way
      tests/reference/check_report.py plants them: every file a copy of SRC.h5 with its own resolved
      config (`DYNMM config --set ...`: a 5 x 5 grid over sasrec.hidden and align.dim, times seeds
      1, 2, ...) and seed attribute, and its per-user rows resampled with replacement (the same
      users for every model of the file, so tests stay paired; means and their spread over seeds
      look like real seeds'); 'mean' and 'users' attributes recomputed.
"""
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np


def seconds(path, split):
    with h5py.File(path, "r") as f:
        if split not in f:
            return
        for proto in f[split]:
            for model, d in f[split][proto].items():
                if isinstance(d, h5py.Dataset) and "seconds" in d.attrs:
                    print("%s %s %d %.6f" % (proto, model, int(d.attrs.get("users", 0)), float(d.attrs["seconds"])))


def plant(dynmm, src, out, n):
    hidden = [32, 40, 48, 56, 64]
    dims = [32, 48, 64, 80, 96]
    nconf = len(hidden) * len(dims)
    os.makedirs(out, exist_ok=True)
    for k in range(n):
        conf, seed = k % nconf, 1 + k // nconf
        h, a = hidden[conf // len(dims)], dims[conf % len(dims)]
        d = os.path.join(out, "run%03d" % k)
        os.makedirs(d, exist_ok=True)
        cfg = subprocess.run([dynmm, "config", "--set", "run.dir=" + d, "--set", "run.seed=%d" % seed,
                              "--set", "sasrec.hidden=%d" % h, "--set", "align.dim=%d" % a],
                             check=True, capture_output=True, text=True).stdout
        dst = os.path.join(d, "results.h5")
        shutil.copyfile(src, dst)
        rng = np.random.default_rng(1000 + k)
        with h5py.File(dst, "r+") as f:
            f.attrs["config"] = np.bytes_(cfg)
            f.attrs["seed"] = seed
            idx = None
            sets = []
            f.visititems(lambda name, o: sets.append(name) if isinstance(o, h5py.Dataset) and o.ndim == 2
                         and "mean" in o.attrs else None)
            for name in sets:
                ds = f[name]
                x = ds[...]
                if idx is None:
                    idx = rng.integers(0, x.shape[0], x.shape[0])
                x = x[idx]
                ds[...] = x
                ok = ~np.isnan(x[:, 0])
                ds.attrs["mean"] = np.nanmean(x[ok], axis=0) if ok.any() else np.full(x.shape[1], np.nan)
                ds.attrs["users"] = int(ok.sum())
    print("planted %d results files in %s (%d configurations x %d seeds)" % (n, out, min(n, nconf), (n + nconf - 1) // nconf))


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "seconds":
        seconds(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 6 and sys.argv[1] == "plant":
        plant(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
