"""Compile every kernels/cuda/*.cu with NVRTC exactly as CuPy does, for sm_80 and sm_90, and check resources.

    python -m minitorch_attn.kernels.cuda.compile_check        # prints the table; exit status 1 on a problem
    python -m minitorch_attn.kernels.cuda.compile_check --json resources.json   # also the rows, as JSON

Options: CuPy's (`--std=c++17 -ftz=true --device-as-default-execution-space`) plus `-arch=sm_XX` and
`--ptxas-options=-v`, whose report gives registers, stack frame, spills and static shared memory per kernel.
Fails on: a compile error, any spill store or load, a nonzero stack frame (per-thread arrays that went to
local memory, e.g. a loop over `acc[]` that was not unrolled), or more than REGISTER_BUDGET registers.
No GPU needed: NVRTC is a library (see nvrtc.py). Dynamic shared memory is set at launch; the table shows
what the launcher asks for at the largest head dim (d = dv = 128). Lesson 11's progression/*.cu are checked too.
A second table gives, per kernel and arch, the default launch's threads and shared memory per block at d = 64 and
128 and the blocks / warps per SM they allow with these registers (occupancy.py, CUDA's occupancy rules): the
numbers a first GPU run is read against (benchmarks/gpu_check.py prints the device's own beside them).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

from . import KERNEL_SOURCES
from .backward import dkdv_launch_config, dq_launch_config, preprocess_launch_config
from .cupy_backend import wmma_launch_config
from .forward import MAX_HEAD_DIM, forward_launch_config
from .nvrtc import NvrtcError, compile_cubin, version
from .occupancy import FORMULA, estimate
from .progression import HERE as PROGRESSION_DIR
from .progression import (
    NAIVE_TILE,
    ONLINE_ROWS_PER_BLOCK,
    SOFTMAX_ROWS_PER_BLOCK,
    shared_tiles_launch_config,
)

ARCHS = ("sm_80", "sm_90")
# 64 registers x 128 threads per block: up to 8 blocks (32 warps, half of the 64 an SM can hold) per SM
# on sm_80 / sm_90, register-wise. Above it occupancy drops; raise the budget only on purpose.
REGISTER_BUDGET = 64
# Kernels allowed more, each with its reason.
KERNEL_REGISTER_BUDGETS = {
    # FA-2 on tensor cores: a warp keeps its 16 x 128 output tile in registers (64 floats per thread) and a
    # 16 x 32 score tile (16 more); __launch_bounds__(128, 4) caps it at 128, i.e. 4 blocks = 16 warps per SM.
    "flash_fwd_wmma": 128,
}

_ENTRY_RE = re.compile(r"Compiling entry function '(\w+)' for '(\w+)'")
_FRAME_RE = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_REGS_RE = re.compile(r"Used (\d+) registers")
_SMEM_RE = re.compile(r"(\d+) bytes smem")

def _geometry(config):
    grid, block, shared_mem = config
    return math.prod(block), shared_mem


def _naive_tile(d):
    return NAIVE_TILE * NAIVE_TILE, 0


# How each kernel is launched by default at head dim d = dv (threads per block, dynamic shared memory bytes):
# from the launchers themselves, so the table follows them.
LAUNCH_SHAPES = {
    "flash_fwd": lambda d: _geometry(forward_launch_config(1, 1, 1, d, d)),
    "flash_bwd_preprocess": lambda d: _geometry(preprocess_launch_config(1, 1, 1, d)),
    "flash_bwd_dkdv": lambda d: _geometry(dkdv_launch_config(1, 1, 1, d, d)),
    "flash_bwd_dq": lambda d: _geometry(dq_launch_config(1, 1, 1, d, d)),
    "flash_fwd_wmma": lambda d: _geometry(wmma_launch_config(1, 1, 1, d, d)),
    # Lesson 11's kernel progression (progression/*.cu) is checked too, by the same rules.
    "naive_scores": _naive_tile, "naive_pv": _naive_tile,
    "softmax_rows": lambda d: (32 * SOFTMAX_ROWS_PER_BLOCK, 0),
    "online_row": lambda d: (ONLINE_ROWS_PER_BLOCK, 0),
    "shared_tiles": lambda d: _geometry(shared_tiles_launch_config(1, 1, d, d)),
}
OCCUPANCY_DIMS = (64, MAX_HEAD_DIM)  # the head dims the occupancy estimate is given for
# Dynamic shared memory each kernel is launched with at d = dv = MAX_HEAD_DIM (bytes).
DYNAMIC_SHARED = {name: shape(MAX_HEAD_DIM)[1] for name, shape in LAUNCH_SHAPES.items()}
PROGRESSION_SOURCES = sorted(PROGRESSION_DIR.glob("*.cu"))


def parse_ptxas_log(log: str) -> list[dict]:
    """One dict per kernel in a `--ptxas-options=-v` log: name, arch, registers, stack, spills, smem."""
    rows = []
    for block in re.split(r"(?=ptxas info\s+: Compiling entry function)", log):
        entry = _ENTRY_RE.search(block)
        if not entry:
            continue
        frame, regs, smem = _FRAME_RE.search(block), _REGS_RE.search(block), _SMEM_RE.search(block)
        rows.append({
            "kernel": entry.group(1), "arch": entry.group(2),
            "registers": int(regs.group(1)) if regs else -1,
            "stack": int(frame.group(1)) if frame else -1,
            "spill_stores": int(frame.group(2)) if frame else -1,
            "spill_loads": int(frame.group(3)) if frame else -1,
            "static_smem": int(smem.group(1)) if smem else 0,
        })
    return rows


def check(sources=None, archs=ARCHS, register_budget=REGISTER_BUDGET) -> tuple[list[dict], list[str]]:
    """Compile each source for each arch; return (resource rows, problems). No problems = pass."""
    rows, problems = [], []
    for path in sources if sources is not None else [*KERNEL_SOURCES, *PROGRESSION_SOURCES]:
        path = Path(path)
        for arch in archs:
            try:
                _, log = compile_cubin(path.read_text(), path.name, arch, ["--ptxas-options=-v"])
            except NvrtcError as error:
                problems.append(f"{path.name} [{arch}]: {error}")
                continue
            found = parse_ptxas_log(log)
            if not found:
                problems.append(f"{path.name} [{arch}]: no kernel in the ptxas report:\n{log}")
            for row in found:
                row["file"] = path.name
                rows.append(row)
                where = f"{path.name}:{row['kernel']} [{arch}]"
                if row["registers"] < 0 or row["stack"] < 0:
                    problems.append(f"{where}: could not read the ptxas report:\n{log}")
                if row["spill_stores"] or row["spill_loads"]:
                    problems.append(f"{where}: spills {row['spill_stores']} B stores / {row['spill_loads']} B loads")
                if row["stack"]:
                    problems.append(f"{where}: {row['stack']} B stack frame (a per-thread array in local memory?)")
                budget = KERNEL_REGISTER_BUDGETS.get(row["kernel"], register_budget)
                if row["registers"] > budget:
                    problems.append(f"{where}: {row['registers']} registers > budget {budget}")
    return rows, problems


def format_table(rows: list[dict]) -> str:
    head = ("file", "kernel", "arch", "registers", "stack B", "spill st B", "spill ld B", "static smem B",
            f"dyn smem B (d={MAX_HEAD_DIM})")
    body = [(r["file"], r["kernel"], r["arch"], r["registers"], r["stack"], r["spill_stores"], r["spill_loads"],
             r["static_smem"], DYNAMIC_SHARED.get(r["kernel"], "?")) for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in (head, *body)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def occupancy_rows(rows: list[dict], dims=OCCUPANCY_DIMS) -> list[dict]:
    """Per kernel and arch: the default launch's threads and shared memory at each head dim, and the estimated
    blocks / warps / occupancy per SM from the compile check's registers (occupancy.py states the formula)."""
    out = []
    for r in rows:
        shape = LAUNCH_SHAPES.get(r["kernel"])
        if shape is None or r["registers"] < 1:
            continue
        for d in dims:
            threads, dynamic = shape(d)
            est = estimate(r["registers"], threads, r["static_smem"] + dynamic, r["arch"])
            out.append({"file": r["file"], "kernel": r["kernel"], "arch": r["arch"], "d": d,
                        "registers": r["registers"], "threads": threads, "smem": r["static_smem"] + dynamic,
                        "blocks_per_sm": est["blocks"], "warps_per_sm": est["warps"],
                        "occupancy": round(est["occupancy"], 4), "limit": est["limit"]})
    return out


def format_occupancy(rows: list[dict]) -> str:
    head = ("kernel", "arch", "d", "regs", "threads/block", "smem/block B", "blocks/SM", "warps/SM", "occupancy",
            "limited by")
    body = [(r["kernel"], r["arch"], r["d"], r["registers"], r["threads"], r["smem"], r["blocks_per_sm"],
             r["warps_per_sm"], f"{100 * r['occupancy']:.1f}%", r["limit"]) for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in (head, *body)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="also write the resource and occupancy rows to this file")
    args = parser.parse_args(argv)
    major, minor = version()
    print(f"NVRTC {major}.{minor}; options as CuPy: --std=c++17 -ftz=true --device-as-default-execution-space "
          f"-arch=<{', '.join(ARCHS)}> --ptxas-options=-v; register budget {REGISTER_BUDGET}"
          + "".join(f", {name}: {budget}" for name, budget in KERNEL_REGISTER_BUDGETS.items()))
    rows, problems = check()
    print(format_table(rows))
    occupancy = occupancy_rows(rows)
    print(f"\nOccupancy estimate of the default launches (occupancy.py): {FORMULA}")
    print(format_occupancy(occupancy))
    for problem in problems:
        print("FAIL:", problem)
    print("compile check:", "FAILED" if problems else "passed")
    if args.json:
        args.json.write_text(json.dumps({"nvrtc": f"{major}.{minor}", "formula": FORMULA, "resources": rows,
                                         "occupancy": occupancy, "problems": problems}, indent=1))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
