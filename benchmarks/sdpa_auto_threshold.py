"""Where F.scaled_dot_product_attention's "auto" backend should switch from "naive" to "numba".

Times forward + backward through autograd (the way modules use it), B=4, H=4, d=32, causal, float32,
for growing N, best of 5 after a warm-up (so Numba's one-off compilation is excluded), in one process.
Prints naive/numba: above 1 means the Numba kernels win. `sdpa.AUTO_MIN_SCORES` is set from this.

    python benchmarks/sdpa_auto_threshold.py
"""

import time

import numpy as np

import minitorch_attn as mta
from minitorch_attn import functional as F


def main(sizes=(16, 32, 64, 128, 256, 512), B=4, H=4, d=32):
    rng = np.random.default_rng(0)
    print(f"B={B} H={H} d={d} causal float32, forward+backward, best of 5")
    print(f"{'N':>5} {'naive ms':>9} {'numba ms':>9} {'naive/numba':>12}")
    for N in sizes:
        q, k, v = (mta.tensor(rng.standard_normal((B, H, N, d)).astype(np.float32), requires_grad=True)
                   for _ in range(3))
        best = {}
        for backend in ("naive", "numba"):
            F.scaled_dot_product_attention(q, k, v, is_causal=True, backend=backend).sum().backward()
            times = []
            for _ in range(5):
                start = time.perf_counter()
                out = F.scaled_dot_product_attention(q, k, v, is_causal=True, backend=backend)
                out.backward(np.ones_like(out.data))
                times.append(time.perf_counter() - start)
            best[backend] = min(times)
        print(f"{N:>5} {best['naive'] * 1e3:>9.2f} {best['numba'] * 1e3:>9.2f} {best['naive'] / best['numba']:>12.2f}")


if __name__ == "__main__":
    main()
