"""A CPU execution harness for CUDA C kernels: see `launcher.py` (Python side), `cuda_builtins.h`, `trace.py`."""

from .launcher import CpuKernel, CpuModule, KernelError, TracedKernel, cache_dir, compile_source
from .trace import Event, Trace

__all__ = ["CpuKernel", "CpuModule", "Event", "KernelError", "Trace", "TracedKernel", "cache_dir",
           "compile_source"]
