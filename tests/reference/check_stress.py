#!/usr/bin/env python3
"""Reference checks of the stress experiments of `dynmm eval` (stages/stress.h).

  check_stress.py equal A.h5 B.h5          every per-user dataset of two results files bitwise equal
                                           (their means, summed over ranks, within 1e-12)
  check_stress.py check RUNDIR             on RUNDIR/{dataset,align,results}.h5:
      - every align@drop_*_000 row equals align's bitwise; align@without_<set> equals drop_<set>_100
      - drop_text+visual+audio_100 (cf alone) changes the rows
      - Gaussian noise at 30 dB stays closer to the intact rows than at -10 dB (mean |NDCG@10 diff|)
      - align@cold holds align's rows of the users whose test item is cold, NaN elsewhere
      - NumPy reference of the aligner (encoders, shared projector, gate fusion) and of full-ranking
        NDCG@10 with ties at their expected rank: the stored z_base, and per-user rows of a 100%
        drop, a 50% drop (the item choice drawn with a Python xoshiro256**), noise at 0 dB (the
        same Box-Muller draws) and a shuffle (the same Fisher-Yates permutation); items_perturbed
        and noise_sigma attributes recomputed
  check_stress.py absent RUNDIR MOD        MOD is absent for every item: each variant of MOD alone
                                           equals align bitwise, and drop_<X+MOD>_100 equals
                                           drop_<X>_100 for every other modality X
"""
import math
import sys

import h5py
import numpy as np

MODS = ["cf", "text", "visual", "audio"]
M64 = (1 << 64) - 1
TAG_DROP, TAG_NOISE, TAG_SHUFFLE = 0xD809, 0x4015E, 0x5F1F


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


# ---- dm_rng (src/core/rng.c) in Python --------------------------------------------------------

def splitmix(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def rng_key(seed, a, b):
    s, h = splitmix(seed & M64)
    s = h ^ ((a * 0xD1342543DE82EF95) & M64)
    s, h = splitmix(s)
    s = h ^ ((b * 0xA0761D6478BD642F + 0x2545F4914F6CDD1D) & M64)
    s, h = splitmix(s)
    return h


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


class Rng:
    def __init__(self, seed):
        self.s = []
        st = seed
        for _ in range(4):
            st, v = splitmix(st)
            self.s.append(v)

    def u64(self):
        s = self.s
        result = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def uniform(self):
        return (self.u64() >> 11) * 2.0 ** -53

    def below(self, n):
        if n <= 1:
            return 0
        m = self.u64() * n
        if (m & M64) < n:
            t = ((1 << 64) - n) % n
            while (m & M64) < t:
                m = self.u64() * n
        return m >> 64

    def normal(self):
        u1, u2 = self.uniform(), self.uniform()
        if u1 < 1e-300:
            u1 = 1e-300
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(6.283185307179586 * u2)


# ---- files -------------------------------------------------------------------------------------

def per_user(f):
    out = {}
    for sp in ("valid", "test"):
        if sp not in f:
            continue
        for p in f[sp]:
            for m in f[sp][p]:
                out["%s/%s/%s" % (sp, p, m)] = f[sp][p][m]
    return out


def columns(f):
    chars = f["columns/chars"][...].tobytes()
    o = f["columns/offsets"][...]
    return [chars[o[i]:o[i + 1]].decode() for i in range(len(o) - 1)]


def same(a, b):
    return a.shape == b.shape and a.tobytes() == b.tobytes()


def equal(a, b):
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        da, db = per_user(fa), per_user(fb)
        if sorted(da) != sorted(db):
            fail("different entries: %s" % sorted(set(da) ^ set(db))[:5])
        for k in da:
            if not same(da[k][...], db[k][...]):
                fail("%s differs" % k)
            # the means are sums over ranks: equal up to the summation order
            ma, mb = da[k].attrs["mean"], db[k].attrs["mean"]
            if not np.allclose(ma, mb, rtol=1e-12, atol=1e-15, equal_nan=True) or da[k].attrs["users"] != db[k].attrs["users"]:
                fail("%s: mean or users differ" % k)
    print("equal: %d per-user datasets bitwise identical (means within 1e-12)" % len(da))


class Aligner:
    """The frozen aligner of align.h5 in float64 NumPy (src/align/align.h)."""

    def __init__(self, path):
        with h5py.File(path, "r") as f:
            a = f["align"].attrs
            self.dim = {m: int(a["dim_" + m]) for m in MODS}
            self.act = int(a["act"])
            self.gate = int(a["fusion"]) == 1
            self.w = {k: f["align/weights/" + k][...].astype(np.float64) for k in f["align/weights"]}
            self.x, self.present = {}, {}
            for m in MODS:
                if self.dim[m]:
                    self.x[m] = f["align/inputs/%s/x" % m][...]
                    self.present[m] = f["align/inputs/%s/present" % m][...].astype(bool)
            self.z_base = f["align/z_base"][...]
            self.h_test = f["align/h_test"][...].astype(np.float64)
        if self.act != 0:
            fail("the reference implements relu only (align.act = %d)" % self.act)

    def modality(self, m, x):
        w = self.w
        h = np.maximum(x.astype(np.float64) @ w["enc.%s.w1" % m].T + w["enc.%s.b1" % m], 0.0)
        o = h @ w["enc.%s.w2" % m].T + w["enc.%s.b2" % m]
        return o @ w["proj.w"].T + w["proj.b"]

    def fuse(self, x, present):
        """z_base of every item from features x[m] (n, D) and presence present[m] (n)."""
        n = self.z_base.shape[0]
        d = self.z_base.shape[1]
        zs, ss, ms = [], [], []
        for k, m in enumerate(MODS):
            if not self.dim[m]:
                continue
            z = self.modality(m, x[m])
            s = (self.w["fuse.gate"][k] + z @ self.w["fuse.query"]) if self.gate else np.zeros(n)
            zs.append(z)
            ss.append(np.where(present[m], s, -np.inf))
            ms.append(present[m])
        S = np.stack(ss, 1)
        P = np.stack(ms, 1)
        mx = np.where(P.any(1), S.max(1), 0.0)
        e = np.where(P, np.exp(S - mx[:, None]), 0.0)
        tot = e.sum(1)
        alpha = np.where(P, e / np.where(tot > 0, tot, 1.0)[:, None], 0.0)
        out = np.zeros((n, d))
        for j, z in enumerate(zs):
            out += alpha[:, j:j + 1] * z
        return out


def ndcg10(ds, h, z):
    """Full-ranking NDCG@10 of every user's test item, history excluded, ties at the expected rank."""
    with h5py.File(ds, "r") as f:
        off, item = f["users/offsets"][...], f["inter/item"][...]
        r = f["split/loo"][...]
    z32 = z.astype(np.float32).astype(np.float64)
    scores = (h @ z32.T).astype(np.float32)
    out = np.full(len(off) - 1, np.nan)
    for u in range(len(off) - 1):
        tgt = [item[j] for j in range(off[u], off[u + 1]) if r[j] == 2]
        if not tgt:
            continue
        hist = [item[j] for j in range(off[u], off[u + 1]) if r[j] < 2]
        t = tgt[0]
        mask = np.ones(z.shape[0], bool)
        mask[hist] = False
        mask[t] = True
        s = scores[u][mask]
        g = int((s > scores[u, t]).sum())
        b = int((s == scores[u, t]).sum())
        ranks = np.arange(g + 1, g + b + 1)
        out[u] = float(np.where(ranks <= 10, 1.0 / np.log2(ranks + 1), 0.0).mean())
    return out


def compare_rows(name, ref, rows, n10):
    got = rows[:, n10]
    ok = np.isfinite(ref)
    if not np.array_equal(ok, np.isfinite(got)):
        fail("%s: scored users differ from the reference" % name)
    diff = np.abs(ref[ok] - got[ok])
    bad = (diff > 1e-6).mean()
    md = abs(ref[ok].mean() - got[ok].mean())
    print("  %-32s NDCG@10 %.4f (reference %.4f), users differing %.2f%%, |mean diff| %.2g" % (name, got[ok].mean(), ref[ok].mean(), 100 * bad, md))
    if bad > 0.02 or md > 2e-3:
        fail("%s differs from the NumPy reference" % name)


def check(rundir):
    res, ds, al = rundir + "/results.h5", rundir + "/dataset.h5", rundir + "/align.h5"
    A = Aligner(al)
    with h5py.File(res, "r") as f:
        E = per_user(f)
        cols = columns(f)
        n10 = cols.index("ndcg@10")
        seed = int(f.attrs["stress_seed"]) & M64
        intact = {k.rsplit("/", 1)[0]: E[k][...] for k in E if k.endswith("/align")}
        names = sorted(k for k in E if "/align@" in k)
        if not names:
            fail("no stress variants in %s" % res)
        # 0% drops and the without_ aliases
        zero = [k for k in names if "@drop_" in k and k.endswith("_000")]
        for k in zero:
            if not same(E[k][...], intact[k.rsplit("/", 1)[0]]):
                fail("%s differs from the intact aligner" % k)
            if E[k].attrs["items_perturbed"] != 0:
                fail("%s perturbed items" % k)
        wo = [k for k in names if "@without_" in k]
        for k in wo:
            twin = k.replace("@without_", "@drop_") + "_100"
            if twin in E and not same(E[k][...], E[twin][...]):
                fail("%s differs from %s" % (k, twin))
        print("stress: %d variants; %d drops at 0%% equal the intact rows bitwise; %d without_ equal their 100%% drop" % (len(names), len(zero), len(wo)))
        k = "test/full/align@drop_text+visual+audio_100"
        if k not in E:
            fail("no %s" % k)
        if same(E[k][...], intact["test/full"]):
            fail("dropping every modality but cf changes nothing")
        # noise: 30 dB closer to intact than -10 dB
        base = intact["test/full"][:, n10]
        for m in MODS:
            a, b = "test/full/align@noise_%s_30" % m, "test/full/align@noise_%s_-10" % m
            if a not in E or not A.dim[m] or not A.present[m].any():
                continue
            d30 = np.nanmean(np.abs(E[a][...][:, n10] - base))
            d10 = np.nanmean(np.abs(E[b][...][:, n10] - base))
            print("  noise on %-6s mean |NDCG@10 - intact|: %.5f at 30 dB, %.5f at -10 dB" % (m, d30, d10))
            if not d30 < d10:
                fail("noise on %s: 30 dB is not closer to the intact aligner than -10 dB" % m)
        # cold subset
        with h5py.File(ds, "r") as g:
            off, item, r = g["users/offsets"][...], g["inter/item"][...], g["split/loo"][...]
        cold = np.ones(A.z_base.shape[0], bool)
        cold[item[r == 0]] = False
        k = "test/full/align@cold"
        if cold.any() and k in E:
            rows = E[k][...]
            for u in range(len(off) - 1):
                c = any(r[j] == 2 and cold[item[j]] for j in range(off[u], off[u + 1]))
                want = intact["test/full"][u] if c else np.full(rows.shape[1], np.nan)
                if not same(rows[u], want):
                    fail("align@cold: user %d" % u)
            print("  align@cold: %d users whose test item is one of %d cold items" % (np.isfinite(rows[:, 0]).sum(), cold.sum()))
        elif cold.any() and any(cold[item[j]] for j in range(len(item)) if r[j] == 2):
            fail("cold test items but no %s" % k)

        # ---- NumPy reference ----
        x = {m: A.x[m] for m in A.x}
        z0 = A.fuse(x, A.present)
        err = np.abs(z0 - A.z_base).max()
        print("  reference z_base: max |z_numpy - z_stored| = %.2g" % err)
        if err > 1e-4 * max(1.0, np.abs(A.z_base).max()):
            fail("the NumPy aligner does not reproduce the stored z_base")
        n = A.z_base.shape[0]

        def run(name, pres, xx, z_keep=None):
            z = A.fuse(xx, pres)
            if z_keep is not None:  # items the variant does not touch keep their stored rows
                z = np.where(z_keep[:, None], A.z_base.astype(np.float64), z)
            compare_rows(name, ndcg10(ds, A.h_test, z), E["test/full/align@" + name][...], n10)

        # 100% drop of text, visual and audio: cf alone
        pres = {m: (A.present[m] if m == "cf" else np.zeros(n, bool)) for m in A.present}
        run("drop_text+visual+audio_100", pres, x)
        # 50% drop of visual: the item choice of stress.h
        if "visual" in A.present and "test/full/align@drop_visual_050" in E:
            mask = 1 << MODS.index("visual")
            chosen = np.array([A.present["visual"][i] and Rng(rng_key(seed ^ TAG_DROP, mask, i)).uniform() < 0.5 for i in range(n)])
            got = int(E["test/full/align@drop_visual_050"].attrs["items_perturbed"])
            print("  drop_visual_050: %d of %d items with visual chosen (stored %d)" % (chosen.sum(), A.present["visual"].sum(), got))
            if got != chosen.sum():
                fail("drop_visual_050 perturbed %d items, the reference chooses %d" % (got, chosen.sum()))
            pres = dict(A.present)
            pres["visual"] = A.present["visual"] & ~chosen
            run("drop_visual_050", pres, x, ~chosen)
        # noise on visual at 0 dB: the same draws
        if "visual" in A.present and "test/full/align@noise_visual_0" in E:
            k = MODS.index("visual")
            xv = A.x["visual"]
            pv = A.present["visual"]
            P = float(np.sum(xv[pv].astype(np.float64) ** 2) / (pv.sum() * xv.shape[1]))
            sigma = math.sqrt(P / 10.0 ** (0.0 / 10.0))
            got = float(E["test/full/align@noise_visual_0"].attrs["noise_sigma"])
            if abs(got - sigma) > 1e-9 * sigma:
                fail("noise_visual_0: sigma %.10g, the reference %.10g" % (got, sigma))
            xn = xv.copy()
            for i in np.nonzero(pv)[0]:
                r = Rng(rng_key(seed ^ TAG_NOISE, k, int(i)))
                eps = np.array([r.normal() for _ in range(xv.shape[1])])
                xn[i] = (xv[i].astype(np.float64) + sigma * eps).astype(np.float32)
            xx = dict(x)
            xx["visual"] = xn
            run("noise_visual_0", A.present, xx, ~pv)
        # shuffled text: the same permutation
        if "text" in A.present and "test/full/align@shuffle_text" in E:
            k = MODS.index("text")
            P = np.nonzero(A.present["text"])[0]
            perm = list(range(len(P)))
            r = Rng(rng_key(seed ^ TAG_SHUFFLE, k, 0))
            for j in range(len(P), 1, -1):
                q = r.below(j)
                perm[j - 1], perm[q] = perm[q], perm[j - 1]
            xs = A.x["text"].copy()
            xs[P] = A.x["text"][P[perm]]
            xx = dict(x)
            xx["text"] = xs
            run("shuffle_text", A.present, xx, ~A.present["text"])
    print("check: ok")


def absent(rundir, mod):
    with h5py.File(rundir + "/align.h5", "r") as f:
        if int(f["align"].attrs["dim_" + mod]) and f["align/inputs/%s/present" % mod][...].any():
            fail("%s is present for some item; the check needs it absent everywhere" % mod)
    with h5py.File(rundir + "/results.h5", "r") as f:
        E = per_user(f)
        intact = {k.rsplit("/", 1)[0]: E[k][...] for k in E if k.endswith("/align")}
        alone = [k for k in E if any(("@%s_%s" % (kind, mod)) in k for kind in ("drop", "noise", "shuffle", "without"))]
        alone = [k for k in alone if "+" not in k.rsplit("@", 1)[1]]
        if not alone:
            fail("no variant of %s alone" % mod)
        for k in alone:
            if not same(E[k][...], intact[k.rsplit("/", 1)[0]]):
                fail("%s differs from the intact aligner" % k)
        pairs = 0
        for k in E:
            v = k.rsplit("@", 1)[-1] if "@" in k else ""
            if not v.startswith("drop_") or not v.endswith("_100") or "+" not in v:
                continue
            set_ = v[5:-4].split("+")
            if mod not in set_ or len(set_) != 2:
                continue
            other = [m for m in set_ if m != mod][0]
            twin = k.rsplit("@", 1)[0] + "@drop_%s_100" % other
            if not same(E[k][...], E[twin][...]):
                fail("%s differs from %s" % (k, twin))
            pairs += 1
    print("absent: %d variants of %s alone equal the intact aligner bitwise; %d pairs at 100%% equal the other modality's drop" % (len(alone), mod, pairs))


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "equal":
        equal(sys.argv[2], sys.argv[3])
    elif cmd == "check":
        check(sys.argv[2])
    elif cmd == "absent":
        absent(sys.argv[2], sys.argv[3])
    else:
        print(__doc__)
        sys.exit(2)
