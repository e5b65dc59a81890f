"""The Numba flash kernels' two inner matmuls, side by side: tile_matmul's loops against the register tile.

    python benchmarks/flash_inner.py                 # N = 2048, H = 4, d = 64, float32, one thread
    python benchmarks/flash_inner.py --threads 2 --n 4096 --heads 8

Both variants run in one process, interleaved, best of `--repeat`; times are CPU time (time.process_time), which
a busy neighbour disturbs less than wall time. Prints the CPU and the LLVM target beside the numbers, and the
ratio loops / register tile. (Set NUMBA_NUM_THREADS before Python starts to be sure of the thread count; this
script sets it when --threads is given.)
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=2048)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=8)
    args = p.parse_args(argv)
    os.environ["NUMBA_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("MTA_TUNE", "off")  # both variants are named explicitly: nothing to tune

    import numpy as np

    from minitorch_attn.kernels.numba_backend import flash_backward_numba, flash_forward_numba
    from minitorch_attn.kernels.ops.threads import numba_target

    rng = np.random.default_rng(0)
    shape = (1, args.heads, args.n, args.dim)
    q, k, v, do = (rng.standard_normal(shape).astype(np.float32) for _ in range(4))
    variants = {"loops": False, "register tile": True}
    best = {name: [float("inf"), float("inf")] for name in variants}
    saved = {}
    for name, mk in variants.items():  # compile and warm up
        saved[name] = flash_forward_numba(q, k, v, microkernel=mk)
        flash_backward_numba(q, k, v, *saved[name], do, microkernel=mk)
    for _ in range(args.repeat):
        for name, mk in variants.items():
            t0 = time.process_time()
            flash_forward_numba(q, k, v, microkernel=mk)
            best[name][0] = min(best[name][0], time.process_time() - t0)
            t0 = time.process_time()
            flash_backward_numba(q, k, v, *saved[name], do, microkernel=mk)
            best[name][1] = min(best[name][1], time.process_time() - t0)
    target = numba_target()
    print(f"{cpu_name()}; LLVM '{target['llvm_cpu']}', vectors: {target['vectors']}; "
          f"{target['threads']} thread(s); load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"B=1, H={args.heads}, N={args.n}, d={args.dim}, float32; CPU time, best of {args.repeat} interleaved")
    for name, (f, b) in best.items():
        print(f"  {name:14} forward {f * 1e3:8.1f} ms   backward {b * 1e3:8.1f} ms")
    (lf, lb), (rf, rb) = best["loops"], best["register tile"]
    print(f"  loops / register tile: forward {lf / rf:.2f}x, backward {lb / rb:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
