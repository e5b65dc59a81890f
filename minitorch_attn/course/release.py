"""`python -m minitorch_attn course release OUT_DIR`: the student copy of the course.

What it does, in order:
1. checks that `exercises/` and `solutions/` are fresh (a stale stub would ship);
2. copies the project's files (`git ls-files --cached --others --exclude-standard` in a git checkout,
   else a walk that skips .git, virtual environments and caches) except `solutions/`;
3. in each library file of the catalog, replaces every solution block with
   `raise NotImplementedError("Exercise 1.2 is yours: complete it in exercises/lesson01_autograd.py")`
   (in a .cu file: a comment saying the same, so the file still compiles and the block does nothing);
4. removes the blocks between `### BEGIN HIDDEN TESTS` and `### END HIDDEN TESTS` lines from `tests/`
   (tests the instructor runs and learners do not see, as in nbgrader);
5. writes `minitorch_attn/course/release.json` (`{"default_target": "exercises"}`): with it,
   `import minitorch_attn` runs the library on the learner's `exercises/` (see `targets.activate_release`);
6. verifies that no solution text is left anywhere in the copy: no marker line, and no solution block's
   code (compared line by line, whitespace-insensitive), also inside notebooks' sources and outputs.

The copy is built in a temporary folder beside OUT_DIR and moved into place only when it verifies, so a
failed release leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from . import catalog
from .generate import check as check_generated
from .generate import render_all
from .source import (
    BEGIN_HIDDEN,
    BEGIN_SOLUTION,
    CUDA_BEGIN_SOLUTION,
    CUDA_END_SOLUTION,
    END_HIDDEN,
    END_SOLUTION,
    SourceError,
    is_marker,
    library_dir,
    read_definition,
    release_definition_lines,
)

SKIP_DIRS = {".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis",
             ".ipynb_checkpoints", "build", "dist", "out", ".mypy_cache", ".tox", ".nox"}
SKIP_FILES = {"grades.json"}


class ReleaseError(RuntimeError):
    pass


def project_files(root: Path) -> list[str]:
    """Relative paths (POSIX) of the project's files: tracked and untracked-but-not-ignored in git."""
    root = Path(root)
    if (root / ".git").exists() and shutil.which("git"):
        proc = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                              cwd=root, capture_output=True, check=True)
        names = sorted({n for n in proc.stdout.decode("utf-8").split("\0") if n})
        return [n for n in names if (root / n).is_file()]
    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info"))
        for f in sorted(files):
            rel = (Path(folder) / f).relative_to(root).as_posix()
            out.append(rel)
    return out


def _excluded(rel: str) -> bool:
    parts = rel.split("/")
    return parts[0] == "solutions" or parts[-1] in SKIP_FILES or any(p in SKIP_DIRS for p in parts[:-1])


def strip_hidden_tests(text: str, where: str) -> tuple[str, int]:
    """`text` without its hidden-test blocks (marker lines included); returns (text, blocks removed)."""
    lines, out, inside, count = text.splitlines(keepends=True), [], None, 0
    for i, line in enumerate(lines):
        if is_marker(line, BEGIN_HIDDEN):
            if inside is not None:
                raise ReleaseError(f"{where}:{i + 1}: hidden-test block opened twice "
                                   f"(first at line {inside + 1})")
            inside = i
        elif is_marker(line, END_HIDDEN):
            if inside is None:
                raise ReleaseError(f"{where}:{i + 1}: END of a hidden-test block that was never opened")
            inside, count = None, count + 1
        elif inside is None:
            out.append(line)
    if inside is not None:
        raise ReleaseError(f"{where}:{inside + 1}: hidden-test block never closed")
    return "".join(out), count


def _normalised_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _searchable_text(path: Path) -> str | None:
    """A file's text for the leak check (notebooks: every cell source and text output); None if binary."""
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if path.suffix == ".ipynb":
        try:
            nb = json.loads(text)
        except json.JSONDecodeError:
            return text
        parts = []
        for cell in nb.get("cells", []):
            parts.append(_join(cell.get("source", "")))
            for output in cell.get("outputs", []):
                parts.append(_join(output.get("text", "")))
                for value in output.get("data", {}).values():
                    if isinstance(value, (str, list)):
                        parts.append(_join(value))
        return "\n".join(parts)
    return text


def _join(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def find_leaks(out_dir: Path, solution_bodies: list[tuple[str, str]]) -> list[str]:
    """Places in `out_dir` where solution text survives: marker lines or a solution block's code."""
    patterns = []
    for label, body in solution_bodies:
        lines = _normalised_lines(body)
        if sum(len(x) for x in lines) >= 20:  # shorter blocks would match innocent code
            patterns.append((label, "\n" + "\n".join(lines) + "\n"))
    leaks = []
    for path in sorted(p for p in Path(out_dir).rglob("*") if p.is_file()):
        text = _searchable_text(path)
        if text is None:
            continue
        rel = path.relative_to(out_dir).as_posix()
        for i, line in enumerate(text.splitlines()):
            if any(is_marker(line, m) for m in (BEGIN_SOLUTION, END_SOLUTION, CUDA_BEGIN_SOLUTION,
                                                CUDA_END_SOLUTION)):
                leaks.append(f"{rel}:{i + 1}: a solution marker line")
        haystack = "\n" + "\n".join(_normalised_lines(text)) + "\n"
        for label, pattern in patterns:
            if pattern in haystack:
                leaks.append(f"{rel}: contains the solution code of {label}")
    return leaks


def release(project: Path, out_dir: Path, force: bool = False, log=print) -> Path:
    """Write the student release of `project` to `out_dir` (see the module docstring); returns out_dir."""
    project, out_dir = Path(project).resolve(), Path(out_dir).resolve()
    if out_dir == project or (project in out_dir.parents
                              and out_dir.relative_to(project).parts[0] not in SKIP_DIRS):
        raise ReleaseError(f"{out_dir} is inside the project {project}; choose a folder outside it "
                           f"(or under one the release skips: {', '.join(sorted(SKIP_DIRS))})")
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise ReleaseError(f"{out_dir} exists and is not empty; remove it or pass --force")
    try:
        stale = check_generated(project)
    except SourceError as e:  # pragma: no cover - check() reports source errors as problems
        stale = [str(e)]
    if stale:
        raise ReleaseError("exercises/ or solutions/ are stale, so the release would ship old stubs:\n  "
                           + "\n  ".join(stale))
    package_dir = library_dir(project)
    definitions = [read_definition(e, package_dir) for e in catalog.EXERCISES]
    by_file: dict[str, list] = {}
    for d in definitions:
        by_file.setdefault(d.path.relative_to(package_dir.parent).as_posix(), []).append(d)

    files = [f for f in project_files(project) if not _excluded(f)]
    # Learner files are written fresh from the library (the instructor's copy may have filled blocks).
    stubs = {f.relpath: f.text for f in render_all(package_dir) if f.target == "exercises"}
    files = sorted(set(files) | set(stubs))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        stubbed, hidden = [], []
        for rel in files:
            src, dst = project / rel, staging / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if rel in stubs:
                dst.write_text(stubs[rel], encoding="utf-8")
            elif rel in by_file:
                lines = src.read_text(encoding="utf-8").splitlines()
                for d in sorted(by_file[rel], key=lambda d: d.first_line, reverse=True):
                    release_definition_lines(d, lines, f"exercises/{d.exercise.stem}.py")
                    stubbed.append(f"{d.exercise.id} ({rel}: {d.exercise.name}, {len(d.blocks)} block(s))")
                dst.write_text("\n".join(lines) + "\n", encoding="utf-8")
            elif rel.startswith("tests/") and rel.endswith(".py"):
                text, count = strip_hidden_tests(src.read_text(encoding="utf-8"), rel)
                dst.write_text(text, encoding="utf-8")
                if count:
                    hidden.append(f"{rel} ({count} block(s))")
            else:
                shutil.copy2(src, dst)
        marker = staging / "minitorch_attn" / "course" / "release.json"
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"default_target": "exercises"}, indent=2) + "\n", encoding="utf-8")
        bodies = [(f"exercise {d.exercise.id} ({d.exercise.name})", body)
                  for d in definitions for body in d.solution_bodies()]
        leaks = find_leaks(staging, bodies)
        if leaks:
            raise ReleaseError("solution text would ship in the release (nothing was written to "
                               f"{out_dir}):\n  " + "\n  ".join(leaks))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log(f"release written to {out_dir}")
    log(f"  {len(files)} files copied from {project} (solutions/ left out)")
    log(f"  solution blocks replaced by NotImplementedError in {len(stubbed)} library definitions:")
    for s in stubbed:
        log(f"    {s}")
    log(f"  hidden-test blocks removed: {', '.join(hidden) if hidden else 'none found'}")
    log("  wrote minitorch_attn/course/release.json: `import minitorch_attn` runs the library on exercises/")
    log("  verified: no solution marker and no solution code anywhere in the release")
    return out_dir
