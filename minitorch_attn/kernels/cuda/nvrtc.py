"""NVRTC through ctypes: compile CUDA C to a cubin exactly as CuPy's RawModule does, without a GPU.

The library comes from the PyPI wheel `nvidia-cuda-nvrtc` (the `cudacheck` extra, about 142 MB): nothing
else is needed, no CUDA driver, no device. `find_nvrtc()` falls back to a system CUDA toolkit.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
from functools import cache

from . import expand_includes

# CuPy's RawModule options (cupy/cuda/compiler.py), plus the target arch and ptxas' resource report.
CUPY_OPTIONS = ("--std=c++17", "-ftz=true", "--device-as-default-execution-space")


class NvrtcError(RuntimeError):
    """NVRTC is missing, or the source did not compile (the message holds the program log)."""


def find_nvrtc() -> str:
    """Path of libnvrtc: the nvidia-cuda-nvrtc wheel first, then $CUDA_HOME, /usr/local/cuda, the loader."""
    candidates = []
    try:
        import nvidia  # namespace package of the NVIDIA wheels

        for root in nvidia.__path__:
            candidates += sorted(glob.glob(os.path.join(root, "cu*", "lib", "libnvrtc.so*")))
            candidates += sorted(glob.glob(os.path.join(root, "cuda_nvrtc", "lib", "libnvrtc.so*")))
    except ImportError:
        pass
    for home in (os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if home:
            candidates += sorted(glob.glob(os.path.join(home, "lib64", "libnvrtc.so*")))
    candidates = [c for c in candidates if "builtins" not in os.path.basename(c)]
    found = ctypes.util.find_library("nvrtc")
    if found:
        candidates.append(found)
    if not candidates:
        raise NvrtcError("libnvrtc not found: pip install -e '.[cudacheck]' (the nvidia-cuda-nvrtc wheel)")
    return candidates[0]


@cache
def _lib():
    lib = ctypes.CDLL(find_nvrtc())
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p
    return lib


def version() -> tuple[int, int]:
    major, minor = ctypes.c_int(), ctypes.c_int()
    _check(_lib().nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
    return major.value, minor.value


def _check(status: int, what: str, log: str = ""):
    if status != 0:
        message = _lib().nvrtcGetErrorString(status).decode()
        raise NvrtcError(f"{what} failed: {message}" + (f"\n{log}" if log else ""))


def compile_cubin(source: str, name: str, arch: str, extra_options=()) -> tuple[bytes, str]:
    """Compile `source` for `arch` (e.g. "sm_90") with CuPy's options; return (cubin, program log).
    `#include "common.cuh"` is pasted in first (NVRTC as CuPy runs it has no include path)."""
    source = expand_includes(source, name)
    lib = _lib()
    prog = ctypes.c_void_p()
    _check(lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None),
           "nvrtcCreateProgram")
    try:
        options = [*CUPY_OPTIONS, f"-arch={arch}", *extra_options]
        argv = (ctypes.c_char_p * len(options))(*(o.encode() for o in options))
        status = lib.nvrtcCompileProgram(prog, len(options), argv)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        buf = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, buf)
        log = buf.value.decode(errors="replace")
        _check(status, f"compiling {name} for {arch} ({' '.join(options)})", log)
        _check(lib.nvrtcGetCUBINSize(prog, ctypes.byref(size)), "nvrtcGetCUBINSize")
        cubin = ctypes.create_string_buffer(size.value)
        _check(lib.nvrtcGetCUBIN(prog, cubin), "nvrtcGetCUBIN")
        return cubin.raw, log
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))
