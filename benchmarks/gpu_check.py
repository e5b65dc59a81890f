"""The prepared device check: one command for the first (short, rare) GPU run of this project's CUDA C.

    python benchmarks/gpu_check.py                    # on a CUDA GPU: ~6 min budget on one H100
    python benchmarks/gpu_check.py --quick            # fewer sizes: under 2 min
    python benchmarks/gpu_check.py --harness --quick  # no GPU: the same steps on the CPU harness (CI runs this)

Needs: this repository installed with the `cuda` extra (`pip install -e '.[cuda]'`: cupy-cuda13x and
nvidia-cuda-nvrtc, for a CUDA 13 driver), pytest; torch with CUDA is optional (ours vs torch SDPA when present,
else our kernels alone with TFLOP/s). Nothing is installed or downloaded by this script.

Steps, each a subprocess with its own timeout (a hung step is killed and reported, the next one runs):
1. environment    python, numpy, cupy, torch, the device (or why there is none)
2. compile_check  NVRTC resource table: registers, spills, static + dynamic shared memory, occupancy estimate
                  for sm_80 / sm_90 (occupancy.py, CUDA's occupancy rules) - the numbers the GPU is read against
3. attributes     GPU only: each kernel's registers, static shared memory and max threads as the driver reports
                  them, and the driver's occupancy (blocks per SM) at the default launch, beside step 2's
4. tests          tests/test_cupy_backend.py and tests/test_cuda_launch.py with MINITORCH_CUDA_SYNC=1 (a kernel
                  fault is reported by the launch that caused it); --harness: on the stand-in CuPy
                  (kernels/cuda/standin_cupy.py), so the GPU tests' code runs on the CPU harness
5. exercises      lesson 11's graded CUDA exercise tests against the solutions, with MTA_CUDA_EXERCISES=gpu: the
                  learner's kernels compiled by CuPy and launched on the device (course/cuda_checks.DeviceKernel);
                  --harness: on the stand-in CuPy (--quick: the 11.1 and 11.2 tests)
6. benchmark      benchmarks/attention_gpu.py (GPU: N 512..8192, --quick: 1024 and 4096; harness: tiny), without
                  MINITORCH_CUDA_SYNC (it times each call between two device synchronisations itself)
Writes <out-dir>/gpu_check.json (one record per step: command, exit status, seconds, output tail, parsed
results) and <out-dir>/gpu_check.log (everything printed). Exit status 1 if any step failed or timed out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def gpu_problem():
    try:
        import cupy
    except ImportError as error:
        return f"CuPy is not installed ({error})"
    sys.path.insert(0, str(ROOT))
    from minitorch_attn.kernels.cuda.cupy_backend import device_problem

    return device_problem(cupy)


def steps(harness: bool, quick: bool, out: Path) -> list[tuple[str, list[str], float]]:
    """(name, command, timeout seconds) of each step."""
    env_probe = ("import platform, numpy; print('python', platform.python_version(), '| numpy', numpy.__version__)\n"
                 "try:\n import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available())\n"
                 "except ImportError: print('torch: not installed')\n"
                 "try:\n import cupy; d = cupy.cuda.runtime.getDeviceProperties(0); "
                 "print('cupy', cupy.__version__, '|', d['name'], 'sm_%d%d' % (d['major'], d['minor']))\n"
                 "except Exception as e: print('cupy / device:', type(e).__name__, e)\n")
    plugin = ["-p", "minitorch_attn.kernels.cuda.standin_cupy"] if harness else []
    tests = ["tests/test_cupy_backend.py", "tests/test_cuda_launch.py"]
    quick_tests = "stand_in_cupy_numpy or raw_module or empty or failed or whole_batches"  # CI-sized: ~10 s
    select = ["-k", quick_tests] if harness and quick else []
    if harness:
        bench = ["--harness", "--sizes", "32", "--dims", "16", "--heads", "1", "--warmup", "0", "--repeat", "1",
                 "--contenders", "cupy fp32", "step 02", "torch fp32"]
    else:
        bench = ["--sizes", "1024", "4096", "--repeat", "5"] if quick else []
    out_steps = [
        ("environment", [PY, "-c", env_probe], 60),
        ("compile_check", [PY, "-m", "minitorch_attn.kernels.cuda.compile_check", "--json",
                           str(out / "resources.json")], 180),
    ]
    if not harness:
        out_steps.append(("attributes", [PY, str(Path(__file__)), "--attributes", str(out / "attributes.json")], 120))
    out_steps += [
        ("tests", [PY, "-m", "pytest", *plugin, *tests, *select, "-q", "-rs", "-x", "-p", "no:cacheprovider"],
         240 if quick else 420),
        ("exercises", [PY, "-m", "pytest", *plugin, "tests/exercises/test_lesson11_flash_cuda.py", "--target=solutions",
                       *(["-k", "softmax_rows or online_row"] if harness and quick else []),
                       "-q", "-rs", "-x", "-p", "no:cacheprovider"], 120 if quick else 240),
        ("benchmark", [PY, "benchmarks/attention_gpu.py", *bench, "--out-dir", str(out)], 150 if quick else 300),
    ]
    return out_steps


def attributes(path: Path) -> int:
    """GPU only: the driver's view of every kernel (CuPy's RawKernel attributes) and its occupancy."""
    import cupy

    sys.path.insert(0, str(ROOT))
    from minitorch_attn.kernels.cuda import compile_check
    from minitorch_attn.kernels.cuda.cupy_backend import kernel

    kernels = {"flash_fwd.cu": ["flash_fwd"], "flash_fwd_wmma.cu": ["flash_fwd_wmma"],
               "flash_bwd.cu": ["flash_bwd_preprocess", "flash_bwd_dkdv", "flash_bwd_dq"]}
    rows = []
    for filename, names in kernels.items():
        for name in names:
            k = kernel(filename, name)
            row = {"kernel": name, "num_regs": k.num_regs, "shared_size_bytes": k.shared_size_bytes,
                   "local_size_bytes": k.local_size_bytes, "max_threads_per_block": k.max_threads_per_block}
            for d in compile_check.OCCUPANCY_DIMS:
                threads, smem = compile_check.LAUNCH_SHAPES[name](d)
                try:
                    if smem > 48 * 1024:
                        k.max_dynamic_shared_size_bytes = smem
                    row[f"blocks_per_sm_d{d}"] = cupy.cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor(
                        k.kernel.ptr, threads, smem)
                except Exception as error:  # an older CuPy without the call: say so, keep the rest
                    row[f"blocks_per_sm_d{d}"] = f"{type(error).__name__}: {error}"
            rows.append(row)
            print(row)
    path.write_text(json.dumps(rows, indent=1))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--harness", action="store_true", help="no GPU: run every step on the CPU harness")
    p.add_argument("--quick", action="store_true", help="fewer tests and sizes (GPU: under 2 minutes)")
    p.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "out" / "gpu_check")
    p.add_argument("--attributes", type=Path, help=argparse.SUPPRESS)  # step 3, run in its own process
    args = p.parse_args(argv)
    if args.attributes:
        return attributes(args.attributes)

    problem = None if args.harness else gpu_problem()
    if problem:
        print(f"no GPU here ({problem}): running --harness instead.")
    harness = args.harness or problem is not None
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, MINITORCH_CUDA_SYNC="1", PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    report = {"mode": "harness" if harness else "gpu", "quick": args.quick, "no_gpu_reason": problem,
              "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "steps": []}
    if harness:
        report["note"] = ("HARNESS MODE: no GPU ran; the steps exercise this script and the GPU code paths on the "
                          "CPU harness. Timings are NOT GPU numbers.")
    t0 = time.perf_counter()
    with open(out / "gpu_check.log", "w") as log:
        for name, command, timeout in steps(harness, args.quick, out):
            start = time.perf_counter()
            header = f"== {name}: {' '.join(command)} (timeout {timeout} s)"
            print(header, flush=True)
            log.write(header + "\n")
            try:
                step_env = env if name != "benchmark" else dict(env, MINITORCH_CUDA_SYNC="0")  # never for timings
                if name == "exercises":
                    step_env = dict(step_env, MTA_CUDA_EXERCISES="gpu")
                done = subprocess.run(command, cwd=ROOT, env=step_env, capture_output=True, text=True,
                                      timeout=timeout)
                rc, text = done.returncode, done.stdout + done.stderr
                status = "passed" if rc == 0 else "failed"
            except subprocess.TimeoutExpired as error:
                rc, status = None, "timed out"
                text = "".join(x.decode() if isinstance(x, bytes) else (x or "") for x in (error.stdout, error.stderr))
            seconds = time.perf_counter() - start
            log.write(text + f"\n== {name}: {status} in {seconds:.1f} s\n")
            log.flush()
            print(text[-3000:] + f"\n== {name}: {status} in {seconds:.1f} s\n", flush=True)
            report["steps"].append({"name": name, "command": command, "rc": rc, "status": status,
                                    "seconds": round(seconds, 1), "tail": text[-2000:]})
    for key, filename in (("resources", "resources.json"), ("attributes", "attributes.json"),
                          ("benchmark", "attention_gpu.json" if not harness else "attention_gpu_harness.json")):
        if (out / filename).exists():
            report[key] = json.loads((out / filename).read_text())
    report["seconds"] = round(time.perf_counter() - t0, 1)
    report["passed"] = all(s["status"] == "passed" for s in report["steps"])
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
    print(f"gpu_check ({report['mode']}): {'passed' if report['passed'] else 'FAILED'} in {report['seconds']} s; "
          f"wrote {out / 'gpu_check.json'} and gpu_check.log")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
