"""st_io.py: safetensors files written and read by hand for the language-model references and
benchmarks (gen_gpt2.py, gen_llama.py, gen_llama_prompt.py, tests/bench/bench_lm.py): no safetensors
package is needed. A file is an 8-byte little-endian header length, a JSON header (space-padded to 8
bytes) naming each tensor's dtype, shape and byte range, then the raw little-endian bytes. A tensor
is written from (name, dtype name, shape, raw bytes), as f32, f16 and bf16 make them; up16 and
upbf16 round float32 values as those dtypes store them.
"""
import json
import struct

import numpy as np
import torch


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, dtype_name, shape, raw bytes)"""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    off = 0
    for name, dt, shape, raw in tensors:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, _, _, raw in tensors:
            f.write(raw)


def f32(name, a):
    a = np.ascontiguousarray(np.asarray(a, dtype=np.float32))
    return (name, "F32", a.shape, a.astype("<f4").tobytes())


def f16(name, a):
    a = np.ascontiguousarray(np.asarray(a, dtype=np.float32)).astype(np.float16)
    return (name, "F16", a.shape, a.astype("<f2").tobytes())


def bf16(name, a):
    t = torch.from_numpy(np.ascontiguousarray(np.asarray(a, dtype=np.float32))).to(torch.bfloat16)
    return (name, "BF16", tuple(t.shape), t.view(torch.int16).numpy().astype("<i2").tobytes())


def up16(a):
    return np.asarray(a, dtype=np.float32).astype(np.float16).astype(np.float32)


def upbf16(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float32)).to(torch.bfloat16).float().numpy()


def read_safetensors_f32(path):
    """{name: float32 array (a view into the file's bytes, read at once)} of an all-F32 file"""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        buf = np.fromfile(f, dtype=np.uint8)
    out = {}
    for name, e in hdr.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", name
        a, b = e["data_offsets"]
        out[name] = buf[a:b].view(np.float32).reshape(e["shape"])
    return out
