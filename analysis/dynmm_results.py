"""dynmm_results: per-user metrics of dynmm runs as Python rows, for your own statistics and plots.

Two sources, the same rows:

* the HDF5 files themselves (h5py and numpy): results.h5 (dynmm eval), prompt.h5 (the LLM
  recommenders), stream.h5 (prequential means over the streaming windows), with the original user
  and item ids of the dataset.h5 beside them;
* the long table `dynmm export` writes (CSV or TSV; only the standard library).

A row is a dict with the keys of the export's columns:

    run       the run directory ("runs/quickstart")
    source    "results", "prompt" or "stream"
    model     "sasrec", "align@drop_visual_50", "llm", ...
    split     "valid", "test" or "prequential"
    protocol  "full", "uni99", "full-drifting", ...
    user      the original user id
    items     the original ids of the user's held-out items in that split, space-separated
              ("" for prequential means)
    metric    "hit@10", "ndcg@10", "mrr", ...
    value     float

Users a model did not score (NaN rows) have no rows. pandas is optional: frame(rows) makes a
DataFrame of any of these lists, and wide(rows, ...) pivots to one row per user and one column per
model, ready for paired tests (scipy.stats.wilcoxon(t["sasrec"], t["ease"])).

    import dynmm_results as dr                   # analysis/ on sys.path, or copy the file
    rows = dr.read_run("runs/quickstart")         # every results/prompt/stream file of the run
    rows = dr.read_export("runs/quickstart/results.csv")
    t = dr.wide(rows, split="test", protocol="full", metric="ndcg@10")   # {model: {user: value}}
    dr.mean(rows, model="sasrec", split="test", protocol="full", metric="ndcg@10")

Layout read (stages/metrics_io.h, stages/dataset_io.h): /<split>/<protocol>/<model> float64
(n_users, ncols) with the root string table /columns; dataset.h5 /users/id and /items/id string
tables, /users/offsets, /inter/item and /split/<loo|temporal|given> (0 train, 1 valid, 2 test;
"stream": before the first window train, window 0 valid, later windows test).
"""
import csv
import math
import os

COLUMNS = ["run", "source", "model", "split", "protocol", "user", "items", "metric", "value"]
SOURCES = ("results.h5", "prompt.h5", "stream.h5")
_OTHER_GROUPS = {"candidates", "columns", "stream", "prompt", "explain", "synth", "serve", "serve_prev"}


def _strings(group):
    """A dynmm string table (chars uint8 + offsets int64) as a list of str."""
    chars = group["chars"][...].tobytes()
    off = group["offsets"][...].astype("int64")
    if len(off):  # files of early multi-rank eval runs carry the last offset first
        off[0], off[-1] = 0, len(chars)
    return [chars[off[i]:off[i + 1]].decode("utf-8") for i in range(len(off) - 1)]


def _attr(h, name):
    v = h.attrs[name]
    return v.decode() if isinstance(v, bytes) else str(v)


def _split_protocol(h):
    """split.protocol of the stage that wrote h (its stored config)."""
    if "split_protocol" in h.attrs:
        return _attr(h, "split_protocol")
    group = None
    for line in _attr(h, "config").split("\n"):
        if line.endswith(": {"):
            group = line[:-3].strip()
        elif group == "split" and line.strip().startswith("protocol ="):
            return line.split("=", 1)[1].strip().rstrip(";").strip().strip('"')
    return "loo"


def _targets(ds, protocol):
    """(off, item, roles) of dataset.h5 for the split protocol."""
    import numpy as np
    off = ds["users/offsets"][...]
    item = ds["inter/item"][...]
    if protocol == "stream":
        w = ds["window/id"][...]
        roles = np.where(w < 0, 0, np.where(w == 0, 1, 2)).astype("int8")
    else:
        name = protocol if protocol in ("loo", "temporal") else "given"
        roles = ds["split/" + name][...]
    return off, item, roles


def entries(h):
    """The (split, protocol, model) names of the per-user metric datasets of an open file."""
    out = []

    def visit(name, obj):
        parts = name.split("/")
        if len(parts) == 3 and parts[0] not in _OTHER_GROUPS and hasattr(obj, "shape") and len(obj.shape) == 2:
            kind = obj.attrs.get("kind", b"")
            if (kind.decode() if isinstance(kind, bytes) else str(kind)) not in ("rows", "latents"):  # as the report reads them
                out.append(tuple(parts))
    if "columns" in h:
        h.visititems(visit)
    return sorted(out)


def read_file(path, dataset=None, metrics=None):
    """The rows of one results.h5 / prompt.h5 / stream.h5 (h5py required). dataset: the dataset.h5
    it was made from (default: beside it); metrics: names to keep (default: all)."""
    import h5py
    import numpy as np
    path = os.fspath(path)
    run = os.path.dirname(path) or "."
    source = os.path.splitext(os.path.basename(path))[0]
    dataset = dataset or os.path.join(run, "dataset.h5")
    rows = []
    with h5py.File(path, "r") as h, h5py.File(dataset, "r") as ds:
        if "dataset_hash" in h.attrs and _attr(h, "dataset_hash") != _attr(ds, "stage_hash"):
            raise ValueError("%s was made from another dataset than %s" % (path, dataset))
        cols = _strings(h["columns"]) if "columns" in h else []
        users = _strings(ds["users/id"])
        items = _strings(ds["items/id"])
        off, item, roles = _targets(ds, _split_protocol(h))
        keep = [j for j, c in enumerate(cols) if metrics is None or c in metrics]
        held = {}
        for split, protocol, model in entries(h):
            x = h["%s/%s/%s" % (split, protocol, model)][...]
            if x.shape != (len(users), len(cols)):
                raise ValueError("%s: %s/%s/%s has shape %s, expected (%d, %d)" % (path, split, protocol, model, x.shape,
                                                                                 len(users), len(cols)))
            role = {"valid": 1, "test": 2}.get(split)
            if role is not None and role not in held:
                held[role] = [" ".join(items[i] for i in item[off[u]:off[u + 1]][roles[off[u]:off[u + 1]] == role])
                              for u in range(len(users))]
            for u in np.flatnonzero(~np.isnan(x[:, keep]).all(axis=1)) if keep else []:
                its = held[role][u] if role is not None else ""
                for j in keep:
                    v = float(x[u, j])
                    if not math.isnan(v):
                        rows.append({"run": run, "source": source, "model": model, "split": split, "protocol": protocol,
                                     "user": users[u], "items": its, "metric": cols[j], "value": v})
    return rows


def read_run(run_dir, metrics=None):
    """The rows of every results.h5, prompt.h5 and stream.h5 of a run directory."""
    rows = []
    for f in SOURCES:
        p = os.path.join(os.fspath(run_dir), f)
        if os.path.isfile(p):
            rows += read_file(p, metrics=metrics)
    return rows


def read_export(path):
    """The rows of a table written by `dynmm export` (CSV, or TSV when the name ends in .tsv)."""
    path = os.fspath(path)
    with open(path, newline="") as f:
        r = csv.DictReader(f, delimiter="\t" if path.endswith(".tsv") else ",")
        if r.fieldnames != COLUMNS:
            raise ValueError("%s: columns %s, expected %s (a table of `dynmm export`)" % (path, r.fieldnames, COLUMNS))
        rows = []
        for d in r:
            d["value"] = float(d["value"])
            rows.append(d)
    return rows


def select(rows, **match):
    """The rows whose fields equal the given values: select(rows, model="sasrec", metric="mrr")."""
    return [r for r in rows if all(r[k] == v for k, v in match.items())]


def wide(rows, split, protocol, metric, source=None, run=None):
    """{model: {user: value}} for one split, protocol and metric (paired rows across models)."""
    out = {}
    for r in rows:
        if r["split"] == split and r["protocol"] == protocol and r["metric"] == metric and \
                (source is None or r["source"] == source) and (run is None or r["run"] == run):
            out.setdefault(r["model"], {})[r["user"]] = r["value"]
    return out


def mean(rows, **match):
    """The mean value of the selected rows (NaN when none)."""
    v = [r["value"] for r in select(rows, **match)]
    return sum(v) / len(v) if v else float("nan")


def frame(rows):
    """A pandas DataFrame of rows (needs pandas)."""
    import pandas
    return pandas.DataFrame(rows, columns=COLUMNS)


if __name__ == "__main__":
    import sys
    if len(sys.argv) < 2:
        sys.exit("usage: dynmm_results.py RUN_DIR|FILE.h5|EXPORT.csv ...  (prints mean per model, split, protocol, metric)")
    rows = []
    for a in sys.argv[1:]:
        rows += read_run(a) if os.path.isdir(a) else read_export(a) if a.endswith((".csv", ".tsv")) else read_file(a)
    groups = {}
    for r in rows:
        groups.setdefault((r["run"], r["source"], r["split"], r["protocol"], r["model"], r["metric"]), []).append(r["value"])
    for k in sorted(groups):
        print("%s\t%d users\t%.6f" % ("\t".join(k), len(groups[k]), sum(groups[k]) / len(groups[k])))
