"""A stand-in for CuPy on a machine without a GPU: what CuPy's part of our GPU code needs, with the CPU harness
underneath, so that every line of that code (and of the GPU tests) runs in CI before a GPU ever sees it.

    from minitorch_attn.kernels.cuda import standin_cupy
    standin_cupy.install()           # sys.modules["cupy"] is now the stand-in; uninstall() puts back what was there
    pytest -p minitorch_attn.kernels.cuda.standin_cupy ...   # the same, for a pytest run (benchmarks/gpu_check.py)

- Device arrays are `ndarray`, a NumPy array subclass that calls itself a CuPy array (its type's module is
  "cupy", so `forward.array_module` takes it for one) and has CuPy's `.get()`.
- `RawModule(code=..., options=...)` compiles the source with the CPU harness (fibers, schedule seed 2) and
  records (code, options) in `compiled`; `get_function(name)` gives the harness's CpuKernel, which refuses
  what an H100 refuses (kernels/cuda/launch.py).
- `cuda.runtime`: one device (getDeviceCount() == 1), deviceSynchronize() counts its calls in `synchronized`,
  getDeviceProperties() names the stand-in; `cuda.Device()`.
It is NOT a GPU: no speed, no tensor cores (the wmma kernel uses its software stand-ins), blocks one at a time.
"""

from __future__ import annotations

import sys
import types

import numpy as np

NAME = "stand-in CuPy (kernels on the CPU harness)"
compiled: list[tuple[str, tuple]] = []  # (code, options) of every RawModule
synchronized = [0]  # deviceSynchronize() calls
_saved: list = []


class ndarray(np.ndarray):  # noqa: N801 -- CuPy's name
    """A NumPy array that calls itself a CuPy device array."""

    def get(self):
        return np.array(self)


ndarray.__module__ = "cupy"


def _on_device(numpy_function):
    def wrapped(*args, **kwargs):
        return np.asarray(numpy_function(*args, **kwargs)).view(ndarray)

    wrapped.__name__ = numpy_function.__name__
    return wrapped


def asnumpy(a):
    return np.array(a)


class RawModule:
    """CuPy's RawModule, compiled by the CPU harness."""

    def __init__(self, code=None, options=(), **_):
        from .harness import CpuModule

        compiled.append((code, tuple(options)))
        self.module = CpuModule(code=code, seed=2)

    def get_function(self, name):
        return self.module.get_function(name)


class _Runtime:
    @staticmethod
    def getDeviceCount():  # noqa: N802 -- CuPy's name
        return 1

    @staticmethod
    def deviceSynchronize():  # noqa: N802
        synchronized[0] += 1

    @staticmethod
    def getDeviceProperties(device_id):  # noqa: N802
        return {"name": NAME.encode(), "major": 9, "minor": 0, "multiProcessorCount": 1}

    @staticmethod
    def driverGetVersion():  # noqa: N802
        return 0

    @staticmethod
    def runtimeGetVersion():  # noqa: N802
        return 0


class _Device:
    def __init__(self, device_id=0):
        self.id = int(device_id)
        self.attributes = {}
        self.compute_capability = "90"


def module() -> types.ModuleType:
    """A fresh stand-in `cupy` module."""
    fake = types.ModuleType("cupy")
    fake.__doc__ = __doc__
    fake.__version__ = "stand-in"
    fake.STANDIN = True
    fake.ndarray = ndarray
    for name in ("asarray", "ascontiguousarray", "full", "zeros", "empty", "zeros_like", "full_like"):
        setattr(fake, name, _on_device(getattr(np, name)))
    for name in ("float16", "float32", "float64", "int32", "uint8", "bool_", "nan", "inf", "abs", "isnan",
                 "isfinite"):
        setattr(fake, name, getattr(np, name))
    fake.asnumpy = asnumpy
    fake.RawModule = RawModule
    fake.cuda = types.SimpleNamespace(runtime=_Runtime(), Device=_Device)
    return fake


def install():
    """Make `import cupy` give the stand-in (until uninstall())."""
    _saved.append(sys.modules.get("cupy"))
    sys.modules["cupy"] = module()


def uninstall():
    previous = _saved.pop() if _saved else None
    if previous is None:
        sys.modules.pop("cupy", None)
    else:
        sys.modules["cupy"] = previous


def pytest_configure(config):
    """As a pytest plugin (`-p minitorch_attn.kernels.cuda.standin_cupy`): install before the tests are collected."""
    install()
