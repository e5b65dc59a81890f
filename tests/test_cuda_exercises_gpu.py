"""Lesson 11's graded CUDA exercises on the GPU route (MTA_CUDA_EXERCISES=gpu, course/cuda_checks.DeviceKernel):
the learner's spliced file compiled by CuPy's RawModule and launched with NumPy arrays copied to the device and
back. Here CuPy is the stand-in (kernels/cuda/standin_cupy.py: RawModule compiles on the CPU harness), so the
route's code runs in CI; `benchmarks/gpu_check.py` runs the same tests on a real device."""

from __future__ import annotations

import importlib
import shutil
import types

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(shutil.which("g++") is None,
                                reason="the stand-in CuPy compiles CUDA C on the CPU harness, which needs g++")

from minitorch_attn.course import cuda_checks  # noqa: E402
from minitorch_attn.kernels import attention_forward  # noqa: E402
from minitorch_attn.kernels.cuda import progression, standin_cupy  # noqa: E402


@pytest.fixture
def gpu_route(monkeypatch):
    standin_cupy.install()
    monkeypatch.setenv(cuda_checks.DEVICE_ENV, "gpu")
    standin_cupy.compiled.clear()
    yield standin_cupy
    standin_cupy.uninstall()


def _solutions():
    return importlib.import_module("solutions.lesson11_flash_cuda")


def test_the_gpu_route_compiles_with_cupy_and_runs_the_solution(gpu_route):
    get_kernel = cuda_checks.cuda_exercise_kernels(_solutions(), "11.2")
    kernel = get_kernel(progression.step("02").path, "online_row")
    assert isinstance(kernel, cuda_checks.DeviceKernel)
    assert any("online_row" in code for code, _ in gpu_route.compiled), "compiled by (stand-in) CuPy's RawModule"
    directives = [line for code, _ in gpu_route.compiled for line in code.splitlines()
                  if line.startswith('#include "')]
    assert not directives, \
        "NVRTC as CuPy runs it has no include path: common.cuh must be pasted in (kernels.cuda.expand_includes)"
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 37, 16)).astype(np.float32) for _ in range(3))
    o, lse = progression.run("02", get_kernel, q, k, v, causal=True)
    ref_o, ref_lse = attention_forward(*(a.astype(np.float64) for a in (q, k, v)), causal=True)
    assert type(o) is np.ndarray and np.max(np.abs(o - ref_o)) < 1e-5 and np.max(np.abs(lse - ref_lse)) < 1e-5


def test_device_kernel_copies_arrays_back_and_ignores_harness_options(gpu_route):
    calls = []

    class Raw:
        name = "fake"
        max_dynamic_shared_size_bytes = 0

        def __call__(self, grid, block, args, shared_mem=0):
            calls.append((grid, block, shared_mem))
            args[0][...] = 7.0  # the "device" array: written on the device

    synced = []
    copying = types.SimpleNamespace(  # a "device" whose arrays are copies: only the copy-back can change host
        asarray=lambda a: np.array(a, copy=True), asnumpy=lambda a: np.array(a, copy=True),
        cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(deviceSynchronize=lambda: synced.append(1))))
    kernel = cuda_checks.DeviceKernel(Raw(), copying)
    host = np.zeros(4, np.float32)
    kernel((1,), (32,), (host, np.int32(4)), shared_mem=0, seed=3, timeout=1.0)
    assert calls == [((1,), (32,), 0)] and synced == [1]
    assert np.all(host == 7.0), "results come back into the NumPy array they came from"


def test_a_bad_setting_names_the_choices(monkeypatch):
    monkeypatch.setenv(cuda_checks.DEVICE_ENV, "tpu")
    with pytest.raises(ValueError, match="MTA_CUDA_EXERCISES='tpu'.*'harness'.*'gpu'"):
        cuda_checks.on_gpu()
