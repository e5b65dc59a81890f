"""Run the CUDA C kernels under ThreadSanitizer and AddressSanitizer on the CPU harness's thread mode.

    python -m minitorch_attn.kernels.cuda.sanitize                   # every registered kernel, both sanitizers
    python -m minitorch_attn.kernels.cuda.sanitize --sanitizer thread --kernel flash_fwd.cu
    python -m minitorch_attn.kernels.cuda.sanitize --kernel flash_fwd.cu --source my_edited_copy.cu

For every `kernels/cuda/*.cu` with a registered small launch (REGISTRY below), and each sanitizer:
1. compile the kernel in the harness's thread mode with -fsanitize=thread (or address), -O1 -g;
2. run the registered launches in a SUBPROCESS started with the sanitizer's runtime preloaded (LD_PRELOAD of
   the libtsan / libasan that `g++ -print-file-name` finds): the sanitizer must be loaded before anything else;
3. fail on any report (the report is printed, cut down to the kernel's frames), and on outputs that differ
   from the default fiber mode's.
Prints a table (kernel, sanitizer, shapes, result, seconds); exits 1 on any finding.

What they find: ThreadSanitizer, two accesses to the same memory from CUDA threads with no barrier between
them (a missing __syncthreads / __syncwarp), with both source lines; AddressSanitizer, a read or write past
an array argument or past dynamic shared memory (each gets exactly its size from malloc in these builds).
Not found: races between blocks (blocks run one after another).

To register a kernel file, add one entry to REGISTRY: its shapes and a function that launches it with a
CpuModule (module.get_function(name) has CuPy's call shape) and returns its outputs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import KERNEL_SOURCES, SOURCE_DIR
from .harness import CpuModule, KernelError
from .harness.launcher import SANITIZERS, compile_source, sanitizer_runtime

TOLERANCE = 1e-5  # outputs vs fiber mode: max|x - ref| / max(1, max|ref|)
CHILD_TIMEOUT = 600  # seconds for one subprocess
SANITIZER_OPTIONS = {
    "thread": ("TSAN_OPTIONS", "halt_on_error=0:exitcode=66:history_size=4:report_signal_unsafe=0"),
    "address": ("ASAN_OPTIONS", "detect_leaks=0:halt_on_error=1:exitcode=66"),
}


class Shape(NamedTuple):
    B: int
    H: int
    Nq: int
    Nk: int
    d: int
    dv: int
    causal: bool
    padding: str | None  # None, "random" (30% of keys), "masked" (random + batch 1 fully padded)

    def __str__(self) -> str:
        extra = ("causal" if self.causal else "") + (f" pad={self.padding}" if self.padding else "")
        return f"{self.B}x{self.H}x{self.Nq}x{self.Nk} d={self.d} dv={self.dv}" + (f" {extra.strip()}" if extra else "")


@dataclass(frozen=True)
class Registration:
    source: str                                                   # file name in kernels/cuda
    shapes: tuple[Shape, ...]
    run: Callable[[CpuModule, Shape], dict[str, np.ndarray]]     # launch the kernels, return their outputs


def _inputs(shape: Shape, seed: int = 0):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((shape.B, shape.H, shape.Nq, shape.d)).astype(np.float32)
    k = rng.standard_normal((shape.B, shape.H, shape.Nk, shape.d)).astype(np.float32)
    v = rng.standard_normal((shape.B, shape.H, shape.Nk, shape.dv)).astype(np.float32)
    pad = None
    if shape.padding:
        pad = rng.random((shape.B, shape.Nk)) < 0.3
        pad[:, 0] = False
        if shape.padding == "masked" and shape.B > 1:
            pad[1] = True  # every row of batch 1 fully masked
    return q, k, v, pad


def _run_forward(module: CpuModule, shape: Shape) -> dict[str, np.ndarray]:
    from .forward import run_flash_forward

    q, k, v, pad = _inputs(shape)
    o, lse = run_flash_forward(module.get_function("flash_fwd"), q, k, v, shape.causal, None, pad)
    return {"o": o, "lse": lse}


def _run_backward(module: CpuModule, shape: Shape) -> dict[str, np.ndarray]:
    from ..reference import attention_forward
    from .backward import KERNEL_NAMES, run_flash_backward

    q, k, v, pad = _inputs(shape)
    o, lse = attention_forward(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64),
                               causal=shape.causal, key_padding_mask=pad)
    do = np.random.default_rng(1).standard_normal(o.shape).astype(np.float32)
    kernels = {name: module.get_function(name) for name in KERNEL_NAMES}
    dq, dk, dv = run_flash_backward(kernels, q, k, v, o.astype(np.float32), lse.astype(np.float32), do,
                                    shape.causal, None, pad)
    return {"dq": dq, "dk": dk, "dv": dv}


_SHAPES = (Shape(1, 2, 37, 45, 16, 16, False, None),    # N not a tile multiple; the last head ends the arrays
           Shape(2, 1, 19, 35, 8, 12, True, "masked"))  # causal, d != dv, padding, fully masked rows


def registry() -> dict[str, Registration]:
    """The kernel files with a registered launch (flash_bwd.cu once backward.py has run_flash_backward)."""
    entries = {"flash_fwd.cu": Registration("flash_fwd.cu", _SHAPES, _run_forward)}
    try:
        from .backward import run_flash_backward  # noqa: F401
    except ImportError:
        pass
    else:
        entries["flash_bwd.cu"] = Registration("flash_bwd.cu", _SHAPES, _run_backward)
    return entries


@dataclass
class Result:
    kernel: str
    sanitizer: str
    shapes: tuple[Shape, ...]
    ok: bool
    seconds: float
    report: str = ""      # the sanitizer's report, cut down (empty when ok)
    full_report: str = ""

    @property
    def summary(self) -> str:
        return "passed" if self.ok else "FAILED"


def condense(report: str, keep_frames: int = 1) -> str:
    """A sanitizer report without the deep standard-library frames: each stack keeps its first `keep_frames`
    frames and every frame in a .cu file."""
    out = []
    for line in report.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("#") and stripped[1:2].isdigit():
            number = int(stripped[1:].split()[0])
            if number >= keep_frames and ".cu:" not in line:
                continue
        out.append(line)
    return "\n".join(out)


def _compare(kernel: str, got: dict, want: dict) -> str:
    problems = []
    for name, ref in want.items():
        x = got.get(name)
        if x is None or x.shape != ref.shape:
            problems.append(f"{name}: missing or wrong shape")
            continue
        finite = np.isfinite(ref)
        if not np.array_equal(np.isfinite(x), finite) or not np.array_equal(x[~finite], ref[~finite], equal_nan=True):
            problems.append(f"{name}: NaN/inf where fiber mode has none (or the reverse)")
            continue
        err = np.max(np.abs(x[finite] - ref[finite]), initial=0) / max(1.0, np.max(np.abs(ref[finite]), initial=0))
        if err > TOLERANCE:
            problems.append(f"{name}: differs from fiber mode by {err:.2e} (relative)")
    return f"{kernel}: " + "; ".join(problems) if problems else ""


def check(kernel: str, sanitizer: str, source: str | os.PathLike | None = None,
          shapes: tuple[Shape, ...] | None = None) -> Result:
    """Run `kernel`'s registered launches (or `shapes`) under `sanitizer`, from `source` (default: the file
    kernels/cuda/<kernel>; give a copy to check an edited kernel with the same launches)."""
    entry = registry()[kernel]
    shapes = entry.shapes if shapes is None else tuple(shapes)
    source = Path(source) if source is not None else SOURCE_DIR / entry.source
    start = time.perf_counter()
    compile_source(source.read_text(), str(source), "threads", sanitizer)  # here, not under the sanitizer
    env = dict(os.environ, LD_PRELOAD=sanitizer_runtime(sanitizer), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    variable, options = SANITIZER_OPTIONS[sanitizer]
    env[variable] = options
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "outputs.npz"
        cmd = [sys.executable, "-m", "minitorch_attn.kernels.cuda.sanitize", "--child", kernel, sanitizer,
               str(source), str(out), ",".join(_shape_text(s) for s in shapes)]
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT)
        except subprocess.TimeoutExpired as error:
            return Result(kernel, sanitizer, shapes, False, time.perf_counter() - start,
                          f"timed out after {CHILD_TIMEOUT} s", str(error))
        report = proc.stderr
        found = proc.returncode != 0 or "Sanitizer" in report
        problem = ""
        if not found:
            with np.load(out) as data:
                got = {name: data[name] for name in data.files}
            fibers = CpuModule(path=source)
            for i, shape in enumerate(shapes):
                want = entry.run(fibers, shape)
                problem = _compare(f"{kernel} {shape}", {n[len(f'{i}:'):]: a for n, a in got.items()
                                                         if n.startswith(f"{i}:")}, want)
                if problem:
                    break
    seconds = time.perf_counter() - start
    if found:
        if "FATAL: ThreadSanitizer" in report:
            report += ("\n(ThreadSanitizer could not map its shadow memory: on kernels with high address-space "
                       "randomisation, run with `setarch -R` or set vm.mmap_rnd_bits=28)")
        return Result(kernel, sanitizer, shapes, False, seconds, condense(report) or f"exit status {proc.returncode}",
                      report)
    return Result(kernel, sanitizer, shapes, not problem, seconds, problem, problem)


def _shape_text(shape: Shape) -> str:
    return ":".join(str(x) for x in shape)


def _parse_shape(text: str) -> Shape:
    B, H, Nq, Nk, d, dv, causal, padding = text.split(":")
    return Shape(int(B), int(H), int(Nq), int(Nk), int(d), int(dv), causal == "True",
                 None if padding == "None" else padding)


def _child(kernel: str, sanitizer: str, source: str, out: str, shapes: str) -> int:
    """Inside the sanitized subprocess: run the launches, save the outputs."""
    os.environ.pop("LD_PRELOAD", None)  # anything this process starts runs without the sanitizer
    module = CpuModule(path=source, mode="threads", sanitizer=sanitizer, timeout=120.0)
    entry = registry()[kernel]
    outputs = {}
    for i, shape in enumerate(_parse_shape(s) for s in shapes.split(",")):
        for name, array in entry.run(module, shape).items():
            outputs[f"{i}:{name}"] = array
    np.savez(out, **outputs)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sanitizer", choices=sorted(SANITIZERS), action="append",
                        help="run only this sanitizer (repeatable); default: thread and address")
    parser.add_argument("--kernel", action="append", help="run only this kernel file, e.g. flash_fwd.cu")
    parser.add_argument("--source", help="check this copy of the kernel file (one --kernel) with its launches")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(*args.child)
    if args.source and len(args.kernel or []) != 1:
        parser.error("--source needs exactly one --kernel: the file whose registered launches it uses")
    sanitizers = args.sanitizer or ["thread", "address"]
    entries = registry()
    files = [p.name for p in KERNEL_SOURCES]
    unknown = [k for k in args.kernel or [] if k not in entries]
    if unknown:
        parser.error(f"no registered launch for {', '.join(unknown)}; registered: {', '.join(entries)}")
    results, rows = [], []
    for name in files:
        if args.kernel and name not in args.kernel:
            continue
        if name not in entries:
            rows.append((name, "-", "-", "skipped: no registered launch", ""))
            continue
        for sanitizer in sanitizers:
            try:
                result = check(name, sanitizer, args.source)
            except KernelError as error:  # no sanitizer runtime, or the kernel does not compile
                result = Result(name, sanitizer, entries[name].shapes, False, 0.0, str(error), str(error))
            results.append(result)
            rows.append((name, sanitizer, "; ".join(map(str, result.shapes)), result.summary, f"{result.seconds:.1f}"))
            print(f"{name} [{sanitizer}sanitizer]: {result.summary} ({result.seconds:.1f} s)", flush=True)
    print()
    header = ("kernel", "sanitizer", "shapes", "result", "seconds")
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"\n===== {r.kernel} under {r.sanitizer}sanitizer =====\n{r.report}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
