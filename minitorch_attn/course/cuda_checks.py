"""Helpers for graded tests of CUDA C exercises (lesson 11): turn a learner's definition into a runnable
kernel on the CPU harness, and fail with a message that teaches.

    source = cuda_exercise_source(impl, "11.1")      # 01_naive.cu with the learner's softmax_rows in place
    get_kernel = cuda_exercise_kernels(impl, "11.1")  # progression's get_kernel(path, name), on that source

A learner's definition is a string of CUDA C (see source.py). While one of its `// YOUR CODE HERE` blocks
holds no code -- only the stub's comment -- it raises NotImplementedError with the stub's message, as a Python
stub does; so `course verify` sees the stubs fail with NotImplementedError. The definition is spliced into
the library's .cu file in place of the library's own, and the whole file is compiled by the CPU harness
(g++); a compile error fails the test with g++'s first errors, line numbers mapped to the definition.

On a GPU. With MTA_CUDA_EXERCISES=gpu the same graded tests run the learner's kernels on the CUDA device
instead: the spliced file is compiled by CuPy's RawModule (NVRTC, the options of the GPU backend), and each
kernel is wrapped in `DeviceKernel`, which keeps the harness's call shape (NumPy arrays in, results written
back into them, `seed=` / `timeout=` ignored: a GPU has its own schedule), so no graded test changes.
`benchmarks/gpu_check.py` runs them this way (step "exercises"); with `--harness` it does so on the stand-in
CuPy, which proves the GPU route in CI.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from . import catalog
from .checks import fail
from .source import (
    block_stub_message,
    cuda_path,
    cuda_text,
    find_cuda_definition,
    read_definition,
    splice_cuda_definition,
    stub_message,
    unwritten_cuda_blocks,
)

_MODULES: dict[str, object] = {}
DEVICE_ENV = "MTA_CUDA_EXERCISES"  # "harness" (default: the CPU harness) or "gpu" (CuPy on a CUDA device)


def on_gpu() -> bool:
    """Whether graded CUDA tests run on the GPU (MTA_CUDA_EXERCISES=gpu) rather than the CPU harness."""
    where = os.environ.get(DEVICE_ENV, "harness").strip().lower()
    if where not in ("harness", "gpu"):
        raise ValueError(f"{DEVICE_ENV}={where!r}: expected 'harness' (the CPU harness, the default) or 'gpu' "
                         "(the learner's kernels on a CUDA device through CuPy)")
    return where == "gpu"


class DeviceKernel:
    """A CuPy kernel with the CPU harness kernel's call shape, so graded tests run unchanged on a GPU:
    `kernel(grid, block, args, shared_mem=0, seed=None, timeout=None)` copies the NumPy arrays among `args` to
    the device, launches, synchronises (a fault is reported by this launch) and copies every array back into
    the NumPy array it came from (the kernels write their outputs in place). Scalars pass as they are."""

    def __init__(self, raw, cupy):
        from ..kernels.cuda.launch import device_limits

        self.raw, self.cupy, self.name = raw, cupy, getattr(raw, "name", "kernel")
        self.device_limits = device_limits(raw)
        self.max_threads_per_block = getattr(raw, "max_threads_per_block", None)

    @property
    def max_dynamic_shared_size_bytes(self):
        return self.raw.max_dynamic_shared_size_bytes

    @max_dynamic_shared_size_bytes.setter
    def max_dynamic_shared_size_bytes(self, nbytes):
        self.raw.max_dynamic_shared_size_bytes = nbytes

    def __call__(self, grid, block, args, shared_mem=0, seed=None, timeout=None):
        on_device = [self.cupy.asarray(a) if isinstance(a, np.ndarray) else a for a in args]
        self.raw(tuple(grid), tuple(block), tuple(on_device), shared_mem=int(shared_mem))
        self.cupy.cuda.runtime.deviceSynchronize()
        for host, device in zip(args, on_device):
            if isinstance(host, np.ndarray):
                host[...] = self.cupy.asnumpy(device)


def _gpu_kernels(source: str, ex: catalog.Exercise):
    """get_kernel(path, name) on the CUDA device: the exercise's file from `source`, the others as they are."""
    from ..kernels.cuda import expand_includes
    from ..kernels.cuda.cupy_backend import MODULE_OPTIONS, _cupy

    cupy = _cupy()  # CuPy and a device, or the backend's error saying what is missing
    target = cuda_path(ex).resolve()
    modules: dict[Path, object] = {}

    def get_kernel(path, name):
        path = Path(path).resolve()
        if path not in modules:
            code = source if path == target else path.read_text(encoding="utf-8")
            # NVRTC as CuPy runs it has no include path: common.cuh is pasted in, as for the library's kernels
            modules[path] = cupy.RawModule(code=expand_includes(code, path.name), options=MODULE_OPTIONS)
        return DeviceKernel(modules[path].get_function(name), cupy)

    return get_kernel


def learner_definition(impl, exercise_id: str) -> str:
    """The learner's CUDA C definition of exercise `exercise_id` from `impl` (a lesson module or a notebook's
    namespace); NotImplementedError while a block is still the stub."""
    ex = catalog.get(exercise_id)
    value = getattr(impl, ex.name, None)
    if value is None:
        fail(f"Exercise {ex.id}", f"the lesson file defines no {ex.name}",
             "restore the raw string from the generated exercise file")
    try:
        text = cuda_text(value, ex)
    except TypeError as e:
        fail(f"Exercise {ex.id}", str(e), f'keep `{ex.name} = r"""..."""` and write CUDA C inside it')
    if not re.search(rf"\b{re.escape(ex.name)}\s*\(", text):
        fail(f"Exercise {ex.id}", f"the string {ex.name} no longer defines the function {ex.name}(...)",
             "write only inside the YOUR CODE HERE blocks; keep the signature and the closing '}' line")
    unwritten = unwritten_cuda_blocks(text, ex)
    if unwritten:
        d = read_definition(ex)
        if unwritten[0] < len(d.blocks):
            raise NotImplementedError(block_stub_message(d, d.blocks[unwritten[0]]))
        raise NotImplementedError(stub_message(ex, ex.name))
    return text


def cuda_exercise_source(impl, exercise_id: str) -> str:
    """The library's .cu file of the exercise with the learner's definition in place of its own."""
    ex = catalog.get(exercise_id)
    text = learner_definition(impl, exercise_id)
    library = cuda_path(ex).read_text(encoding="utf-8")
    return splice_cuda_definition(library, ex, text, f"{ex.file} with your {ex.name}")


def _compile(source: str, ex: catalog.Exercise):
    from ..kernels.cuda.harness import CpuModule, KernelError

    module = _MODULES.get(source)
    if module is None:
        path = cuda_path(ex)
        try:  # the library's own text (the solutions): the harness's cached build of the file itself
            module = CpuModule(path=path) if source == path.read_text(encoding="utf-8") else CpuModule(code=source)
        except KernelError as e:
            first, _ = find_cuda_definition(source.splitlines(), ex.name, ex.file)
            errors = [line for line in str(e).splitlines() if "error" in line][:6]
            fail(f"Exercise {ex.id}: {ex.name}", "does not compile (g++, the CPU harness)",
                 f"line numbers are those of {ex.file} with your definition in place: it starts at line "
                 f"{first + 1} (lines 1-{first} are the file's own)", "\n".join(errors) or str(e)[-2000:])
        _MODULES[source] = module
    return module


def cuda_exercise_kernels(impl, exercise_id: str):
    """`get_kernel(path, name)` for the progression's `run`: the exercise's file compiled from the learner's
    source, any other file as the library has it. Pass `seed=` to `run` to choose the thread schedule."""
    ex = catalog.get(exercise_id)
    source = cuda_exercise_source(impl, exercise_id)
    if on_gpu():
        return _gpu_kernels(source, ex)
    module = _compile(source, ex)
    target = cuda_path(ex).resolve()

    def get_kernel(path, name):
        if Path(path).resolve() == target:
            return module.get_function(name)
        from ..kernels.cuda.harness import CpuModule

        return CpuModule(path=path).get_function(name)

    return get_kernel


def nvrtc_problems(impl, exercise_id: str) -> list[str] | None:
    """Compile the exercise's file with the learner's definition by NVRTC, as CuPy will on a GPU (sm_80):
    the problems found (an NVRTC error, spills, a stack frame, too many registers), or None when NVRTC is
    not installed here."""
    from ..kernels.cuda.compile_check import check
    from ..kernels.cuda.nvrtc import NvrtcError, find_nvrtc

    try:
        find_nvrtc()
    except NvrtcError:
        return None
    ex = catalog.get(exercise_id)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ex.file
        path.write_text(cuda_exercise_source(impl, exercise_id), encoding="utf-8")
        _, problems = check([path], archs=("sm_80",))
    return problems
