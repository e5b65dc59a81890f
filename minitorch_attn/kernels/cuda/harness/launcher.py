"""Run an unchanged CUDA C kernel on the CPU, with CuPy's call shape and NumPy arrays.

    module = CpuModule(path="flash_fwd.cu", seed=1)                  # mode="fibers", the default
    module.get_function("flash_fwd")(grid, block, (q, k, ..., np.int32(n), np.float32(scale)), shared_mem=nbytes)

How: the .cu source is compiled with `g++ -x c++ -std=c++20 -O2 -pthread -shared -fPIC` together with
`cuda_builtins.h` (threadIdx, __syncthreads, __shfl_xor_sync, atomicAdd, printf, ...) and `runtime.cpp` (the
launch log and the scheduler), after one textual rewrite: `extern __shared__ T name[];` becomes a pointer to
the launch's dynamic shared memory. Shared objects are cached by a hash of the source, the harness files and
the flags in ~/.cache/minitorch_attn/cuda_cpu (or $XDG_CACHE_HOME/minitorch_attn/cuda_cpu), never in the
repository; each mode and sanitizer is a different shared object.

Modes (blocks always run one after another):
- mode="fibers" (default): CUDA threads are fibers; at every sync point a seeded random scheduler picks who
  runs next (`seed=0`: lock-step order, which hides missing barriers, so test with several nonzero seeds).
- mode="threads" (-DCUDA_CPU_THREADS): each CUDA thread of a block is an OS thread, running at the same time
  as the others; __syncthreads and warp barriers are real barriers (atomics, waiters yield the CPU). The OS
  schedules (`seed` is unused). Slower: see the timings below. A barrier wait gives up after `timeout`
  seconds (default 5) during which the block made no progress, with a KernelError (a thread spins forever).
In both: a barrier that can never complete raises `KernelError` (deadlock) at once; atomicAdd / Sub / Exch /
CAS / Max / Min are real atomics (std::atomic_ref; Max and Min also for float and double).

Sanitizers: `CpuModule(..., mode="threads", sanitizer="thread" or "address")` compiles with -fsanitize=...
(-O1 -g, -DCUDA_CPU_SANITIZE). Such a module loads only in a process started with the sanitizer's runtime
preloaded (LD_PRELOAD): `python -m minitorch_attn.kernels.cuda.sanitize` does that in a subprocess. In these
builds every array argument and the dynamic shared memory get exactly their size from malloc, with no red
zones of ours, so AddressSanitizer reports a read one element past the end (heap-buffer-overflow) and
ThreadSanitizer a pair of racing accesses, with the .cu file's line numbers.

What it checks, beyond the values the kernel computes (outside sanitizer builds):
- Every array argument is copied into a buffer with 4 KiB red zones on both sides filled with 0xff bytes:
  reads past either end give NaN (float32/float64) or -1; a write into a red zone raises `KernelError`.
- Dynamic shared memory is filled with 0xff (NaN) before each block; a write past its end raises.
- The launch geometry against an H100's limits (kernels/cuda/launch.py, SM90): gridDim.y and .z at most 65535,
  x at most 2^31 - 1, blocks of at most 1024 threads (fewer with the kernel's __launch_bounds__, whose first
  argument the compiler evaluates), dynamic shared memory at most `max_dynamic_shared_size_bytes` (48 KiB
  until a launcher raises it, as cudaFuncAttributeMaxDynamicSharedMemorySize on a GPU; at most 227 KiB).
- Each argument is checked against the kernel's real parameter types (from the compiler): arrays for
  pointers, and scalars of the exact size and kind. Like CuPy, a Python int counts as an 8-byte integer
  and a Python float as a double, so `int` / `float` parameters need numpy.int32 / numpy.float32.

Device printf prints, after the launch, through Python's sys.stdout (so a notebook shows it), one line per
call prefixed with the block and thread indices.

Tracing (to show what each thread of one block does): `kernel.trace(grid, block, args, shared_mem=...,
block_index=(0, 0), seed=1)` runs the launch and returns a `Trace` (trace.py) of the chosen block: which thread
ran, each __syncthreads / __syncwarp arrival, each shuffle with its values, printf lines, and the dynamic
shared memory at each __syncthreads. `kernel.traced(block_index=...)` is the same as a callable with the
kernel's call shape (for launchers such as forward.run_flash_forward); its last trace is `.trace`. With
tracing off, fiber mode tests one flag of the block at each sync point.

Timings, flash_fwd B=1, H=2, N=256, d=64 on 2 cores (`python -m minitorch_attn.kernels.cuda.harness.bench`,
best of 3): fibers 2.06 s; fibers tracing one block 2.42 s; threads 3.78 s wall, 7.53 s CPU. Before thread
mode and tracing existed, fibers took 2.17 s of CPU (best of 5, same shape), so tracing off costs nothing.

Limits: blocks run one after another (no races between blocks), no half types or tensor-core instructions,
nothing about speed. Arrays are copied in and back out (C-contiguous arrays only).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .. import expand_includes
from ..launch import DEFAULT_DYNAMIC_SHARED, SM90
from .trace import EVENT_DTYPE, Trace

HERE = Path(__file__).resolve().parent
CXX_FLAGS = ["-x", "c++", "-std=c++20", "-O2", "-pthread", "-shared", "-fPIC"]
MODES = {"fibers": [], "threads": ["-DCUDA_CPU_THREADS=1"]}
SANITIZERS = {  # name: (extra flags, runtime library)
    "thread": (["-fsanitize=thread", "-O1", "-g", "-DCUDA_CPU_SANITIZE=1"], "libtsan.so"),
    "address": (["-fsanitize=address", "-fno-omit-frame-pointer", "-O1", "-g", "-DCUDA_CPU_SANITIZE=1"],
                "libasan.so"),
}
RED_ZONE = 4096  # bytes on each side of every array argument
POISON = 0xFF
MAX_THREADS_PER_BLOCK = 1024

_KERNEL_RE = re.compile(r'extern\s+"C"\s+__global__\s+(?:__launch_bounds__\(([^)]*)\)\s+)?void\s+(\w+)\s*\(')
_DYNAMIC_SHARED_RE = re.compile(
    r"extern\s+__shared__\s+(?:__align__\(\s*\d+\s*\)\s+)?([A-Za-z_][\w\s]*?)\s*([A-Za-z_]\w*)\s*\[\s*\]\s*;")
_KINDS = {0: "pointer", 1: "signed integer", 2: "unsigned integer", 3: "floating-point value", 4: "value"}


class KernelError(RuntimeError):
    """The kernel did something a GPU would not forgive: deadlock, write out of bounds, wrong argument."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "minitorch_attn" / "cuda_cpu"


def compiler_flags(mode: str = "fibers", sanitizer: str | None = None) -> list[str]:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(map(repr, MODES))}")
    if sanitizer is not None and sanitizer not in SANITIZERS:
        raise ValueError(f"unknown sanitizer {sanitizer!r}; choose one of {', '.join(map(repr, SANITIZERS))}")
    if sanitizer is not None and mode != "threads":
        raise ValueError(f"sanitizer={sanitizer!r} needs mode='threads' (sanitizers do not follow fibers)")
    return CXX_FLAGS + MODES[mode] + (SANITIZERS[sanitizer][0] if sanitizer else [])


def sanitizer_runtime(sanitizer: str) -> str:
    """Path of the sanitizer's runtime library (for LD_PRELOAD), as g++ finds it."""
    name = SANITIZERS[sanitizer][1]
    path = subprocess.run(["g++", f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()
    if not os.path.isabs(path) or not os.path.exists(path):
        raise KernelError(f"g++ has no {name} (sanitizer={sanitizer!r}); install its runtime (libtsan2 / libasan8)")
    return os.path.realpath(path)


def translation_unit(source: str, filename: str = "kernel.cu") -> tuple[str, list[str]]:
    """The C++ that g++ compiles for `source`, and the names of its `extern "C" __global__` kernels."""
    source = expand_includes(source, filename)  # common.cuh, pasted in (g++ compiles a copy elsewhere)
    found = _KERNEL_RE.findall(source)  # (launch bounds or "", name)
    names = [name for _, name in found]
    if not names:
        raise ValueError('no `extern "C" __global__ void name(...)` kernel found in the source')
    rewritten = _DYNAMIC_SHARED_RE.sub(
        lambda m: f"{m.group(1)}* {m.group(2)} = reinterpret_cast<{m.group(1)}*>(cuda_cpu::dynamic_shared());",
        source)
    parts = ['#include "cuda_builtins.h"', '#include "runtime.cpp"', f'#line 1 "{filename}"', rewritten,
             "// trampolines called by launcher.py"]
    for bounds, name in found:
        max_threads = bounds.split(",")[0].strip() or str(MAX_THREADS_PER_BLOCK)  # the C++ compiler evaluates it
        parts.append(f'extern "C" int cpu_max_threads_{name}() {{ return (int)({max_threads}); }}')
        parts.append(
            f'extern "C" int cpu_launch_{name}(void** args, const unsigned* grid, const unsigned* block, '
            f"size_t shared_bytes, uint64_t seed, double timeout, void* log, char* error, size_t error_size) {{\n"
            f"    return cuda_cpu::launch_kernel(&{name}, args, grid, block, shared_bytes, seed, timeout, log, "
            f"error, error_size);\n}}\n"
            f'extern "C" int cpu_params_{name}(int* kinds, int* sizes, int capacity) {{\n'
            f"    return cuda_cpu::describe(&{name}, kinds, sizes, capacity);\n}}")
    return "\n".join(parts) + "\n", names


def _harness_text() -> str:
    return "\0".join(p.read_text() for p in sorted(HERE.iterdir()) if p.suffix in (".h", ".cpp", ".inc"))


def compile_source(source: str, filename: str = "kernel.cu", mode: str = "fibers",
                   sanitizer: str | None = None) -> tuple[Path, list[str]]:
    """Compile (or find in the cache) the shared object for `source`; return its path and kernel names."""
    flags = compiler_flags(mode, sanitizer)
    tu, names = translation_unit(source, filename)
    key = hashlib.sha256("\0".join([tu, _harness_text(), " ".join(flags)]).encode()).hexdigest()[:24]
    out_dir = cache_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = mode + (f"-{sanitizer}san" if sanitizer else "")
    so = out_dir / f"{Path(filename).stem}-{tag}-{key}.so"
    if so.exists():
        return so, names
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        src = Path(tmp) / "unit.cpp"
        src.write_text(tu)
        tmp_so = Path(tmp) / "unit.so"
        cmd = ["g++", *flags, "-I", str(HERE), str(src), "-o", str(tmp_so)]
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}  # g++ itself runs unsanitized
        result = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            raise KernelError(f"g++ could not compile {filename} for the CPU harness ({tag}):\n{result.stderr}")
        os.replace(tmp_so, so)  # atomic: concurrent test workers never see half a file
    return so, names


def _runtime_loaded(sanitizer: str) -> bool:
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return True  # cannot tell: let the loader decide
    return SANITIZERS[sanitizer][1].removesuffix(".so") in maps


class CpuModule:
    """CuPy's RawModule, on the CPU: `CpuModule(code=... or path=..., seed=1).get_function(name)`.

    mode: "fibers" (default) or "threads"; sanitizer: None, "thread" or "address" (mode "threads" only);
    timeout: thread mode's barrier timeout in seconds.
    """

    def __init__(self, code: str | None = None, path: str | os.PathLike | None = None, seed: int = 1,
                 mode: str = "fibers", sanitizer: str | None = None, timeout: float = 5.0):
        if (code is None) == (path is None):
            raise ValueError("give exactly one of code= and path=")
        filename = "kernel.cu" if path is None else str(path)
        code = Path(path).read_text() if code is None else code
        self.mode, self.sanitizer, self.seed, self.timeout = mode, sanitizer, seed, float(timeout)
        self.library_path, self.names = compile_source(code, filename, mode, sanitizer)
        if sanitizer and not _runtime_loaded(sanitizer):
            raise KernelError(
                f"a sanitizer={sanitizer!r} module loads only in a process started with LD_PRELOAD="
                f"{sanitizer_runtime(sanitizer)}; run `python -m minitorch_attn.kernels.cuda.sanitize`, "
                f"which starts one")
        self._lib = ctypes.CDLL(str(self.library_path))
        lib = self._lib
        for fn, restype, argtypes in (
                ("cpu_log_new", ctypes.c_void_p, [ctypes.c_int, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint]),
                ("cpu_log_free", None, [ctypes.c_void_p]),
                ("cpu_log_event_count", ctypes.c_long, [ctypes.c_void_p]),
                ("cpu_log_events", ctypes.c_void_p, [ctypes.c_void_p]),
                ("cpu_log_event_bytes", ctypes.c_int, []),
                ("cpu_log_text_count", ctypes.c_int, [ctypes.c_void_p]),
                ("cpu_log_text", ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_int]),
                ("cpu_log_printed_count", ctypes.c_int, [ctypes.c_void_p]),
                ("cpu_log_printed", ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_int]),
                ("cpu_log_snapshot_count", ctypes.c_int, [ctypes.c_void_p]),
                ("cpu_log_snapshot", ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_size_t)]),
                ("cpu_alloc", ctypes.c_void_p, [ctypes.c_size_t]),
                ("cpu_free", None, [ctypes.c_void_p])):
            getattr(lib, fn).restype = restype
            getattr(lib, fn).argtypes = argtypes
        assert lib.cpu_log_event_bytes() == EVENT_DTYPE.itemsize, "trace.py's EVENT_DTYPE is out of step"

    def get_function(self, name: str) -> CpuKernel:
        if name not in self.names:
            raise KeyError(f"no kernel {name!r} in this module; it has {', '.join(self.names)}")
        return CpuKernel(self, name)


class CpuKernel:
    """One kernel of a CpuModule: `kernel(grid, block, args, shared_mem=0, seed=None, timeout=None)`.

    It refuses what an H100 refuses (`device_limits`, kernels/cuda/launch.py): grid and block dimensions over
    their limits, more threads than `max_threads_per_block` (1024, or the kernel's __launch_bounds__), more
    dynamic shared memory than `max_dynamic_shared_size_bytes` (48 KiB until raised, as on a GPU)."""

    device_limits = SM90

    def __init__(self, module: CpuModule, name: str):
        self.module, self.name = module, name
        self._launch = getattr(module._lib, f"cpu_launch_{name}")
        self._launch.restype = ctypes.c_int
        self._launch.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_uint),
                                 ctypes.POINTER(ctypes.c_uint), ctypes.c_size_t, ctypes.c_uint64,
                                 ctypes.c_double, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        max_threads = getattr(module._lib, f"cpu_max_threads_{name}")
        max_threads.restype = ctypes.c_int
        self.max_threads_per_block = min(MAX_THREADS_PER_BLOCK, int(max_threads()))  # __launch_bounds__, as CuPy's
        self._max_dynamic_shared = DEFAULT_DYNAMIC_SHARED
        describe = getattr(module._lib, f"cpu_params_{name}")
        kinds, sizes = (ctypes.c_int * 64)(), (ctypes.c_int * 64)()
        n = describe(kinds, sizes, 64)
        self.params = [(kinds[i], sizes[i]) for i in range(n)]  # (kind, size in bytes) per parameter

    @property
    def max_dynamic_shared_size_bytes(self) -> int:
        """cudaFuncAttributeMaxDynamicSharedMemorySize, as CuPy's RawKernel has it: 48 KiB until raised."""
        return self._max_dynamic_shared

    @max_dynamic_shared_size_bytes.setter
    def max_dynamic_shared_size_bytes(self, nbytes: int):
        if not 0 <= int(nbytes) <= self.device_limits.max_shared_optin:
            raise KernelError(f"{self.name}: max_dynamic_shared_size_bytes = {int(nbytes)} is over the "
                              f"{self.device_limits.name} opt-in limit of {self.device_limits.max_shared_optin} B "
                              "(a GPU answers cudaErrorInvalidValue)")
        self._max_dynamic_shared = int(nbytes)

    def _scalar_bytes(self, i: int, kind: int, size: int, value) -> bytes:
        if isinstance(value, (bool, np.bool_)):
            arr = np.asarray(value, np.bool_)
        elif isinstance(value, int):
            arr = np.asarray(value, np.int64)  # what CuPy passes for a Python int
        elif isinstance(value, float):
            arr = np.asarray(value, np.float64)  # what CuPy passes for a Python float
        elif isinstance(value, np.generic):
            arr = np.asarray(value)
        else:
            raise KernelError(f"{self.name}: argument {i} has unsupported type {type(value).__name__}")
        got_kind = {"i": 1, "u": 2, "f": 3, "b": 2}.get(arr.dtype.kind, 4)
        if kind == 0:
            raise KernelError(f"{self.name}: parameter {i} is a pointer; pass a NumPy array, not {value!r}")
        if got_kind != kind or arr.dtype.itemsize != size:
            raise KernelError(
                f"{self.name}: parameter {i} is a {size}-byte {_KINDS[kind]}, but argument {i} is a "
                f"{arr.dtype.itemsize}-byte {_KINDS[got_kind]} ({type(value).__name__} {value!r}). On a GPU "
                f"it would be misread silently (CuPy passes a Python int as 8 bytes and a Python float as a "
                f"double): cast it, e.g. numpy.int32(n) or numpy.float32(x).")
        return arr.tobytes()

    def __call__(self, grid, block, args, shared_mem: int = 0, seed: int | None = None,
                 timeout: float | None = None):
        log = self._run(grid, block, args, shared_mem, seed, timeout, trace_block=None)
        try:
            lib = self.module._lib
            for i in range(lib.cpu_log_printed_count(log)):
                print(lib.cpu_log_printed(log, i).decode(errors="replace"))
        finally:
            self.module._lib.cpu_log_free(log)

    def trace(self, grid, block, args, shared_mem: int = 0, block_index=(0, 0, 0), seed: int | None = None,
              timeout: float | None = None) -> Trace:
        """Launch as `self(...)` and return the Trace of block `block_index` (see trace.py).

        The traced block's printf lines go into the trace; the other blocks' are printed as usual."""
        grid3, block3 = _dims(grid), _dims(block)
        index = _dims(block_index, fill=0)
        if any(not 0 <= i < g for i, g in zip(index, grid3)):
            raise ValueError(f"block_index {tuple(block_index)} is outside the grid {grid3}")
        lib = self.module._lib
        log = self._run(grid3, block3, args, shared_mem, seed, timeout, trace_block=index)
        try:
            for i in range(lib.cpu_log_printed_count(log)):
                print(lib.cpu_log_printed(log, i).decode(errors="replace"))
            n = lib.cpu_log_event_count(log)
            records = (np.frombuffer((ctypes.c_char * (n * EVENT_DTYPE.itemsize)).from_address(
                lib.cpu_log_events(log)), EVENT_DTYPE).copy() if n else np.zeros(0, EVENT_DTYPE))
            texts = [lib.cpu_log_text(log, i).decode(errors="replace") for i in range(lib.cpu_log_text_count(log))]
            snapshots = []
            for i in range(lib.cpu_log_snapshot_count(log)):
                size = ctypes.c_size_t()
                address = lib.cpu_log_snapshot(log, i, ctypes.byref(size))
                snapshots.append(ctypes.string_at(address, size.value) if size.value else b"")
        finally:
            lib.cpu_log_free(log)
        return Trace(records, texts, snapshots, index, block3, grid3)

    def traced(self, block_index=(0, 0, 0), seed: int | None = None) -> TracedKernel:
        """This kernel with the call shape of `self`, tracing `block_index`; the last trace is `.trace`."""
        return TracedKernel(self, block_index, seed)

    def _run(self, grid, block, args, shared_mem, seed, timeout, trace_block):
        """Launch; return the launch log (the caller frees it). Raises KernelError, printing printf first."""
        grid, block = _dims(grid), _dims(block)
        if min(grid) < 1 or min(block) < 1:
            raise KernelError(f"{self.name}: grid {grid} and block {block} need every dimension >= 1 "
                              f"(a GPU refuses an empty launch)")
        limits, refused = self.device_limits, "a GPU refuses this launch (CUDA_ERROR_INVALID_VALUE)"
        for what, dims, most in (("grid", grid, limits.max_grid), ("block", block, limits.max_block)):
            for axis, n, m in zip("xyz", dims, most):
                if n > m:
                    raise KernelError(f"{self.name}: {what}Dim.{axis} = {n} is over the {limits.name} limit of {m} "
                                      f"(grid {grid}, block {block}): {refused}")
        if int(np.prod(block)) > self.max_threads_per_block:
            raise KernelError(f"{self.name}: block {block} has {int(np.prod(block))} threads; this kernel allows at "
                              f"most {self.max_threads_per_block} (a block holds at most {MAX_THREADS_PER_BLOCK}, and "
                              f"__launch_bounds__ may say fewer): {refused}")
        if int(shared_mem) > self.max_dynamic_shared_size_bytes:
            raise KernelError(f"{self.name}: {int(shared_mem)} B of dynamic shared memory is over the kernel's "
                              f"max_dynamic_shared_size_bytes = {self.max_dynamic_shared_size_bytes} B; {refused} "
                              f"unless cudaFuncAttributeMaxDynamicSharedMemorySize is raised first (up to "
                              f"{limits.max_shared_optin} B on {limits.name}): kernels/cuda/launch.py does that")
        if len(args) != len(self.params):
            raise KernelError(f"{self.name} takes {len(self.params)} arguments; got {len(args)}")
        lib, exact = self.module._lib, self.module.sanitizer is not None
        keep, pointers, buffers = [], (ctypes.c_void_p * len(args))(), []
        try:
            for i, (value, (kind, size)) in enumerate(zip(args, self.params)):
                if isinstance(value, np.ndarray):
                    if kind != 0:
                        raise KernelError(f"{self.name}: parameter {i} is a {size}-byte {_KINDS[kind]}, "
                                          f"but argument {i} is an array")
                    if not value.flags.c_contiguous:
                        raise KernelError(f"{self.name}: argument {i} must be C-contiguous")
                    if exact:  # sanitizer builds: exactly the array's bytes, from malloc
                        address = lib.cpu_alloc(value.nbytes)
                        buffers.append((i, value, address))
                        ctypes.memmove(address, value.ctypes.data, value.nbytes)
                    else:
                        buf = np.full(value.nbytes + 2 * RED_ZONE, POISON, np.uint8)
                        buf[RED_ZONE:RED_ZONE + value.nbytes] = value.reshape(-1).view(np.uint8)
                        address = buf.ctypes.data + RED_ZONE
                        buffers.append((i, value, buf))
                    cell = ctypes.c_void_p(address)
                else:
                    cell = ctypes.create_string_buffer(self._scalar_bytes(i, kind, size, value), max(size, 8))
                keep.append(cell)
                pointers[i] = ctypes.cast(ctypes.pointer(cell) if isinstance(cell, ctypes.c_void_p) else cell,
                                          ctypes.c_void_p)
            error = ctypes.create_string_buffer(1024)
            seed = self.module.seed if seed is None else seed
            timeout = self.module.timeout if timeout is None else float(timeout)
            log = lib.cpu_log_new(trace_block is not None, *(trace_block or (0, 0, 0)))
            status = self._launch(pointers, (ctypes.c_uint * 3)(*grid), (ctypes.c_uint * 3)(*block),
                                  int(shared_mem), int(seed), timeout, log, error, len(error))
            if status:
                for i in range(lib.cpu_log_printed_count(log)):
                    print(lib.cpu_log_printed(log, i).decode(errors="replace"))
                lib.cpu_log_free(log)
                raise KernelError(f"{self.name}: {error.value.decode()}")
            for i, value, buf in buffers:
                if exact:
                    if value.flags.writeable:
                        ctypes.memmove(value.ctypes.data, buf, value.nbytes)
                    continue
                nbytes = value.nbytes
                for side, zone in (("before the start", buf[:RED_ZONE]), ("past the end", buf[RED_ZONE + nbytes:])):
                    if np.any(zone != POISON):
                        lib.cpu_log_free(log)
                        raise KernelError(f"{self.name}: the kernel wrote {side} of argument {i} "
                                          f"(shape {value.shape}, {value.dtype})")
                if value.flags.writeable:
                    value.reshape(-1).view(np.uint8)[:] = buf[RED_ZONE:RED_ZONE + nbytes]
            return log
        finally:
            if exact:
                for _, _, address in buffers:
                    lib.cpu_free(address)


class TracedKernel:
    """A CpuKernel that traces one block at every launch: `traced(grid, block, args, ...)`, then `.trace`."""

    def __init__(self, kernel: CpuKernel, block_index, seed: int | None):
        self.kernel, self.block_index, self.seed = kernel, block_index, seed
        self.trace: Trace | None = None

    def __call__(self, grid, block, args, shared_mem: int = 0, seed: int | None = None,
                 timeout: float | None = None):
        seed = self.seed if seed is None else seed
        self.trace = self.kernel.trace(grid, block, args, shared_mem, self.block_index, seed, timeout)


def _dims(d, fill: int = 1) -> tuple[int, int, int]:
    d = (d,) if isinstance(d, (int, np.integer)) else tuple(d)
    if not 1 <= len(d) <= 3:
        raise ValueError(f"grid, block and block_index take 1 to 3 dimensions; got {d}")
    return tuple(int(x) for x in d) + (fill,) * (3 - len(d))

