"""A CPU execution harness for CUDA C kernels: see `launcher.py` (Python side) and `cuda_builtins.h`."""

from .launcher import CpuKernel, CpuModule, KernelError, cache_dir, compile_source

__all__ = ["CpuKernel", "CpuModule", "KernelError", "cache_dir", "compile_source"]
