"""Lesson notebooks: `lessons/NN_topic.py` (jupytext percent format) is the source a person edits and
reviews; `lessons/NN_topic.ipynb` is generated from it and executed, outputs stored, for nbval.

    python -m minitorch_attn lessons build [NN ...]   # regenerate and execute the notebooks, then check
                                                      # them under perturbed numerics (course/perturb.py)
    python -m minitorch_attn lessons check            # fail if a notebook is stale or unexecuted

`build` ends by running nbval over the notebooks it wrote as if on another machine (other BLAS kernel, one
thread, another SIMD width): a stored output that prints low-order bits fails there, before it is committed
and fails on a learner's laptop. `--no-perturb-check` skips that step (CI runs it over every lesson anyway).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .targets import find_root


def _sources(root: Path, only=None) -> list[Path]:
    paths = sorted((root / "lessons").glob("[0-9][0-9]_*.py"))
    return [p for p in paths if not only or any(p.stem.startswith(o.zfill(2)) for o in only)]


def _cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def build(path: Path, timeout: int = 600) -> Path:
    """Convert one lesson script to a notebook, execute it in a fresh kernel, write it beside the script."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    resources = {"metadata": {"path": str(path.parent)}}
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources=resources).execute()
    target = path.with_suffix(".ipynb")
    nbformat.write(nb, target)
    return target


def perturb_check(notebooks: list[Path]) -> int:
    """nbval over freshly built notebooks under perturbed numerics; 0 if their stored outputs hold there."""
    from . import perturb

    print(f"checking {len(notebooks)} notebook(s) under perturbed numerics (nbval) ...", flush=True)
    rc = perturb.nbval([str(p) for p in notebooks])
    if rc != 0:
        print("lessons build: a stored output differs under perturbed numerics, i.e. on another CPU, BLAS, "
              "thread count or SIMD width. Print what the lesson claims (rounded, or `error < 1e-6: True`), "
              "assert it in the cell, and mark machine-dependent numbers `# NBVAL_IGNORE_OUTPUT`; then build "
              "again. (The notebooks were written; nbval's report above names the cells.)", file=sys.stderr)
    return rc


def check(root: Path) -> list[str]:
    """Problems that make the stored notebooks untrustworthy (empty list: all good)."""
    import jupytext
    import nbformat

    problems = []
    for src in _sources(root):
        target = src.with_suffix(".ipynb")
        if not target.exists():
            problems.append(f"{target.name} is missing: run `python -m minitorch_attn lessons build {src.stem[:2]}`")
            continue
        stored = nbformat.read(target, as_version=4)
        if _cells(stored) != _cells(jupytext.read(src)):
            problems.append(f"{target.name} is stale (its cells differ from {src.name}): run "
                            f"`python -m minitorch_attn lessons build {src.stem[:2]}`")
        unexecuted = [i for i, c in enumerate(stored.cells) if c.cell_type == "code" and c.execution_count is None]
        if unexecuted:
            problems.append(f"{target.name}: code cells {unexecuted} were never executed (outputs must be stored)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minitorch_attn lessons")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="regenerate and execute notebooks from lessons/NN_*.py")
    b.add_argument("lessons", nargs="*", help="lesson numbers (default: all)")
    b.add_argument("--no-perturb-check", action="store_true",
                   help="do not re-run the new notebooks under perturbed numerics (nbval) after building")
    sub.add_parser("check", help="fail when a notebook is missing, stale or unexecuted")
    args = parser.parse_args(argv)
    root = find_root()
    if args.command == "build":
        built = []
        for src in _sources(root, args.lessons):
            print(f"executing {src.name} ...", flush=True)
            built.append(build(src))
            print(f"  wrote {built[-1]}")
        if args.no_perturb_check or not built:
            return 0
        return perturb_check(built)
    problems = check(root)
    for p in problems:
        print(p, file=sys.stderr)
    print("lessons: all notebooks fresh and executed" if not problems else f"lessons: {len(problems)} problem(s)")
    return 1 if problems else 0
