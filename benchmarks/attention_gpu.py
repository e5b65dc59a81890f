"""Flash attention on a GPU: our CUDA C kernels (backend "cupy") against torch's SDPA on the same GPU.

    python benchmarks/attention_gpu.py                           # N = 512 .. 8192, d = 64 and 128, causal and not
    python benchmarks/attention_gpu.py --sizes 1024 4096 --dims 64
    python benchmarks/attention_gpu.py --harness                 # no GPU needed: see below

Contenders, B = 1, H = --heads (8), for each N, d and mask (full / causal):
- "cupy fp32": flash_fwd.cu forward, flash_bwd.cu backward (three kernels), float32;
- "cupy wmma": flash_fwd_wmma.cu, half inputs on tensor cores, float32 accumulation; forward only;
- "step 01" / "step 02" / "step 03": lesson 11's kernel progression (kernels/cuda/progression: the naive port
  with N x N scores in global memory, one thread per query row, shared-memory K/V tiles), forward only, float32,
  so a learner sees what each step buys; step 04 of the progression is "cupy fp32";
- "torch fp32" / "torch fp16": torch.nn.functional.scaled_dot_product_attention on float32 / float16 tensors
  (torch picks its own kernel: on an sm_80+ GPU, FlashAttention-2 for fp16, memory-efficient attention for fp32).
"vs torch" is torch's time at the same dtype over ours (> 1: faster than torch): cupy fp32 against torch fp32,
cupy wmma against torch fp16, the progression steps against torch fp32. Each row also gives max|o - o_torch|
of the forward (at the same dtype), so a fast
wrong kernel shows. All arrays stay on the device (CuPy arrays for ours, torch tensors for torch).

Timing: --warmup calls, then --repeat calls, each between two device synchronisations and timed with
time.perf_counter; the median is kept. Forward+backward = the forward, then the backward from its o and lse
(ours), or forward + autograd.grad (torch). FLOP convention (FlashAttention-2's): forward 4·N²·d per head,
half of it when causal; backward 2.5x the forward, so forward+backward 3.5x. TFLOP/s = these useful FLOPs / time.

--harness (also taken automatically when CuPy or a GPU is missing, with the reason printed): the SAME script
and the same launchers run the same .cu files on the CPU harness (kernels/cuda/harness, backend "cuda-cpu";
the wmma kernel with its software stand-ins for the tensor-core instructions) against torch on the CPU, at tiny
sizes (N = 64, 96; d = 16, 32; H = 2). Those numbers are NOT GPU numbers (the harness runs CUDA threads as
fibers, thousands of times slower than a GPU): the mode exists so that every line of this script runs in CI.

Writes benchmarks/out/attention_gpu.csv and .png (attention_gpu_harness.* with --harness), or under --out-dir.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minitorch_attn.kernels.cuda import SOURCE_DIR, progression  # noqa: E402
from minitorch_attn.kernels.cuda.backward import KERNEL_NAMES, run_flash_backward  # noqa: E402
from minitorch_attn.kernels.cuda.cupy_backend import run_flash_forward_wmma  # noqa: E402
from minitorch_attn.kernels.cuda.forward import run_flash_forward  # noqa: E402

OURS = ("cupy fp32", "cupy wmma")
STEPS = ("step 01", "step 02", "step 03")  # lesson 11's progression; step 04 is flash_fwd.cu = "cupy fp32"
TORCH = ("torch fp32", "torch fp16")
# the torch row each of ours is compared with
REFERENCE = {"cupy fp32": "torch fp32", "cupy wmma": "torch fp16", **{s: "torch fp32" for s in STEPS}}
CSV_FIELDS = ("mode", "device", "B", "H", "N", "d", "causal", "contender", "fwd_ms", "fwdbwd_ms", "fwd_tflops",
              "fwdbwd_tflops", "fwd_vs_torch", "fwdbwd_vs_torch", "max_err_vs_torch", "note")


def flops_forward(N, H, d, causal, B=1):
    """Useful FLOPs of one forward: two N x N x d matmuls per head (causal: half)."""
    return 4.0 * B * H * N * N * d * (0.5 if causal else 1.0)


def gpu_problem():
    """Why the GPU mode cannot run here (a sentence), or None."""
    try:
        import cupy
    except ImportError as error:
        return f"CuPy is not installed ({error})"
    from minitorch_attn.kernels.cuda.cupy_backend import device_problem

    return device_problem(cupy)


# ---------------------------------------------------------------------------------------------- platforms
class Platform:
    """Where the contenders run: the array module and kernels of ours, torch's device, and how to wait.

    mode "gpu": CuPy arrays and RawModule kernels, torch on "cuda". mode "harness": NumPy arrays and the CPU
    harness's kernels (the same .cu files), torch on the CPU. Everything else in this script is shared.
    """

    def __init__(self, mode: str):
        self.mode = mode
        if mode == "gpu":
            import cupy

            from minitorch_attn.kernels.cuda.cupy_backend import kernel

            self.xp, self.kernel, self.launch_options = cupy, kernel, {}
            self.step_kernels = progression.cupy_kernels()
            props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
            self.device = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        else:
            self.xp, self.kernel, self.launch_options = np, _harness_kernel, {"seed": 1}
            self.step_kernels = progression.harness_kernels(seed=1)
            self.device = f"CPU harness ({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs)"
        self.torch = _torch()
        self.torch_device = None
        if self.torch is not None:
            if mode == "harness":
                self.torch_device = "cpu"
            elif self.torch.cuda.is_available():
                self.torch_device = "cuda"

    def sync(self):
        if self.mode == "gpu":
            self.xp.cuda.runtime.deviceSynchronize()  # the whole device: CuPy's streams and torch's

    def to_device(self, a: np.ndarray):
        return self.xp.asarray(a)

    def to_host(self, a) -> np.ndarray:
        if self.torch is not None and isinstance(a, self.torch.Tensor):
            return a.detach().float().cpu().numpy()
        return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


def _harness_kernel(filename, name):
    """One kernel of a kernels/cuda/*.cu file on the CPU harness (the progression's loader, one module per file)."""
    return _HARNESS(SOURCE_DIR / filename, name)


_HARNESS = progression.harness_kernels(seed=1)


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


# ---------------------------------------------------------------------------------------------- contenders
def contender_fns(name, plat: Platform, host, causal):
    """(forward, forward+backward or None, output of one forward as a NumPy array) for one contender.

    host: NumPy float32 (q, k, v, do) of shape (B, H, N, d).
    """
    if name in TORCH:
        torch = plat.torch
        dtype = torch.float32 if name == "torch fp32" else torch.float16
        tq, tk, tv, tdo = (torch.from_numpy(a).to(plat.torch_device, dtype) for a in host)
        F = torch.nn.functional.scaled_dot_product_attention

        def fwd():
            with torch.no_grad():
                return F(tq, tk, tv, is_causal=causal)

        def fwd_bwd():
            a, b, c = (t.detach().requires_grad_() for t in (tq, tk, tv))
            return torch.autograd.grad(F(a, b, c, is_causal=causal), (a, b, c), tdo)

        return fwd, fwd_bwd, plat.to_host(fwd())
    xp, kernel, opts = plat.xp, plat.kernel, plat.launch_options
    q, k, v, do = (plat.to_device(a) for a in host)
    if name in STEPS:
        step = progression.step(name.split()[1])

        def fwd():
            return step.run(plat.step_kernels, q, k, v, causal=causal)

        return fwd, None, plat.to_host(fwd()[0])
    if name == "cupy wmma":
        q, k, v = (a.astype(xp.float16) for a in (q, k, v))  # what the kernel reads: converting is not timed
        fwd_kernel = kernel("flash_fwd_wmma.cu", "flash_fwd_wmma")

        def fwd():
            return run_flash_forward_wmma(fwd_kernel, q, k, v, causal, xp=xp, **opts)

        return fwd, None, plat.to_host(fwd()[0])
    fwd_kernel = kernel("flash_fwd.cu", "flash_fwd")
    bwd_kernels = {n: kernel("flash_bwd.cu", n) for n in KERNEL_NAMES}

    def fwd():
        return run_flash_forward(fwd_kernel, q, k, v, causal, xp=xp, **opts)

    def fwd_bwd():
        o, lse = fwd()
        return run_flash_backward(bwd_kernels, q, k, v, o, lse, do, causal, xp=xp, **opts)

    return fwd, fwd_bwd, plat.to_host(fwd()[0])


def median_time(fn, plat: Platform, warmup, repeat):
    """Median seconds of `repeat` calls after `warmup` calls, each call between two synchronisations."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        plat.sync()
        t0 = time.perf_counter()
        fn()
        plat.sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(plat: Platform, sizes, dims, heads, warmup, repeat, contenders, log=print):
    """One dict per (N, d, causal, contender) with times, TFLOP/s, ratios to torch and the error vs torch."""
    rows = []
    for d in dims:
        for N in sizes:
            for causal in (False, True):
                rng = np.random.default_rng(N * 1000 + d)
                host = [rng.standard_normal((1, heads, N, d), dtype=np.float32) for _ in range(4)]
                outputs, group = {}, []
                for name in contenders:
                    row = {"mode": plat.mode, "device": plat.device, "B": 1, "H": heads, "N": N, "d": d,
                           "causal": causal, "contender": name, "note": ""}
                    if name in TORCH and plat.torch_device is None:
                        continue
                    try:
                        fwd, fwd_bwd, outputs[name] = contender_fns(name, plat, host, causal)
                        row["fwd_s"] = median_time(fwd, plat, warmup, repeat)
                        if fwd_bwd is not None:
                            row["fwdbwd_s"] = median_time(fwd_bwd, plat, warmup, repeat)
                        else:
                            row["note"] = "forward only"
                    except Exception as error:  # one contender failing (e.g. out of memory) should not end the run
                        row["note"] = f"failed: {type(error).__name__}: {str(error).splitlines()[0][:120]}"
                    group.append(row)
                    log(f"  N={N} d={d} {'causal' if causal else 'full'} {name}: "
                        + (f"{row['fwd_s'] * 1e3:.3f} ms" if "fwd_s" in row else row["note"]))
                _derive(group, outputs)
                rows += group
    return rows


def _derive(group, outputs):
    """TFLOP/s, the ratios to the torch row of the same dtype, and the forward's error against it."""
    by_name = {r["contender"]: r for r in group}
    for r in group:
        f1 = flops_forward(r["N"], r["H"], r["d"], r["causal"], r["B"])
        for key, mult in (("fwd", 1.0), ("fwdbwd", 3.5)):
            if f"{key}_s" in r:
                r[f"{key}_ms"] = r[f"{key}_s"] * 1e3
                r[f"{key}_tflops"] = mult * f1 / r[f"{key}_s"] / 1e12
        ref = by_name.get(REFERENCE.get(r["contender"], ""))
        if ref is None:
            continue
        for key in ("fwd", "fwdbwd"):
            if f"{key}_s" in r and f"{key}_s" in ref:
                r[f"{key}_vs_torch"] = ref[f"{key}_s"] / r[f"{key}_s"]
        if r["contender"] in outputs and ref["contender"] in outputs:
            r["max_err_vs_torch"] = float(np.max(np.abs(outputs[r["contender"]] - outputs[ref["contender"]])))


# ---------------------------------------------------------------------------------------------- output
def table(rows, plat: Platform) -> str:
    head = (f"{'N':>6} {'d':>4} {'mask':<7}{'contender':<11}{'fwd ms':>10}{'TFLOP/s':>9}{'vs torch':>10} |"
            f"{'fwd+bwd ms':>11}{'TFLOP/s':>9}{'vs torch':>10} | {'max|o-torch|':>12}")
    lines = [head, "-" * len(head)]
    for r in rows:
        mask = "causal" if r["causal"] else "full"
        cells = f"{r['N']:>6} {r['d']:>4} {mask:<7}{r['contender']:<11}"
        for key in ("fwd", "fwdbwd"):
            width = 10 if key == "fwd" else 11
            if f"{key}_ms" in r:
                ratio = f"{r[key + '_vs_torch']:.2f}x" if f"{key}_vs_torch" in r else ""
                cells += f"{r[key + '_ms']:>{width}.3f}{r[key + '_tflops']:>9.3g}{ratio:>10} |"
            else:
                cells += f"{'-':>{width}}{'':>9}{'':>10} |"
        err = r.get("max_err_vs_torch")
        cells += f" {err:>12.2e}" if err is not None else f" {'':>12}"
        if r["note"] and r["note"] != "forward only":
            cells += f"  {r['note']}"
        lines.append(cells)
    lines.append("\nvs torch = torch's time at the same dtype / ours (> 1: ours is faster); cupy fp32 and steps "
                 "01-03 vs torch fp32, cupy wmma vs torch fp16.\nTFLOP/s: forward 4·N²·d per head (causal: half), "
                 "forward+backward 3.5x that. Median of the timed calls.")
    if plat.mode == "harness":
        lines.append("HARNESS MODE: these are NOT GPU numbers. Our kernels ran on the CPU harness (CUDA threads as "
                     "fibers), torch on the CPU; the run only exercises this script's code paths.")
    return "\n".join(lines)


def write_csv(rows, path):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (f"{r[k]:.6g}" if isinstance(r.get(k), float) else r.get(k, "")) for k in CSV_FIELDS})


def plot(rows, plat: Platform, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = sorted({r["d"] for r in rows})
    fig, axes = plt.subplots(len(dims), 2, figsize=(11, 4.2 * len(dims)), squeeze=False, sharex=True)
    colours = {"step 01": "tab:gray", "step 02": "tab:olive", "step 03": "tab:cyan", "cupy fp32": "tab:blue",
               "cupy wmma": "tab:green", "torch fp32": "tab:red", "torch fp16": "tab:orange"}
    for row_axes, d in zip(axes, dims):
        for ax, (key, title) in zip(row_axes, (("fwd_tflops", "forward"), ("fwdbwd_tflops", "forward+backward"))):
            for name, colour in colours.items():
                for causal, style in ((False, "-"), (True, "--")):
                    pts = sorted((r["N"], r[key]) for r in rows
                                 if r["contender"] == name and r["d"] == d and r["causal"] == causal and key in r)
                    if pts:
                        ax.plot(*zip(*pts), style, marker="o", color=colour,
                                label=f"{name} {'causal' if causal else 'full'}")
            ax.set_xscale("log", base=2)
            ax.set_title(f"{title}, d = {d} (B=1, H={rows[0]['H']})")
            ax.set_xlabel("sequence length N")
            ax.set_ylabel("TFLOP/s (useful FLOPs)")
            ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(plat.device + ("  —  CPU HARNESS: NOT GPU NUMBERS" if plat.mode == "harness" else ""),
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- driver
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--harness", action="store_true", help="run on the CPU harness at tiny sizes (no GPU needed)")
    p.add_argument("--sizes", type=int, nargs="+", help="sequence lengths N (GPU: 512..8192, harness: 64 96)")
    p.add_argument("--dims", type=int, nargs="+", help="head dims d (GPU: 64 128, harness: 16 32)")
    p.add_argument("--heads", type=int, help="heads H (GPU: 8, harness: 2)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls first (GPU: 3, harness: 1)")
    p.add_argument("--repeat", type=int, default=None, help="timed calls; the median is kept (GPU: 10, harness: 2)")
    p.add_argument("--contenders", nargs="+", default=[*OURS, *STEPS, *TORCH], choices=[*OURS, *STEPS, *TORCH])
    p.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "out")
    args = p.parse_args(argv)

    mode = "harness" if args.harness else "gpu"
    if mode == "gpu":
        problem = gpu_problem()
        if problem:
            print(f"no GPU run possible here ({problem}): running --harness instead.\n")
            mode = "harness"
    gpu = mode == "gpu"
    sizes = args.sizes or ([512, 1024, 2048, 4096, 8192] if gpu else [64, 96])
    dims = args.dims or ([64, 128] if gpu else [16, 32])
    heads = args.heads or (8 if gpu else 2)
    warmup = args.warmup if args.warmup is not None else (3 if gpu else 1)
    repeat = args.repeat if args.repeat is not None else (10 if gpu else 2)
    bad = [d for d in dims if d % 16 or d > 128]
    if bad:
        p.error(f"--dims must be multiples of 16 up to 128 (the wmma kernel's tiles); got {bad}")

    plat = Platform(mode)
    torch_note = (f"torch {plat.torch.__version__} on {plat.torch_device}" if plat.torch_device
                  else "torch: not available on this device (no ratios)")
    print(f"mode {mode}: {plat.device}; {torch_note}; B=1, H={heads}, warmup {warmup}, median of {repeat}")
    if mode == "harness":
        print("HARNESS MODE: the numbers below are NOT GPU numbers.")
    t_start = time.perf_counter()
    rows = measure(plat, sizes, dims, heads, warmup, repeat, args.contenders)
    print()
    print(table(rows, plat))

    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = "attention_gpu" if gpu else "attention_gpu_harness"
    write_csv(rows, args.out_dir / f"{stem}.csv")
    plot(rows, plat, args.out_dir / f"{stem}.png")
    meta = {"command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
            "mode": mode, "device": plat.device, "torch": torch_note, "wall_s": time.perf_counter() - t_start}
    (args.out_dir / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=str))
    print(f"\nwrote {args.out_dir / (stem + '.csv')}, .png and .json ({meta['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
