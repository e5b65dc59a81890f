"""Perturbed numerics: run code as if on another machine, to prove that stored notebook outputs do not
depend on the CPU, the BLAS kernel, the thread count or the SIMD width.

A learner's laptop and an instructor's CI runner differ from the machine a notebook was executed on. The
low-order bits of a float result differ with them: a BLAS kernel written for another ISA sums in another
order, one thread sums in another order than two, LLVM vectorises for another width. A stored output that
prints such bits passes nbval on the author's machine and fails on the learner's. So CI executes every lesson
a second time with all of these changed at once (`PERTURBED`), and nbval must still accept the stored outputs.

    python -m minitorch_attn.course.perturb checksums        # show that the perturbation changes bits
    python -m minitorch_attn.course.perturb nbval [PATHS]    # nbval over lessons/ (or PATHS), perturbed

`python -m minitorch_attn lessons build NN` runs `perturb nbval` over the notebooks it wrote (CI runs it over
every lesson).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys

# Each variable moves a different source of low-order bits (all of them are read when a library loads, so
# they must be set before the process starts: hence subprocesses).
PERTURBED = {
    "OPENBLAS_CORETYPE": "Haswell",  # NumPy's OpenBLAS: the AVX2 kernels instead of the host's (AVX-512 or Zen)
    "OPENBLAS_NUM_THREADS": "1",  # ... on one thread: another split of every GEMM
    "NUMBA_NUM_THREADS": "1",  # Numba's prange: one worker
    "NUMBA_CPU_NAME": "generic",  # LLVM compiles for a baseline x86-64: 128-bit vectors, other reduction orders
    "ATEN_CPU_CAPABILITY": "default",  # torch's non-vectorised kernels (softmax, elementwise ops)
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",  # torch's GEMMs through MKL: AVX2 kernels on an AVX-512 machine
    "OMP_NUM_THREADS": "1",  # torch's intra-op threads, and OpenMP everywhere
    "MKL_NUM_THREADS": "1",
}


def perturbed_env(base: dict | None = None) -> dict:
    """A copy of the environment with every perturbation set (and its own Numba cache directory)."""
    import tempfile

    env = dict(os.environ if base is None else base)
    env.update(PERTURBED)
    numpy_simd = _numpy_simd_targets()
    if numpy_simd:  # NumPy's own SIMD loops (exp, log, tanh, ...): the baseline ones, as on an older CPU
        env["NPY_DISABLE_CPU_FEATURES"] = " ".join(numpy_simd)
    # code compiled for another CPU must neither reuse nor overwrite the host's Numba cache
    env["NUMBA_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), "minitorch_attn-numba-cache-generic")
    return env


def _numpy_simd_targets() -> list[str]:
    """The SIMD targets NumPy dispatches to on this CPU beyond its baseline (e.g. X86_V3, X86_V4, AVX512_SPR):
    disabled in the perturbed run. Only those this CPU has: NumPy refuses to disable what it cannot detect."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # another NumPy layout: leave NumPy's dispatch alone
        return []
    return [t for t in __cpu_dispatch__ if __cpu_features__.get(t)]


def _digest(a) -> str:
    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:12]


def _fastmath_dot(x, y):
    from numba import njit

    @njit(fastmath=True, cache=False)
    def dot(x, y):  # a reduction LLVM may reorder: its vector width decides the summation order
        s = x.dtype.type(0)
        for i in range(x.size):
            s += x[i] * y[i]
        return s

    return dot(x, y)


def checksums() -> dict:
    """Checksums of a few float results computed in this process: a NumPy SGEMM, a Numba flash-attention
    forward and a torch matmul (if torch is installed)."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((257, 129)).astype(np.float32)
    b = rng.standard_normal((129, 263)).astype(np.float32)
    out = {"numpy sgemm": _digest(a @ b), "numpy exp float64": _digest(np.exp(a.astype(np.float64) * 10))}

    from ..kernels import flash_attention

    q, k, v = (rng.standard_normal((1, 2, 300, 64)).astype(np.float32) for _ in range(3))
    o, lse = flash_attention(q, k, v, backend="numba")
    out["numba flash forward"] = _digest(o)  # each output row has one owner: same bits on any thread count
    out["numba fastmath dot"] = _digest(np.float32(_fastmath_dot(a.ravel(), b.ravel()[: a.size])))

    try:
        import torch
    except ImportError:
        out["torch matmul"] = out["torch softmax"] = "no torch"
    else:
        t = torch.from_numpy(a) @ torch.from_numpy(b)
        out["torch matmul"] = _digest(t.numpy())
        out["torch softmax"] = _digest(torch.softmax(torch.from_numpy(a), -1).numpy())
    return out


def _child_checksums(env: dict) -> dict:
    code = "import json; from minitorch_attn.course.perturb import checksums; print(json.dumps(checksums()))"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"checksum child failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare_checksums() -> tuple[dict, dict]:
    """(host, perturbed) checksums, each computed in a fresh process."""
    return _child_checksums(dict(os.environ)), _child_checksums(perturbed_env())


def _notebooks(paths: list[str]) -> list[str]:
    """The .ipynb files named by `paths` (files, or directories searched one level deep), in order."""
    from pathlib import Path

    out = []
    for p in map(Path, paths):
        out += sorted(str(f) for f in p.glob("*.ipynb")) if p.is_dir() else [str(p)]
    return out


def _stored_seconds(path: str) -> float:
    """How long the notebook's cells took when it was built (from nbclient's execution timestamps), else 0."""
    from datetime import datetime

    try:
        cells = json.loads(open(path, encoding="utf-8").read())["cells"]
        total = 0.0
        for cell in cells:
            e = cell.get("metadata", {}).get("execution", {})
            if "iopub.execute_input" in e and "shell.execute_reply" in e:
                start, end = (datetime.fromisoformat(e[k].replace("Z", "+00:00"))
                              for k in ("iopub.execute_input", "shell.execute_reply"))
                total += (end - start).total_seconds()
        return total
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def nbval(paths: list[str], extra: list[str] | None = None, jobs: int | None = None) -> int:
    """Run nbval over the notebooks in `paths` under the perturbation; returns 0 when every one passes.

    Everything runs on one thread under the perturbation, so `jobs` notebooks (default: 2 when the machine has
    2 or more cores) run at once, each in its own pytest process, the longest first (their stored execution
    times): the pass takes about half as long on 2 cores. Each notebook's output is printed when it is done."""
    from concurrent.futures import ThreadPoolExecutor

    notebooks = sorted(_notebooks(paths), key=_stored_seconds, reverse=True)
    jobs = jobs or (2 if (os.cpu_count() or 1) >= 2 else 1)
    env = perturbed_env()

    def run(path):
        cmd = [sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env", "-q", "-p", "no:cacheprovider",
               *(extra or []), path]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        status = "passed" if done.returncode == 0 else "FAILED"
        print(f"---- {path}: {status}\n{done.stdout[-6000:]}{done.stderr[-2000:]}", flush=True)
        return path, done.returncode

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(run, notebooks))
    failed = [p for p, rc in results if rc not in (0, 5)]  # 5: nothing collected (a skipped lesson)
    print(f"perturbed nbval: {len(results) - len(failed)} of {len(results)} notebooks passed"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minitorch_attn.course.perturb", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("checksums", help="checksums of float results on the host and perturbed; fail if none differ")
    n = sub.add_parser("nbval", help="nbval under the perturbation")
    n.add_argument("paths", nargs="*", default=["lessons"])
    args = parser.parse_args(argv)
    if args.command == "nbval":
        print("perturbed numerics: " + " ".join(f"{k}={v}" for k, v in PERTURBED.items()),
              flush=True)
        return nbval(args.paths)
    host, pert = compare_checksums()
    print(f"{'result':22} {'host':14} {'perturbed':14} differs")
    for key in host:
        print(f"{key:22} {host[key]:14} {pert[key]:14} {host[key] != pert[key]}")
    changed = [k for k in host if host[k] != pert[k]]
    if not changed:
        print("the perturbation changed no bits on this machine: it proves nothing here", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
