#!/usr/bin/python3
"""bench_sasrec.py DIR THREADS STEPS WARMUP: training throughput of the PyTorch SASRec
(tests/reference/sasrec_torch.py, the same arrangement as the C kernels) on the batches that
bench_sasrec gen wrote to DIR. One step = zero_grad, forward, BCE loss over the targets, backward,
Adam (betas 0.9, 0.98) -- pmixer/SASRec.pytorch's training loop. Prints
"sasrec_torch threads=.. seq_per_s=.. ms_per_step=..". Run with Debian's /usr/bin/python3.
"""
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from sasrec_torch import SASRec  # noqa: E402

N_ITEMS, B, T, K = 12101, 128, 50, 16


def main():
    d, threads, steps, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    load = lambda name: torch.from_numpy(
        np.fromfile(os.path.join(d, name), dtype="<i4").reshape(K, B, T).astype(np.int64))
    seq, pos, neg = load("seq.i32"), load("pos.i32"), load("neg.i32")
    model = SASRec(N_ITEMS, C=50, T=T, L=2, H=1, dropout=0.5, norm="kang")
    model.reference_init(torch.Generator().manual_seed(1))
    model.train()
    opt = torch.optim.Adam(model.params(), lr=1e-3, betas=(0.9, 0.98))
    lsum, t0 = 0.0, 0.0
    for s in range(warmup + steps):
        if s == warmup:
            t0 = time.perf_counter()
        k = s % K
        opt.zero_grad()
        loss = model.loss(seq[k], pos[k], neg[k], "bce")
        loss.backward()
        opt.step()
        if s >= warmup:
            lsum += float(loss)
    dt = time.perf_counter() - t0
    print("sasrec_torch threads=%d steps=%d seq_per_s=%.1f ms_per_step=%.3f mean_loss=%.4f"
          % (threads, steps, steps * B / dt, 1e3 * dt / steps, lsum / steps))


if __name__ == "__main__":
    main()
