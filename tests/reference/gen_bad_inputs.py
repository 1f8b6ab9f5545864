#!/usr/bin/env python3
"""Writes the corpus of malformed inputs for tests/cli/test_bad_input.sh into OUT/bad/.

Each case is a small input (or config) that `dynmm ingest` must refuse with a clear error naming
the file and line (or byte offset, row, key): manifest.tsv lists name, the --set arguments (| separated),
and a regular expression the error message must match.
"""
import gzip, io, json, os, struct, sys

import numpy as np

out = os.path.join(sys.argv[1], "bad")
os.makedirs(out, exist_ok=True)
cases = []


def path(name):
    return os.path.join(out, name)


def case(name, sets, expect):
    cases.append((name, "|".join(sets), expect))


def review(u, i, t):
    return json.dumps({"reviewerID": u, "asin": i, "unixReviewTime": t}) + "\n"


good = "".join(review("U%d" % (k % 50), "I%d" % (k % 30), 1000000 + k) for k in range(300))
with gzip.open(path("good_reviews.json.gz"), "wt") as f:
    f.write(good)
meta = "".join("{'asin': 'I%d', 'title': 'Item %d', 'brand': 'B'}\n" % (k, k) for k in range(30))
with open(path("good_meta.json"), "w") as f:
    f.write(meta)
amazon = ["data.format=amazon2014", "data.inter=" + path("good_reviews.json.gz")]

# truncated gzip
blob = gzip.compress(good.encode())
with open(path("truncated.json.gz"), "wb") as f:
    f.write(blob[: len(blob) // 2])
case("truncated_gzip", ["data.format=amazon2014", "data.inter=" + path("truncated.json.gz")],
     r"truncated\.json\.gz' is truncated or corrupt after byte")

# broken JSON on line 3
lines = good.splitlines(True)
with open(path("broken_json.json"), "w") as f:
    f.write("".join(lines[:2]) + '{"reviewerID": "U1", "asin": "I2" "unixReviewTime": 5}\n' + "".join(lines[3:]))
case("broken_json", ["data.format=amazon2014", "data.inter=" + path("broken_json.json")],
     r"broken_json\.json' line 3: broken JSON at column 35: expected ',' or '\}', found '\"'")

# broken JSON on a line that only rank 1 of 2 reads (lines 4097.. belong to the second stripe)
big = "".join(review("U%d" % (k % 500), "I%d" % (k % 300), 2000000 + k) for k in range(6000)).splitlines(True)
big[4500] = '{"reviewerID": "U7", "asin": \n'
with open(path("broken_far.json"), "w") as f:
    f.write("".join(big))
case("broken_json_other_rank", ["data.format=amazon2014", "data.inter=" + path("broken_far.json")],
     r"broken_far\.json' line 4501: broken JSON")

# missing field
with open(path("missing_field.json"), "w") as f:
    f.write('{"asin": "I1", "unixReviewTime": 5}\n')
case("missing_field", ["data.format=amazon2014", "data.inter=" + path("missing_field.json")],
     r"missing_field\.json' line 1: no 'reviewerID' field")

# broken Python literal in 2014 metadata, line 2
with open(path("broken_meta.json"), "w") as f:
    f.write("{'asin': 'I1', 'title': 'ok'}\n{'asin': 'I2', 'title': 'unterminated}\n")
case("broken_python_literal", amazon + ["data.meta=" + path("broken_meta.json")],
     r"broken_meta\.json' line 2: broken Python literal at column 25: unterminated string")

# empty interaction files
open(path("empty.tsv"), "w").close()
case("empty_tsv", ["data.format=tsv", "data.inter=" + path("empty.tsv")], r"empty\.tsv' is empty")
with gzip.open(path("empty.json.gz"), "wt") as f:
    pass
case("empty_gzip", ["data.format=amazon2014", "data.inter=" + path("empty.json.gz")],
     r"empty\.json\.gz' has no interactions")

# tsv problems
with open(path("short.tsv"), "w") as f:
    f.write("user\titem\n1\t2\n3\n")
case("tsv_too_few_fields", ["data.format=tsv", "data.inter=" + path("short.tsv"), "data.user_col=user", "data.item_col=item"],
     r"short\.tsv' line 3: expected at least 2 fields")
with open(path("quote.csv"), "w") as f:
    f.write('user,item\n1,2\n"3,4\n')
case("csv_unterminated_quote", ["data.format=tsv", "data.inter=" + path("quote.csv"), "data.user_col=user", "data.item_col=item"],
     r"quote\.csv' line 3: an unterminated quote")

# missing file
case("missing_file", ["data.format=amazon2014", "data.inter=" + path("does_not_exist.json.gz")],
     r"cannot open '.*does_not_exist\.json\.gz': No such file")

# feature matrices
items = 30  # I0..I29 in good_reviews; features need numeric ids, so use a tsv dataset
with open(path("inter.tsv"), "w") as f:
    f.write("".join("%d\t%d\n" % (u, (u * 7 + k) % items) for u in range(40) for k in range(6)))
tsv = ["data.format=tsv", "data.inter=" + path("inter.tsv")]
x = np.random.default_rng(1).standard_normal((items, 8)).astype(np.float32)
np.save(path("ok.npy"), x)
with open(path("bad_magic.npy"), "wb") as f:
    f.write(b"\x93NUMPX" + open(path("ok.npy"), "rb").read()[6:])
case("npy_bad_magic", tsv + ["modal.visual.path=" + path("bad_magic.npy")], r"bad_magic\.npy' is not a NumPy \.npy file")
np.save(path("int.npy"), x.astype(np.int32))
case("npy_wrong_dtype", tsv + ["modal.visual.path=" + path("int.npy")], r"int\.npy' has dtype '<i4'")
np.save(path("three_d.npy"), x.reshape(items, 2, 4))
case("npy_wrong_shape", tsv + ["modal.visual.path=" + path("three_d.npy")], r"three_d\.npy' has 3 dimensions")
np.save(path("fortran.npy"), np.asfortranarray(x))
case("npy_fortran_order", tsv + ["modal.visual.path=" + path("fortran.npy")], r"fortran\.npy' is stored in Fortran")
raw = open(path("ok.npy"), "rb").read()
with open(path("short.npy"), "wb") as f:
    f.write(raw[:-10])
case("npy_truncated", tsv + ["modal.visual.path=" + path("short.npy")], r"short\.npy' is truncated")
y = x.copy(); y[2, 1] = np.nan
np.save(path("nan.npy"), y)
case("features_nan", tsv + ["modal.audio.path=" + path("nan.npy")], r"nan\.npy' row 2 column 1 is NaN")
y = x.copy(); y[5, 0] = np.inf
np.save(path("inf.npy"), y.astype(np.float16))
case("features_inf", tsv + ["modal.audio.path=" + path("inf.npy")], r"inf\.npy' row 5 column 0 is infinite")
np.save(path("toomany.npy"), np.ones((items + 3, 8), np.float32))
case("features_unknown_item", tsv + ["modal.visual.path=" + path("toomany.npy")],
     r"toomany\.npy' row 30 belongs to item '30', which is not in the interactions")
with open(path("dup_ids.txt"), "w") as f:
    f.write("".join("%d\n" % k for k in range(items - 1)) + "3\n")
case("features_duplicate_ids", tsv + ["modal.visual.path=" + path("ok.npy"), "modal.visual.ids=" + path("dup_ids.txt")],
     r"dup_ids\.txt' line 30 repeats id '3' \(first at line 4\)")
x.tofile(path("raw.f32"))
case("raw_f32_wrong_shape", tsv + ["modal.visual.path=" + path("raw.f32"), "modal.visual.shape=[30,9]"],
     r"raw\.f32' has 960 bytes; shape \(30, 9\) of float32 needs 1080")

# .npy shapes whose byte count overflows 64 bits: 30 * (2^62 + 2) wrapped to a small buffer and a
# read past it (a segfault); 30 * 2^62 wrapped to "needs 0 bytes ... found 0"
def npy_with_shape(name, shape, nbytes):
    h = "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }" % shape
    h += " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
    with open(path(name), "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + b"\0" * nbytes)

npy_with_shape("huge_shape.npy", "(30, 4611686018427387906)", 120)
case("npy_shape_overflow", tsv + ["modal.visual.path=" + path("huge_shape.npy")],
     r"huge_shape\.npy' has shape \(30, 4611686018427387906\), too large to address: its size overflows 64 bits")
npy_with_shape("shape_2p62.npy", "(30, 4611686018427387904)", 120)
case("npy_shape_2p62", tsv + ["modal.visual.path=" + path("shape_2p62.npy")],
     r"shape_2p62\.npy' has shape \(30, 4611686018427387904\), too large to address")

# timestamps that do not fit: 1e20 ms was stored as 0, INT64_MAX seconds as -1000 ms
rows = ["%d\t%d\t%d" % (u, (u * 7 + k) % items, 1000 + k) for u in range(40) for k in range(6)]
with open(path("time_big.tsv"), "w") as f:
    f.write("\n".join(rows[:4] + ["4\t5\t1e20"] + rows[4:]) + "\n")
case("tsv_time_out_of_range", ["data.format=tsv", "data.inter=" + path("time_big.tsv"), "data.time_col=2", "data.time_ms=true"],
     r"time_big\.tsv' line 5 column 3: timestamp '1e20' is out of range: milliseconds must fit a 64-bit integer")
with open(path("time_wrap.tsv"), "w") as f:
    f.write("\n".join(rows[:2] + ["4\t5\t9223372036854775807"] + rows[2:]) + "\n")
case("tsv_time_seconds_overflow", ["data.format=tsv", "data.inter=" + path("time_wrap.tsv"), "data.time_col=2"],
     r"time_wrap\.tsv' line 3 column 3: timestamp '9223372036854775807' \(seconds\) overflows a 64-bit integer when "
     r"converted to milliseconds")
lines = good.splitlines(True)
bad_line = '{"reviewerID": "U6", "asin": "I6", "unixReviewTime": 9223372036854775807}\n'
with open(path("time_overflow.json"), "w") as f:
    f.write("".join(lines[:6]) + bad_line + "".join(lines[7:]))
case("amazon_time_overflow", ["data.format=amazon2014", "data.inter=" + path("time_overflow.json")],
     r"time_overflow\.json' line 7 column %d \('unixReviewTime'\): timestamp '9223372036854775807' \(seconds\) overflows"
     % (bad_line.index("9223") + 1))

# bytes after the last gzip member were ignored (a concatenation of members is fine: see test_ingest_inputs)
with open(path("trailing_data.json.gz"), "wb") as f:
    f.write(blob + b"garbage\n")
case("gzip_trailing_data", ["data.format=amazon2014", "data.inter=" + path("trailing_data.json.gz")],
     r"trailing_data\.json\.gz' has trailing data after the gzip stream at byte %d \(of %d\)" % (len(blob), len(blob) + 8))

# data.header = "no", but line 1 is a header
with open(path("header.tsv"), "w") as f:
    f.write("user\titem\n" + open(path("inter.tsv")).read())
case("tsv_header_said_no", ["data.format=tsv", "data.inter=" + path("header.tsv"), "data.header=no"],
     r"header\.tsv' line 1 column 1: id 'user' is not an integer, while the ids on line 2 are: line 1 looks like a header")

# configs
def cfg(name, text):
    with open(path(name), "w") as f:
        f.write(text)
    return path(name)

cases.append(("config_unknown_key", "@" + cfg("unknown.cfg", 'data: {\n  formt = "tsv";\n};\n'),
              r"unknown\.cfg:2: unknown key 'data\.formt'.*did you mean 'data\.format'"))
cases.append(("config_wrong_type", "@" + cfg("type.cfg", 'synth: {\n  users = "many";\n};\n'),
              r"type\.cfg:2: 'synth\.users' must be an integer, found a string"))
cases.append(("config_out_of_range", "@" + cfg("range.cfg", 'split: {\n  temporal_test = 0.9;\n};\n'),
              r"range\.cfg:2: 'split\.temporal_test' = 0\.9 is out of range \[0, 0\.5\]"))
cases.append(("config_bad_enum", "@" + cfg("enum.cfg", 'data: { format = "parquet"; };\n'),
              r"enum\.cfg:1: 'data\.format' = \"parquet\" is not one of"))
cases.append(("config_syntax", "@" + cfg("syntax.cfg", 'data: {\n  format = "tsv";\n  inter = ;\n};\n'),
              r"syntax\.cfg:3: syntax error"))
cases.append(("config_missing", "@" + path("no_such.cfg"), r"cannot open config '.*no_such\.cfg'"))
case("set_unknown_key", ["synth.user=5"], r"--set: unknown key 'synth\.user'.*did you mean 'synth\.users'")
case("set_bad_value", ["synth.users=lots"], r"--set synth\.users: 'synth\.users' must be an integer, found 'lots'")

with open(os.path.join(out, "manifest.tsv"), "w") as f:
    for c in cases:
        f.write("\t".join(c) + "\n")
print("wrote %d bad-input cases to %s" % (len(cases), out))
