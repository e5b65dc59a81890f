"""Running one submission's code: the official graded tests against the learner's extracted cells, in the
sandbox, with the exercise that crashed, hung or tampered taken out and the run repeated.

Who spawns what, and which limit stops what (sandbox.py has the walls in detail):

    grader (this process, trusted; one thread per submission under grade-class --jobs)
      `- bwrap, or a plain child in a new session without bubblewrap   sandbox.run_sandboxed
           `- python -m minitorch_attn.course.grade_runner spec.json 3  pytest on the graded test file,
                                                                        then the setup and learner cells

* --cell-timeout (Options.cell_timeout): SIGALRM inside the child, per learner cell and per graded test;
  the cell or test is recorded as "timeout" and the run goes on.
* --notebook-timeout (Options.notebook_timeout): the grader's wall clock for one whole run; past it the
  grader SIGKILLs the child's process group (bwrap's --die-with-parent and PID namespace take the rest);
  the exercise that was running is taken out and the run repeated, so one run per exercise at most, plus
  one. Records written before the kill stay (the points earned so far).
* --memory-mb and the other rlimits (address space, CPU = wall limit + 60 s, file size, processes) are set
  in the child before the interpreter starts; a child killed by them "died", handled as a timeout is.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import catalog, sandbox
from .classroom_status import DIED, NOTEBOOK_TIMEOUT, TAMPERING
from .extract import CODE_MISSING, Extracted
from .handout import HANDOUT_DIR, GradedTest, _setup_source, official_checks, test_file
from .source import library_dir
from .targets import is_release

DEFAULT_CELL_TIMEOUT = 60.0
DEFAULT_NOTEBOOK_TIMEOUT = 600.0
DEFAULT_MEMORY_MB = 4096


@dataclass
class Options:
    """How a class is graded: `root` is the instructor's checkout (the graded tests, the handouts);
    `cell_timeout` the seconds one learner cell or one graded test may run (the child's alarm);
    `notebook_timeout` the seconds one whole run may take (the grader's kill); `memory_mb` each child's
    address-space limit; `keep` keeps the working folders for a look."""

    root: Path
    cell_timeout: float = DEFAULT_CELL_TIMEOUT
    notebook_timeout: float = DEFAULT_NOTEBOOK_TIMEOUT
    memory_mb: int = DEFAULT_MEMORY_MB
    keep: bool = False


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:40] or "student"


@dataclass
class Lesson:
    """What the grader needs of one lesson, read once per class from the instructor's checkout."""

    lesson: str
    checks: list[GradedTest]
    setup: str  # the handout's official setup cell
    test_text: str  # the graded test file, hidden tests included
    conftest: str
    exercises: dict[str, str] = field(default_factory=dict)  # a release's exercises/*.py (see _write_view)

    @property
    def tests_sha256(self) -> str:
        return hashlib.sha256(self.test_text.encode("utf-8")).hexdigest()

    @classmethod
    def read(cls, root: Path, lesson: str, checks: list[GradedTest] | None = None) -> Lesson:
        root = Path(root)
        conftest = root / "conftest.py"
        return cls(lesson, checks if checks is not None else official_checks(root, lesson),
                   _official_setup(root, lesson), test_file(root, lesson).read_text(encoding="utf-8"),
                   conftest.read_text(encoding="utf-8") if conftest.is_file() else
                   'pytest_plugins = ["minitorch_attn.course.pytest_plugin"]\n',
                   {p.name: p.read_text(encoding="utf-8") for p in sorted((root / "exercises").glob("lesson*.py"))}
                   if is_release() else {})


def _official_setup(root: Path, lesson: str) -> str:
    """The setup cell of the course's own handout (committed, kept fresh by `course check`; a release has it
    too, while its stubbed library cannot regenerate it), else the one `course generate` would write."""
    path = root / HANDOUT_DIR / f"{catalog.lesson_stem(lesson)}.ipynb"
    if path.is_file():
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
        for cell in cells:
            if cell.get("metadata", {}).get("minitorch_attn", {}).get("role") == "setup":
                src = cell.get("source", "")
                return "".join(src) if isinstance(src, list) else src
    return _setup_source(lesson, library_dir(root))


def _spec(lesson: Lesson, cells: list, base: str, opts: Options) -> dict:
    stem = catalog.lesson_stem(lesson.lesson)
    exercises = catalog.for_lesson(lesson.lesson)
    return {"stem": stem, "setup": lesson.setup, "course": f"{base}/course",
            "test_file": f"{base}/course/tests/exercises/test_{stem}.py",
            "cells": [{"exercise": c.exercise, "source": c.source} for c in cells],
            "names": {e.id: e.name for e in exercises}, "modules": {e.id: e.module for e in exercises},
            "release": is_release(), "cell_timeout": opts.cell_timeout, "test_timeout": opts.cell_timeout}


def _write_view(work: Path, lesson: Lesson) -> Path:
    """WORK/view: all the sandbox may read of the instructor's files (the lesson's graded tests, conftest)."""
    view = work / "view"
    tests = view / "course" / "tests" / "exercises"
    tests.mkdir(parents=True)
    (view / "course" / "conftest.py").write_text(lesson.conftest, encoding="utf-8")
    (tests / f"test_{catalog.lesson_stem(lesson.lesson)}.py").write_text(lesson.test_text, encoding="utf-8")
    if is_release() and lesson.exercises:  # a release runs the library on exercises/ (targets.activate_release)
        (view / "course" / "exercises").mkdir()
        for name, text in lesson.exercises.items():
            (view / "course" / "exercises" / name).write_text(text, encoding="utf-8")
    return view


def run_code(extracted: Extracted, lesson: Lesson, opts: Options, student: str) -> tuple[list[dict], dict, str]:
    """Run the official graded tests on the learner's accepted cells in the sandbox; (records of the last
    run, {exercise: (status, message)} for the exercises taken out, problem). A run that dies, runs past the
    time limit or reports tampering is run again without the exercise that was running (or tampered), so one
    exercise's code costs that exercise only. Each run has the notebook's time limit; there are at most one
    more runs than exercises."""
    kind = sandbox.detect()
    cells = [c for c in extracted.cells if not c.problem]
    excluded: dict[str, tuple[str, str]] = {}
    root = Path(tempfile.mkdtemp(prefix=f"mta-grade-{_safe(student)}-"))
    records, problem = [], ""
    try:
        for attempt in range(len(cells) + 1):
            work = root / f"run{attempt}"
            work.mkdir()
            view = _write_view(work, lesson)
            base = "/grade" if kind == sandbox.BWRAP else str(view)
            spec = _spec(lesson, [c for c in cells if c.exercise not in excluded], base, opts)
            spec["absent"] = {**{c.exercise: c.problem for c in extracted.cells if c.problem},
                              **{ex: f"not run ({why[0]})" for ex, why in excluded.items()},
                              **{ex: CODE_MISSING for ex in extracted.missing}}
            limits = sandbox.Limits(wall_seconds=opts.notebook_timeout, memory_mb=opts.memory_mb)
            run = sandbox.run_sandboxed(work, spec, limits, kind, secrets.token_bytes(32))
            records, problem = run.records, ""
            ended = any(r.get("kind") == "end" for r in records)
            running = next((r.get("exercise") for r in reversed(records) if r.get("kind") == "running"), None)
            bad = {r["exercise"]: (TAMPERING, r["message"]) for r in records
                   if r.get("kind") == "cell" and r.get("outcome") == "tampering"}
            for r in records:
                if r.get("kind") == "test" and r.get("outcome") == "tampering":
                    ex = _test_exercise(lesson, r["name"])
                    bad.setdefault(ex, (TAMPERING, r["message"]))
            if not ended:
                if run.timed_out:
                    why = (NOTEBOOK_TIMEOUT, f"the run passed the {opts.notebook_timeout:g} s limit")
                else:
                    why = (DIED, f"the grading process died (exit code {run.returncode}: os._exit, a signal, "
                                 "or out of memory)")
                if running is not None:
                    bad.setdefault(running, why)
                else:
                    problem = f"{why[0]}: {why[1]} ({run.log_tail[:200]})"
            bad = {ex: v for ex, v in bad.items() if ex not in excluded and ex is not None}
            if not bad:
                if run.forged:
                    records.append({"kind": "note", "message": f"{run.forged} unsigned line(s) in the results "
                                    "file ignored (not written by the grader's harness)"})
                break
            excluded.update(bad)
    finally:
        if not opts.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept the working folders of {student}: {root}", file=sys.stderr)
    return records, excluded, problem


def _test_exercise(lesson: Lesson, name: str) -> str | None:
    return next((t.exercise for t in lesson.checks if t.name == name), None)
