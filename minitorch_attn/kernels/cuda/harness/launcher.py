"""Run an unchanged CUDA C kernel on the CPU, with CuPy's call shape and NumPy arrays.

    module = CpuModule(path="flash_fwd.cu", seed=1)
    module.get_function("flash_fwd")(grid, block, (q, k, ..., np.int32(n), np.float32(scale)), shared_mem=nbytes)

How: the .cu source is compiled with `g++ -x c++ -std=c++20 -O2 -pthread -shared -fPIC` together with
`cuda_builtins.h` (threadIdx, __syncthreads, __shfl_xor_sync, __expf, ...) and `runtime.cpp` (the scheduler),
after one textual rewrite: `extern __shared__ T name[];` becomes a pointer to the launch's dynamic shared
memory. The shared object is cached by source hash in ~/.cache/minitorch_attn/cuda_cpu (or
$XDG_CACHE_HOME/minitorch_attn/cuda_cpu), never in the repository.

What it checks, beyond the values the kernel computes:
- CUDA threads are fibers; at every sync point a seeded random scheduler picks who runs next (`seed=0`:
  lock-step order, which hides missing barriers, so test with several nonzero seeds). A barrier that can
  never complete raises `KernelError` (deadlock).
- Every array argument is copied into a buffer with 4 KiB red zones on both sides filled with 0xff bytes:
  reads past either end give NaN (float32/float64) or -1; a write into a red zone raises `KernelError`.
- Dynamic shared memory is filled with 0xff (NaN) before each block; a write past its end raises.
- Each argument is checked against the kernel's real parameter types (from the compiler): arrays for
  pointers, and scalars of the exact size and kind. Like CuPy, a Python int counts as an 8-byte integer
  and a Python float as a double, so `int` / `float` parameters need numpy.int32 / numpy.float32.
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

HERE = Path(__file__).resolve().parent
CXX_FLAGS = ["-x", "c++", "-std=c++20", "-O2", "-pthread", "-shared", "-fPIC"]
RED_ZONE = 4096  # bytes on each side of every array argument
POISON = 0xFF

_KERNEL_RE = re.compile(r'extern\s+"C"\s+__global__\s+(?:__launch_bounds__\([^)]*\)\s+)?void\s+(\w+)\s*\(')
_DYNAMIC_SHARED_RE = re.compile(
    r"extern\s+__shared__\s+(?:__align__\(\s*\d+\s*\)\s+)?([A-Za-z_][\w\s]*?)\s*([A-Za-z_]\w*)\s*\[\s*\]\s*;")
_KINDS = {0: "pointer", 1: "signed integer", 2: "unsigned integer", 3: "floating-point value", 4: "value"}


class KernelError(RuntimeError):
    """The kernel did something a GPU would not forgive: deadlock, write out of bounds, wrong argument."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "minitorch_attn" / "cuda_cpu"


def translation_unit(source: str, filename: str = "kernel.cu") -> tuple[str, list[str]]:
    """The C++ that g++ compiles for `source`, and the names of its `extern "C" __global__` kernels."""
    names = _KERNEL_RE.findall(source)
    if not names:
        raise ValueError('no `extern "C" __global__ void name(...)` kernel found in the source')
    rewritten = _DYNAMIC_SHARED_RE.sub(
        lambda m: f"{m.group(1)}* {m.group(2)} = reinterpret_cast<{m.group(1)}*>(cuda_cpu::dynamic_shared());",
        source)
    parts = ['#include "cuda_builtins.h"', (HERE / "runtime.cpp").read_text(),
             f'#line 1 "{filename}"', rewritten, "// trampolines called by launcher.py"]
    for name in names:
        parts.append(
            f'extern "C" int cpu_launch_{name}(void** args, const unsigned* grid, const unsigned* block, '
            f"size_t shared_bytes, uint64_t seed, char* error, size_t error_size) {{\n"
            f"    return cuda_cpu::launch_kernel(&{name}, args, grid, block, shared_bytes, seed, error, "
            f"error_size);\n}}\n"
            f'extern "C" int cpu_params_{name}(int* kinds, int* sizes, int capacity) {{\n'
            f"    return cuda_cpu::describe(&{name}, kinds, sizes, capacity);\n}}")
    return "\n".join(parts) + "\n", names


def compile_source(source: str, filename: str = "kernel.cu") -> tuple[Path, list[str]]:
    """Compile (or find in the cache) the shared object for `source`; return its path and kernel names."""
    tu, names = translation_unit(source, filename)
    header = (HERE / "cuda_builtins.h").read_text()
    key = hashlib.sha256("\0".join([tu, header, " ".join(CXX_FLAGS)]).encode()).hexdigest()[:24]
    out_dir = cache_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    so = out_dir / f"{Path(filename).stem}-{key}.so"
    if so.exists():
        return so, names
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        src = Path(tmp) / "unit.cpp"
        src.write_text(tu)
        tmp_so = Path(tmp) / "unit.so"
        cmd = ["g++", *CXX_FLAGS, "-I", str(HERE), str(src), "-o", str(tmp_so)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise KernelError(f"g++ could not compile {filename} for the CPU harness:\n{result.stderr}")
        os.replace(tmp_so, so)  # atomic: concurrent test workers never see half a file
    return so, names


class CpuModule:
    """CuPy's RawModule, on the CPU: `CpuModule(code=... or path=..., seed=1).get_function(name)`."""

    def __init__(self, code: str | None = None, path: str | os.PathLike | None = None, seed: int = 1):
        if (code is None) == (path is None):
            raise ValueError("give exactly one of code= and path=")
        filename = "kernel.cu" if path is None else str(path)
        code = Path(path).read_text() if code is None else code
        self.library_path, self.names = compile_source(code, filename)
        self._lib = ctypes.CDLL(str(self.library_path))
        self.seed = seed

    def get_function(self, name: str) -> CpuKernel:
        if name not in self.names:
            raise KeyError(f"no kernel {name!r} in this module; it has {', '.join(self.names)}")
        return CpuKernel(self, name)


class CpuKernel:
    """One kernel of a CpuModule: `kernel(grid, block, args, shared_mem=0, seed=None)`."""

    def __init__(self, module: CpuModule, name: str):
        self.module, self.name = module, name
        self._launch = getattr(module._lib, f"cpu_launch_{name}")
        self._launch.restype = ctypes.c_int
        self._launch.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_uint),
                                 ctypes.POINTER(ctypes.c_uint), ctypes.c_size_t, ctypes.c_uint64,
                                 ctypes.c_char_p, ctypes.c_size_t]
        describe = getattr(module._lib, f"cpu_params_{name}")
        kinds, sizes = (ctypes.c_int * 64)(), (ctypes.c_int * 64)()
        n = describe(kinds, sizes, 64)
        self.params = [(kinds[i], sizes[i]) for i in range(n)]  # (kind, size in bytes) per parameter

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

    def __call__(self, grid, block, args, shared_mem: int = 0, seed: int | None = None):
        grid, block = _dims(grid), _dims(block)
        if len(args) != len(self.params):
            raise KernelError(f"{self.name} takes {len(self.params)} arguments; got {len(args)}")
        keep, pointers, buffers = [], (ctypes.c_void_p * len(args))(), []
        for i, (value, (kind, size)) in enumerate(zip(args, self.params)):
            if isinstance(value, np.ndarray):
                if kind != 0:
                    raise KernelError(f"{self.name}: parameter {i} is a {size}-byte {_KINDS[kind]}, "
                                      f"but argument {i} is an array")
                if not value.flags.c_contiguous:
                    raise KernelError(f"{self.name}: argument {i} must be C-contiguous")
                buf = np.full(value.nbytes + 2 * RED_ZONE, POISON, np.uint8)
                buf[RED_ZONE:RED_ZONE + value.nbytes] = value.reshape(-1).view(np.uint8)
                cell = ctypes.c_void_p(buf.ctypes.data + RED_ZONE)
                buffers.append((i, value, buf))
            else:
                cell = ctypes.create_string_buffer(self._scalar_bytes(i, kind, size, value), max(size, 8))
            keep.append(cell)
            pointers[i] = ctypes.cast(ctypes.pointer(cell) if isinstance(cell, ctypes.c_void_p) else cell,
                                      ctypes.c_void_p)
        error = ctypes.create_string_buffer(1024)
        seed = self.module.seed if seed is None else seed
        status = self._launch(pointers, (ctypes.c_uint * 3)(*grid), (ctypes.c_uint * 3)(*block),
                              int(shared_mem), int(seed), error, len(error))
        if status:
            raise KernelError(f"{self.name}: {error.value.decode()}")
        for i, value, buf in buffers:
            nbytes = value.nbytes
            for side, zone in (("before the start", buf[:RED_ZONE]), ("past the end", buf[RED_ZONE + nbytes:])):
                if np.any(zone != POISON):
                    raise KernelError(f"{self.name}: the kernel wrote {side} of argument {i} "
                                      f"(shape {value.shape}, {value.dtype})")
            if value.flags.writeable:
                value.reshape(-1).view(np.uint8)[:] = buf[RED_ZONE:RED_ZONE + nbytes]


def _dims(d) -> tuple[int, int, int]:
    d = (d,) if isinstance(d, (int, np.integer)) else tuple(d)
    if not 1 <= len(d) <= 3:
        raise ValueError(f"grid and block take 1 to 3 dimensions; got {d}")
    return tuple(int(x) for x in d) + (1,) * (3 - len(d))
