"""Attention on the CPU: naive NumPy, tiled NumPy (FlashAttention-2), our Numba kernels and torch's SDPA.

    python benchmarks/attention_cpu.py                      # N = 512 .. 8192, then the memory runs
    python benchmarks/attention_cpu.py --sizes 1024 4096    # fewer sizes
    python benchmarks/attention_cpu.py --quick              # a smoke run of every code path (seconds)

B = 1, H = 8, d = 64, float32, causal and not, forward and forward+backward. Each contender is timed in
its own subprocess: after Numba's parallel regions have run, torch in the same process can run ~3× slower
(its threads compete with Numba's still-spinning workers), which would flatter us. Times are the best of
`--repeat` runs after one warm-up run (the NumPy paths: one run, no warm-up, above N = 4096); Numba and
torch are timed in `--rounds` interleaved subprocess rounds and keep their best, since the load of a shared
machine comes and goes (the load average is printed).

FLOP convention (the FlashAttention-2 paper's): forward 4·N²·d per head (two N×N×d matmuls), half of it
when causal; backward 2.5× the forward (five matmuls), so forward+backward is 3.5×. GFLOP/s are these
useful FLOPs over the time (the naive path computes the masked half too: it gets no credit for it).
The roof is NumPy's SGEMM rate (2048² · 2048) measured in the same run, in its own subprocess.
"vs torch" is torch's time over the contender's: > 1 means faster than torch.

Memory: tracemalloc peaks of the NumPy paths (allocations through NumPy, inputs excluded); for the Numba
path (whose buffers tracemalloc cannot see) the peak resident-set growth (VmHWM after the call - VmRSS
before it, with the high-water mark reset through /proc/self/clear_refs), forward+backward at N = 16384
(H = 8) and for one head at N = 262,144 (causal). The bytes the naive path would need there are computed,
not tried.

Writes benchmarks/out/attention_cpu.json and benchmarks/out/attention_cpu.png (or under --out-dir).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONTENDERS = ("naive", "tiled", "numba", "torch")
NAIVE_BYTES_LIMIT = 6 * 2**30  # skip the naive path where its score-sized arrays would pass this


# ---------------------------------------------------------------------------------------------- helpers
def flops_forward(N, H, d, causal, B=1):
    return 4.0 * B * H * N * N * d * (0.5 if causal else 1.0)


def naive_bytes(N, H, d, B=1, itemsize=4, backward=True):
    """What the naive path holds at its peak: ~2 score-sized arrays forward, ~5 with the backward."""
    return (5 if backward else 2) * B * H * N * N * itemsize


def _inputs(N, H, d, seed=0, B=1):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((B, H, N, d), dtype=np.float32) for _ in range(4)]  # q, k, v, do


def _best_time(fn, repeat, warmup):
    if warmup:
        fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _proc_status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def _reset_peak_rss():
    """Reset VmHWM to the current RSS (Linux >= 4.0). False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _contender_fns(name, q, k, v, do, causal):
    """(forward, forward+backward) closures for one contender on the given arrays."""
    if name == "torch":
        import torch

        F = torch.nn.functional.scaled_dot_product_attention
        tq, tk, tv, tdo = (torch.from_numpy(a) for a in (q, k, v, do))

        def fwd():
            with torch.no_grad():
                return F(tq, tk, tv, is_causal=causal)

        def fwd_bwd():
            a, b, c = (t.detach().requires_grad_() for t in (tq, tk, tv))
            o = F(a, b, c, is_causal=causal)
            return torch.autograd.grad(o, (a, b, c), tdo)

        return fwd, fwd_bwd
    from minitorch_attn.kernels import flash_attention, flash_attention_backward

    backend = "reference" if name == "naive" else name  # the table's "naive" is the kernels' NumPy oracle

    def fwd():
        return flash_attention(q, k, v, causal=causal, backend=backend)

    def fwd_bwd():
        o, lse = flash_attention(q, k, v, causal=causal, backend=backend)
        return flash_attention_backward(q, k, v, o, lse, do, causal=causal, backend=backend)

    return fwd, fwd_bwd


# ---------------------------------------------------------------------------------------------- workers
def worker_time(name, sizes, H, d, repeat):
    """Time one contender on every size, causal and not; one JSON line per measurement."""
    if name == "torch":
        import torch  # noqa: F401  (imported before timing)
    jit = name in ("numba", "torch")
    for N in sizes:
        for causal in (False, True):
            row = {"contender": name, "N": N, "H": H, "d": d, "causal": causal}
            if name == "naive" and naive_bytes(N, H, d) > NAIVE_BYTES_LIMIT:
                row["skipped"] = f"needs ~{naive_bytes(N, H, d) / 2**30:.1f} GiB of score-sized arrays"
                print(json.dumps(row), flush=True)
                continue
            q, k, v, do = _inputs(N, H, d)
            fwd, fwd_bwd = _contender_fns(name, q, k, v, do, causal)
            reps = repeat if (jit or N < 4096) else 1
            warmup = jit or N <= 4096  # NumPy too: first calls pay BLAS start-up and fresh-page faults
            row["fwd_s"] = _best_time(fwd, reps, warmup=warmup)
            row["fwdbwd_s"] = _best_time(fwd_bwd, reps, warmup=warmup)
            print(json.dumps(row), flush=True)


def worker_sgemm(n):
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = a.T.copy()
    t = _best_time(lambda: a @ b, 5, warmup=True)
    print(json.dumps({"sgemm_n": n, "sgemm_gflops": 2.0 * n**3 / t / 1e9}), flush=True)


def worker_tracemalloc(sizes, H, d):
    """Peak NumPy allocation of the naive and tiled paths, inputs excluded."""
    import tracemalloc

    for N in sizes:
        q, k, v, do = _inputs(N, H, d)
        for name in ("naive", "tiled"):
            for causal in (False,):
                fwd, fwd_bwd = _contender_fns(name, q, k, v, do, causal)
                for label, fn in (("fwd", fwd), ("fwdbwd", fwd_bwd)):
                    tracemalloc.start()
                    fn()
                    peak = tracemalloc.get_traced_memory()[1]
                    tracemalloc.stop()
                    print(json.dumps({"memory": "tracemalloc", "contender": name, "pass": label, "N": N, "H": H,
                                      "d": d, "peak_bytes": peak}), flush=True)


def worker_rss(N, H, d, causal):
    """Peak RSS growth of the Numba forward+backward (kernels compiled beforehand on a tiny input)."""
    from minitorch_attn.kernels import flash_attention, flash_attention_backward

    small = _inputs(64, 1, d)
    o, lse = flash_attention(*small[:3], causal=causal)
    flash_attention_backward(*small[:3], o, lse, small[3], causal=causal)
    q, k, v, do = _inputs(N, H, d)
    exact = _reset_peak_rss()
    base = _proc_status("VmRSS")
    if not exact:
        import resource

        base_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    o, lse = flash_attention(q, k, v, causal=causal)
    t_fwd = time.perf_counter() - t0
    dq, dk, dv = flash_attention_backward(q, k, v, o, lse, do, causal=causal)
    t_all = time.perf_counter() - t0
    peak = _proc_status("VmHWM") if exact else max(base_peak, _proc_status("VmHWM"))
    assert np.all(np.isfinite(dq)) and np.all(np.isfinite(o))
    print(json.dumps({"memory": "rss", "contender": "numba", "N": N, "H": H, "d": d, "causal": causal,
                      "fwd_s": t_fwd, "fwdbwd_s": t_all, "rss_extra_bytes": peak - base,
                      "input_bytes": q.nbytes, "exact_peak_reset": exact}), flush=True)


# ---------------------------------------------------------------------------------------------- driver
def _run_worker(argv, timeout):
    """Run this script as a worker subprocess; return its JSON lines."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", *map(str, argv)]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"worker {argv} failed:\n{out.stderr[-3000:]}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def _best_of_rounds(rows):
    """One row per (contender, N, causal): the best time of each kind over the rounds."""
    best = {}
    for r in rows:
        key = (r["contender"], r["N"], r["causal"])
        if key not in best:
            best[key] = dict(r)
            continue
        for t in ("fwd_s", "fwdbwd_s"):
            if t in r:
                best[key][t] = min(best[key].get(t, float("inf")), r[t])
    return list(best.values())


def _torch_available():
    try:
        import importlib.util

        return importlib.util.find_spec("torch") is not None
    except ValueError:
        return False


def _table(results, sizes, roof):
    by = {(r["contender"], r["N"], r["causal"]): r for r in results}
    lines = ["", "N      mask    contender   fwd ms   GFLOP/s  vs torch | fwd+bwd ms  GFLOP/s  vs torch | bwd vs torch",
             "-" * 106]
    for N in sizes:
        for causal in (False, True):
            ref = by.get(("torch", N, causal))
            for name in CONTENDERS:
                r = by.get((name, N, causal))
                if r is None:
                    continue
                mask = "causal" if causal else "full"
                if "skipped" in r:
                    lines.append(f"{N:<6} {mask:<7} {name:<10}  skipped: {r['skipped']}")
                    continue
                f1 = flops_forward(N, r["H"], r["d"], causal)
                cells = [f"{N:<6} {mask:<7} {name:<10} {r['fwd_s'] * 1e3:8.1f} {f1 / r['fwd_s'] / 1e9:8.1f}"]
                cells.append(f"{ref['fwd_s'] / r['fwd_s']:8.2f}x" if ref and "fwd_s" in ref else " " * 9)
                cells.append(f" | {r['fwdbwd_s'] * 1e3:10.1f} {3.5 * f1 / r['fwdbwd_s'] / 1e9:8.1f}")
                cells.append(f"{ref['fwdbwd_s'] / r['fwdbwd_s']:8.2f}x" if ref and "fwdbwd_s" in ref else " " * 9)
                if ref and "fwdbwd_s" in ref:
                    bwd, ref_bwd = r["fwdbwd_s"] - r["fwd_s"], ref["fwdbwd_s"] - ref["fwd_s"]
                    cells.append(f" | {ref_bwd / bwd:8.2f}x" if bwd > 0 else " |")
                lines.append(" ".join(cells))
    lines.append(f"\nroof: NumPy SGEMM {roof:.0f} GFLOP/s (same run). GFLOP/s: forward 4·N²·d per head "
                 "(causal: half), forward+backward 3.5× that. 'vs torch' = torch time / this time.")
    return "\n".join(lines)


def _memory_lines(mem, machine_bytes):
    lines = ["", "Memory"]
    for m in mem:
        if m["memory"] == "tracemalloc":
            lines.append(f"  tracemalloc peak  {m['contender']:<6} {m['pass']:<7} N={m['N']:<6} H={m['H']} "
                         f"d={m['d']}: {m['peak_bytes'] / 2**20:10.1f} MiB")
    for m in mem:
        if m["memory"] == "rss":
            nb = m["H"] * m["N"] ** 2 * 4  # one float32 score matrix per head
            mask = "causal" if m["causal"] else "full"
            lines.append(
                f"  numba fwd+bwd {mask} N={m['N']} H={m['H']} d={m['d']}: {m['fwdbwd_s']:.2f} s "
                f"(forward {m['fwd_s']:.2f} s), peak RSS growth {m['rss_extra_bytes'] / 2**20:.0f} MiB = "
                f"{m['rss_extra_bytes'] / m['input_bytes']:.1f}× one input tensor "
                f"({m['input_bytes'] / 2**20:.0f} MiB; the outputs o, dq, dk, dv alone are 4×). "
                f"The naive path's score matrix alone: {nb / 2**30:.1f} GiB"
                + (f" > this machine's {machine_bytes / 2**30:.0f} GiB: it cannot allocate it"
                   if machine_bytes and nb > machine_bytes else ""))
    return lines


def _plot(results, roof, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), sharey=True)
    colours = dict(naive="tab:gray", tiled="tab:orange", numba="tab:blue", torch="tab:red")
    for ax, (key, mult, title) in zip(axes, (("fwd_s", 1.0, "forward"), ("fwdbwd_s", 3.5, "forward+backward"))):
        for name in CONTENDERS:
            for causal, style in ((False, "-"), (True, "--")):
                pts = sorted((r["N"], mult * flops_forward(r["N"], r["H"], r["d"], causal) / r[key] / 1e9)
                             for r in results if r["contender"] == name and r["causal"] == causal and key in r)
                if pts:
                    ax.plot(*zip(*pts), style, marker="o", color=colours[name],
                            label=f"{name} {'causal' if causal else 'full'}")
        ax.axhline(roof, color="k", lw=0.8, ls=":", label="NumPy SGEMM roof")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sequence length N")
        shape = f"H={results[0]['H']}, d={results[0]['d']}" if results else ""
        ax.set_title(f"{title} (B=1, {shape}, fp32)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("GFLOP/s (useful FLOPs)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _machine():
    info = {"python": platform.python_version(), "cpus": os.cpu_count(), "numpy": np.__version__}
    try:
        with open("/proc/cpuinfo") as f:
            fields = dict(line.split(":", 1) for line in f.read().split("\n\n")[0].splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        info["cpu"] = fields["model name"]
        # A VM may report a bare "AMD EPYC": family and model tell Zen 3 (25, 1) from Zen 5 (26, ...)
        info["cpu_family_model"] = [int(fields.get("cpu family", -1)), int(fields.get("model", -1))]
        with open("/proc/meminfo") as f:
            info["mem_bytes"] = int(next(line for line in f if line.startswith("MemTotal")).split()[1]) * 1024
        info["loadavg_start"] = os.getloadavg()
    except (OSError, StopIteration, KeyError, ValueError):
        pass
    for mod in ("numba", "torch"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            pass
    try:  # what the numba workers compile for (same environment): LLVM CPU, vector width, tiles, threads
        # numba_backend sets the threading layer, as it does in the workers
        from minitorch_attn.kernels import microkernel, numba_backend, tuning  # noqa: F401
        from minitorch_attn.kernels.ops.threads import numba_target

        chosen = tuning.report()  # the workers read the same cache (or time the same candidates)
        f, b = chosen["forward"]["choice"], chosen["backward"]["choice"]
        info["numba_target"] = dict(numba_target(), fwd_tiles=[f["Br"], f["Bc"]], bwd_tiles=[b["Br"], b["Bc"]],
                                    fwd_microkernel=f["microkernel"], bwd_microkernel=b["microkernel"],
                                    register_tile=[microkernel.MR, microkernel.NV, microkernel.VECTOR_BYTES])
        info["tuning"] = chosen
    except ImportError:
        pass
    return info


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048, 4096, 8192])
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--repeat", type=int, default=3, help="timed runs per measurement (best is kept)")
    p.add_argument("--rounds", type=int, default=2,
                   help="subprocess rounds for numba and torch, interleaved (best is kept): a shared machine's "
                        "load comes and goes")
    p.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=CONTENDERS)
    p.add_argument("--memory-n", type=int, default=16384, help="Numba fwd+bwd RSS run (H = --heads)")
    p.add_argument("--long-n", type=int, default=262144, help="Numba single-head causal fwd+bwd RSS run")
    p.add_argument("--no-memory", action="store_true", help="skip the memory runs")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: tiny sizes, contenders run concurrently (numbers not meaningful)")
    p.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "out")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.heads, args.repeat, args.rounds = [128, 256], 2, 1, 1
        args.memory_n, args.long_n = 512, 2048
    contenders = [c for c in args.contenders if c != "torch" or _torch_available()]
    machine = _machine()
    t_start = time.perf_counter()

    timing = [("sgemm", [1024 if args.quick else 2048])]
    timing += [("time", [c, args.heads, args.dim, args.repeat, *args.sizes]) for c in contenders]
    for _ in range(args.rounds - 1):  # more chances for each fast contender to find a quiet machine
        timing += [("time", [c, args.heads, args.dim, args.repeat, *args.sizes])
                   for c in contenders if c in ("numba", "torch")]
        timing.append(("sgemm", [1024 if args.quick else 2048]))
    memory_jobs = []
    if not args.no_memory:
        timing.append(("tracemalloc", [args.heads, args.dim, *([128, 256] if args.quick else [1024, 2048])]))
        memory_jobs = [("rss", [args.memory_n, args.heads, args.dim, 0]), ("rss", [args.long_n, 1, args.dim, 1])]
    outputs = []
    for phase in (timing, memory_jobs):  # the memory runs reuse the Numba cache compiled by the timing run
        if args.quick and phase:  # concurrently: the smoke test checks the code paths, not the numbers
            with ThreadPoolExecutor(len(phase)) as pool:
                outputs += pool.map(lambda j: _run_worker([j[0], *j[1]], timeout=600), phase)
            continue
        for kind, a in phase:
            print(f"[{time.perf_counter() - t_start:6.0f} s] {kind} {' '.join(map(str, a))}", flush=True)
            outputs.append(_run_worker([kind, *a], timeout=3600))
    rows = [r for out in outputs for r in out]
    roof = max(r["sgemm_gflops"] for r in rows if "sgemm_gflops" in r)
    results = _best_of_rounds([r for r in rows if "contender" in r and "memory" not in r])
    memory = [r for r in rows if "memory" in r]

    fm = machine.get("cpu_family_model")
    family_model = f" (family {fm[0]}, model {fm[1]})" if fm else ""
    print(f"\n{machine.get('cpu', '?')}{family_model}, {machine.get('cpus')} CPUs; numpy {machine['numpy']}, "
          f"numba {machine.get('numba', '-')}, torch {machine.get('torch', '-')}; "
          f"load average (1, 5, 15 min) at start: {', '.join(f'{x:.2f}' for x in machine.get('loadavg_start', ()))}"
          f", at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if "numba_target" in machine:
        t = machine["numba_target"]
        print(f"numba compiles for LLVM '{t['llvm_cpu']}', vectors: {t['vectors']}; {t['threads']} threads; "
              f"tiles (Br, Bc): forward {tuple(t['fwd_tiles'])}, backward {tuple(t['bwd_tiles'])}; inner matmul: "
              f"forward {'register tile' if t['fwd_microkernel'] else 'loops'}, backward "
              f"{'register tile' if t['bwd_microkernel'] else 'loops'} ({machine['tuning']['forward']['how']}); "
              "register tile {} rows x {} vectors of {} bytes; threading layer {}".format(
                  *t["register_tile"], t["threading_layer"]))
    print(_table(results, args.sizes, roof))
    print("\n".join(_memory_lines(memory, machine.get("mem_bytes"))))

    args.out_dir.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine, "sgemm_gflops": roof, "heads": args.heads, "dim": args.dim,
              "flop_convention": "forward 4*N^2*d per head (causal: half); forward+backward 3.5x forward",
              "results": results, "memory": memory, "wall_s": time.perf_counter() - t_start,
              "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])])}
    (args.out_dir / "attention_cpu.json").write_text(json.dumps(report, indent=1))
    _plot(results, roof, args.out_dir / "attention_cpu.png")
    print(f"\nwrote {args.out_dir / 'attention_cpu.json'} and {args.out_dir / 'attention_cpu.png'} "
          f"({time.perf_counter() - t_start:.0f} s)")


def worker_main(argv):
    kind, rest = argv[0], argv[1:]
    if kind == "time":
        worker_time(rest[0], [int(x) for x in rest[4:]], int(rest[1]), int(rest[2]), int(rest[3]))
    elif kind == "sgemm":
        worker_sgemm(int(rest[0]))
    elif kind == "tracemalloc":
        worker_tracemalloc([int(x) for x in rest[2:]], int(rest[0]), int(rest[1]))
    elif kind == "rss":
        worker_rss(int(rest[0]), int(rest[1]), int(rest[2]), bool(int(rest[3])))
    else:
        raise SystemExit(f"unknown worker {kind!r}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2:])
    else:
        main()
