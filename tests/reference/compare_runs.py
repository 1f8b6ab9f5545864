#!/usr/bin/python3
"""Compare two run directories file by file, dataset by dataset.

  compare_runs.py DIR_A DIR_B [--tol REL] [--bitwise FILE...]

For every .h5 file present in both directories: every dataset in either file must be in both with
the same shape and dtype; integer and string datasets must be equal; float datasets must agree
within REL relative to the largest magnitude of the dataset (default 1e-4), or bitwise for the files
named after --bitwise (default: dataset.h5). Root attributes are not compared (they hold times,
hashes and provenance), nor the columns of a table whose names say they are times ("seconds",
"tokens/s", ...: its "columns" attribute). Prints one line per file and exits non-zero on any
difference.
"""
import os
import sys

import h5py
import numpy as np


def datasets(f):
    out = {}
    f.visititems(lambda k, v: out.__setitem__(k, v) if isinstance(v, h5py.Dataset) else None)
    return out


def main(argv):
    a, b = argv[1], argv[2]
    tol, bitwise, i = 1e-4, ["dataset.h5"], 3
    while i < len(argv):
        if argv[i] == "--tol":
            tol = float(argv[i + 1]); i += 2
        elif argv[i] == "--bitwise":
            bitwise = []; i += 1
            while i < len(argv) and not argv[i].startswith("--"):
                bitwise.append(argv[i]); i += 1
        else:
            raise SystemExit("unknown argument " + argv[i])
    files = sorted(set(x for x in os.listdir(a) if x.endswith(".h5") and not x.startswith("ckpt")) &
                   set(x for x in os.listdir(b) if x.endswith(".h5") and not x.startswith("ckpt")))
    if not files:
        raise SystemExit("FAIL: no .h5 files in common")
    bad = 0
    for fn in files:
        fa, fb = h5py.File(os.path.join(a, fn), "r"), h5py.File(os.path.join(b, fn), "r")
        da, db = datasets(fa), datasets(fb)
        if set(da) != set(db):
            print("FAIL %s: datasets only in one: %s" % (fn, sorted(set(da) ^ set(db))[:10]))
            bad += 1
            continue
        worst, nbit = 0.0, 0
        for k in sorted(da):
            if "seconds" in k.rsplit("/", 1)[-1]:
                continue  # wall times
            x, y = da[k][...], db[k][...]
            cols = da[k].attrs.get("columns")
            if cols is not None and x.ndim == 2:
                names = (cols.decode() if isinstance(cols, bytes) else str(cols)).split(",")
                timed = [j for j, c in enumerate(names) if any(w in c for w in ("second", "/s", "ms", "time"))]
                if len(names) == x.shape[1] and timed:
                    keep = [j for j in range(x.shape[1]) if j not in timed]
                    x, y = x[:, keep], y[:, keep]
            if x.shape != y.shape or x.dtype != y.dtype:
                print("FAIL %s/%s: shape/dtype %s %s vs %s %s" % (fn, k, x.shape, x.dtype, y.shape, y.dtype))
                bad += 1
                continue
            if x.tobytes() == y.tobytes():
                nbit += 1
                continue
            if fn in bitwise or not np.issubdtype(x.dtype, np.floating):
                print("FAIL %s/%s: differs (expected bitwise)" % (fn, k))
                bad += 1
                continue
            x64, y64 = x.astype(np.float64), y.astype(np.float64)
            if (np.isnan(x64) != np.isnan(y64)).any():
                print("FAIL %s/%s: NaN in one run only" % (fn, k))
                bad += 1
                continue
            scale = max(np.nanmax(np.abs(x64)) if x64.size else 0.0, 1e-30)
            d = np.nanmax(np.abs(x64 - y64)) / scale if x64.size else 0.0
            worst = max(worst, d)
            if d > tol:
                print("FAIL %s/%s: differs by %.3g relative > %g" % (fn, k, d, tol))
                bad += 1
        print("%s: %d datasets, %d bitwise, the rest within %.3g relative" % (fn, len(da), nbit, worst))
    if bad:
        raise SystemExit("FAIL: %d differences" % bad)


if __name__ == "__main__":
    main(sys.argv)
