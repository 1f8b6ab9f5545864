#!/usr/bin/env python3
"""Independent reference checks of a dataset.h5 written by `dynmm ingest`.

  check_dataset.py beauty DATASET.h5 DATA_DIR   Amazon Beauty 5-core (2014) against a reading of the raw
                                               files with Python's json/ast: counts, every user's sequence
                                               in the standard order (stable sort by time, ties in file
                                               order), the leave-one-out test items, titles (with quotes,
                                               tabs, newlines), brands and category paths.
  check_dataset.py tiktok DATASET.h5 DATA_DIR   TikTok: counts, the given train/valid/test split, and the
                                               image/audio features against numpy.load (float16 -> float32).
  check_dataset.py lastfm DATASET.h5 DATA_DIR   Last.fm-2k: counts, every (user, item, x_label) row of
                                               lfm2k.inter in file order, the artists' names (artists.dat)
                                               and tags (lfm2k_text.tsv) through lfm2k_og_ids.inter, and the
                                               MiniLM text and Whisper audio features against numpy.load.
  check_dataset.py same A.h5 B.h5               every dataset of A equals B bitwise (attributes may differ).
Exits non-zero with a message on the first mismatch.
"""
import ast, gzip, json, os, re, sys

import h5py
import numpy as np


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def strtab(f, name):
    chars = f[name + "/chars"][...].tobytes()
    off = f[name + "/offsets"][...]
    return [chars[off[i]:off[i + 1]].decode("utf-8") for i in range(len(off) - 1)]


def sequences(f):
    off = f["users/offsets"][...]
    item = f["inter/item"][...]
    return off, item


_REF = re.compile(r"&(#[0-9]+|#[xX][0-9a-fA-F]+|amp|lt|gt|quot|apos|nbsp);")
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'", "nbsp": " "}


def unescape(s):
    """the HTML character references the readers decode (dm_str_html_unescape): six names and numeric
    references ending in ';', NUL, surrogates and code points beyond U+10FFFF left as they are"""
    def one(m):
        g = m.group(1)
        if g[0] != "#":
            return _NAMED[g]
        c = int(g[2:], 16) if g[1] in "xX" else int(g[1:])
        return m.group(0) if c == 0 or c > 0x10FFFF or 0xD800 <= c <= 0xDFFF else chr(c)
    return _REF.sub(one, s)


def beauty(h5, data):
    users, items_order, seqs = {}, {}, {}
    with gzip.open(os.path.join(data, "amazon-beauty", "reviews_Beauty_5.json.gz"), "rt") as fh:
        for line_no, line in enumerate(fh):
            r = json.loads(line)
            seqs.setdefault(r["reviewerID"], []).append((r["unixReviewTime"], line_no, r["asin"]))
    meta = {}
    with gzip.open(os.path.join(data, "amazon-beauty", "meta_Beauty.json.gz"), "rt") as fh:
        for line in fh:
            d = ast.literal_eval(line)
            meta[d["asin"]] = d
    with h5py.File(h5, "r") as f:
        nu, ni, n = int(f.attrs["n_users"]), int(f.attrs["n_items"]), int(f.attrs["n_interactions"])
        if (nu, ni, n) != (22363, 12101, 198502):
            fail("counts %s, expected (22363, 12101, 198502)" % ((nu, ni, n),))
        uid, iid = strtab(f, "users/id"), strtab(f, "items/id")
        off, item = sequences(f)
        loo = f["split/loo"][...]
        checked = 0
        for u, name in enumerate(uid):
            ref = [a for _, _, a in sorted(seqs[name], key=lambda x: (x[0], x[1]))]  # stable: ties in file order
            got = [iid[k] for k in item[off[u]:off[u + 1]]]
            if got != ref:
                fail("user %s: sequence differs from the stable time order\n got %s\n ref %s" % (name, got[:10], ref[:10]))
            if loo[off[u + 1] - 1] != 2 or loo[off[u + 1] - 2] != 1 or (off[u + 1] - off[u] > 2 and loo[off[u]] != 0):
                fail("user %s: leave-one-out roles wrong" % name)
            checked += 1
        titles, brands, cats = strtab(f, "items/title"), strtab(f, "items/brand"), strtab(f, "items/category")
        has_title = f["items/has_title"][...]
        nt = decoded = 0
        for i, a in enumerate(iid):
            m = meta[a]
            if "title" in m:
                nt += 1
                if not has_title[i] or titles[i] != unescape(m["title"]):
                    fail("item %s: title %r, expected %r" % (a, titles[i], unescape(m["title"])))
                decoded += titles[i] != m["title"]
            elif has_title[i]:
                fail("item %s has a title but the metadata has none" % a)
            if brands[i] != unescape(m.get("brand", "")):
                fail("item %s: brand %r, expected %r" % (a, brands[i], unescape(m.get("brand", ""))))
            ref_cat = unescape(" | ".join(" > ".join(p) for p in m.get("categories", []) if p))
            if cats[i] != ref_cat:
                fail("item %s: category %r, expected %r" % (a, cats[i], ref_cat))
        if nt != 12094:
            fail("%d titles, expected 12094" % nt)
        tricky = sum(1 for t in titles if any(c in t for c in "\"'\t\n"))
        if decoded == 0:
            fail("no title carried an HTML character reference: the decoding is untested")
    print("beauty: %d users' sequences and leave-one-out items match; %d titles (%d with quotes, tabs or newlines, "
          "%d with HTML references decoded), brands and categories match" % (checked, nt, tricky, decoded))


def tiktok(h5, data):
    d = os.path.join(data, "tiktok")
    with h5py.File(h5, "r") as f:
        nu, ni = int(f.attrs["n_users"]), int(f.attrs["n_items"])
        if (nu, ni) != (9308, 6710):
            fail("counts %s, expected (9308, 6710)" % ((nu, ni),))
        given = f["split/given"][...]
        counts = [int((given == k).sum()) for k in range(3)]
        if counts != [59541, 3051, 6130]:
            fail("given split %s, expected [59541, 3051, 6130]" % counts)
        uid, iid = strtab(f, "users/id"), strtab(f, "items/id")
        if uid != [str(k) for k in range(nu)] or iid != [str(k) for k in range(ni)]:
            fail("integer ids were renumbered")
        off, item = sequences(f)
        # every (user, item, part) of the files is present
        ref = set()
        for part, name in enumerate(["train.tsv", "valid.tsv", "test.tsv"]):
            with open(os.path.join(d, name)) as fh:
                next(fh)
                for line in fh:
                    u, i = line.split()
                    ref.add((int(u), int(i), part))
        got = set()
        for u in range(nu):
            for j in range(off[u], off[u + 1]):
                got.add((u, int(item[j]), int(given[j])))
        if got != ref:
            fail("interactions differ from the files: %d vs %d" % (len(got), len(ref)))
        train_items = {i for (u, i, p) in ref if p == 0}
        for m, fn in (("visual", "image_feat.npy"), ("audio", "audio_feat.npy")):
            x = np.load(os.path.join(d, fn)).astype(np.float32)
            y = f["modal/%s/features" % m][...]
            if x.shape != y.shape or not np.array_equal(x, y):
                fail("%s features differ from numpy.load(%s)" % (m, fn))
    print("tiktok: counts, given split, ids and visual/audio features identical to numpy; %d cold items" % (ni - len(train_items)))


def lastfm(h5, data):
    d = os.path.join(data, "lastfm-2k")
    rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(d, "lfm2k.inter"), encoding="utf-8")][1:]
    og = [l.rstrip("\n").split("\t") for l in open(os.path.join(d, "lfm2k_og_ids.inter"), encoding="utf-8")][1:]
    orig = {r[1]: g[1] for r, g in zip(rows, og)}
    names, tags = {}, {}
    with open(os.path.join(d, "artists.dat"), encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            f = line.rstrip("\n").split("\t")
            names[f[0].strip()] = f[1].strip()
    with open(os.path.join(d, "lfm2k_text.tsv"), encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            a, t = line.rstrip("\n").split("\t", 1)
            tags[a.strip()] = [x.strip() for x in t.split(",") if x.strip()]
    with h5py.File(h5, "r") as f:
        nu, ni = int(f.attrs["n_users"]), int(f.attrs["n_items"])
        if (nu, ni, len(rows)) != (1858, 1425, 56345):
            fail("counts %s, expected (1858, 1425, 56345)" % ((nu, ni, len(rows)),))
        given = f["split/given"][...]
        counts = [int((given == k).sum()) for k in range(3)]
        if counts != [44327, 4799, 7219]:
            fail("given split %s, expected [44327, 4799, 7219]" % counts)
        uid, iid = strtab(f, "users/id"), strtab(f, "items/id")
        off, item = sequences(f)
        # no timestamps: each user's rows in file order
        ref = {}
        for u, i, _, x in rows:
            ref.setdefault(u, []).append((i, int(x)))
        for k, u in enumerate(uid):
            got = [(iid[item[j]], int(given[j])) for j in range(off[k], off[k + 1])]
            if got != ref[u]:
                fail("user %s: sequence %s..., expected %s..." % (u, got[:4], ref[u][:4]))
        titles, cats = strtab(f, "items/title"), strtab(f, "items/category")
        for k, i in enumerate(iid):
            o = orig[i]
            if titles[k] != names.get(o, ""):
                fail("item %s (artist %s): title %r, expected %r" % (i, o, titles[k], names.get(o, "")))
            want = " | ".join(tags.get(o, []))
            if cats[k] != want:
                fail("item %s (artist %s): tags %r..., expected %r..." % (i, o, cats[k][:80], want[:80]))
        for m, fn in (("text", "all-MiniLM-L6-v2.npy"), ("audio", "whisper.npy")):
            x = np.load(os.path.join(d, fn)).astype(np.float32)
            y = f["modal/%s/features" % m][...]
            if x.shape != y.shape or not np.array_equal(x, y):
                fail("%s features differ from numpy.load(%s)" % (m, fn))
    print("lastfm: counts, given split, %d users' rows in file order, %d names and %d artists' tags, text and audio "
          "features match" % (nu, sum(1 for i in iid if orig[i] in names), sum(1 for i in iid if orig[i] in tags)))


def same(a, b):
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        na, nb = [], []
        fa.visit(lambda k: na.append(k) if isinstance(fa[k], h5py.Dataset) else None)
        fb.visit(lambda k: nb.append(k) if isinstance(fb[k], h5py.Dataset) else None)
        if sorted(na) != sorted(nb):
            fail("different datasets: %s" % sorted(set(na) ^ set(nb)))
        for k in na:
            x, y = fa[k][...], fb[k][...]
            if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
                fail("dataset %s differs" % k)
    print("same: %d datasets bitwise identical" % len(na))


if __name__ == "__main__":
    kind = sys.argv[1]
    if kind == "beauty":
        beauty(sys.argv[2], sys.argv[3])
    elif kind == "tiktok":
        tiktok(sys.argv[2], sys.argv[3])
    elif kind == "lastfm":
        lastfm(sys.argv[2], sys.argv[3])
    elif kind == "same":
        same(sys.argv[2], sys.argv[3])
    else:
        fail("unknown check " + kind)
