"""Time flash_fwd.cu on the harness in each mode: `python -m minitorch_attn.kernels.cuda.harness.bench`.

Shape B=1, H=2, N=256, d=64 (grid 64 x 2 blocks of 128 threads, 8 key tiles each). Prints the best and the
median of `--repeat` launches, wall-clock and CPU time of this process, for: fibers, fibers while tracing one
block, threads. On a shared machine trust the CPU times (and the best of several) more than the wall times.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from .. import SOURCE_DIR
from ..forward import run_flash_forward
from .launcher import CpuModule


def _time(fn, repeat):
    fn()  # warm up (and compile)
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), float(np.median(walls)), min(cpus), float(np.median(cpus))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 256, 64)).astype(np.float32) for _ in range(3))
    fibers = CpuModule(path=SOURCE_DIR / "flash_fwd.cu").get_function("flash_fwd")
    threads = CpuModule(path=SOURCE_DIR / "flash_fwd.cu", mode="threads").get_function("flash_fwd")
    cases = {"fibers": lambda: run_flash_forward(fibers, q, k, v, seed=1),
             "fibers, tracing block (0, 0)": lambda: run_flash_forward(fibers.traced((0, 0), seed=1), q, k, v),
             "threads": lambda: run_flash_forward(threads, q, k, v)}
    print(f"flash_fwd B=1 H=2 N=256 d=64, {args.repeat} launches each (seconds)")
    print(f"{'':30} {'wall best':>10} {'median':>8} {'CPU best':>10} {'median':>8}")
    for name, fn in cases.items():
        print(f"{name:30} " + " ".join(f"{x:{w}.3f}" for x, w in zip(_time(fn, args.repeat), (10, 8, 10, 8))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
