"""From one run's records to one submission's verdict: a points entry per check (graded test), then a row
per exercise with its status and first error (what grades.csv holds), in a `Graded`."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from . import catalog, sandbox
from .classroom_run import Lesson, Options, run_code
from .classroom_status import (
    CODE_ERROR,
    FAIL,
    NO_NOTEBOOK,
    NOT_RUN,
    PARTIAL,
    PASS,
    SYNTAX_ERROR,
    TAMPERING,
    TIMEOUT,
    UNREADABLE,
)
from .classroom_submissions import Submission
from .extract import CODE_MISSING, LIBRARY, Extracted, extract
from .handout import MISSING, MODIFIED, GradedTest, code_grade_id, grading_notebook
from .targets import is_release


@dataclass
class Graded:
    student: str
    notebook: str
    exercises: list[dict] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)
    integrity: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    sandbox: str = ""
    code_sha256: str = ""
    tests_sha256: str = ""

    @property
    def total(self):
        return _num(sum(r["points"] for r in self.exercises))

    @property
    def max(self):
        return _num(sum(r["max"] for r in self.exercises))


def _num(x):
    x = round(float(x), 6)
    return int(x) if x.is_integer() else x


def _check_entry(t: GradedTest, tests: list[dict], integrity: dict, excluded: dict, problem: str) -> dict:
    entry = {"exercise": t.exercise, "test": t.name, "grade_id": t.grade_id, "max": _num(t.points),
             "hidden": t.hidden, "points": 0, "status": NOT_RUN, "error": ""}
    mine = [r for r in tests if r.get("name") == t.name]
    bad = next((r for r in mine if r.get("outcome") != "passed"), None)
    if t.grade_id in integrity:
        entry["status"] = integrity[t.grade_id]
        entry["error"] = f"{integrity[t.grade_id]}: {t.name} (an edited or deleted check earns no points)"
    elif t.exercise in excluded:
        entry["status"], entry["error"] = excluded[t.exercise]
    elif not mine:
        entry["error"] = problem.split(":")[0] if problem else "the test was not run"
    elif bad is None:
        entry.update(points=_num(t.points), status=PASS)
    else:
        status = {"timeout": TIMEOUT, "tampering": TAMPERING}.get(bad.get("outcome"), FAIL)
        entry.update(status=status, error=bad.get("message", ""))
    return entry


def _exercise_rows(student: str, lesson: str, checks: list[dict], cells: dict, extracted: Extracted,
                   excluded: dict, problem: str) -> list[dict]:
    rows = []
    by_ex = {c.exercise: c for c in extracted.cells}
    for ex in catalog.for_lesson(lesson):
        mine = [c for c in checks if c["exercise"] == ex.id]
        if not mine:
            continue
        maximum = sum(c["max"] for c in mine)
        statuses = [c["status"] for c in mine]
        cell, rec = by_ex.get(ex.id), cells.get(ex.id, {})
        outcome = rec.get("outcome", "ok")
        status, first, zero = None, "", False
        if MODIFIED in statuses or MISSING in statuses:
            status = MODIFIED if MODIFIED in statuses else MISSING
        elif ex.id in extracted.missing:
            status, first = CODE_MISSING, (f"no code cell with grade_id {code_grade_id(ex.id)!r} (its "
                                           "metadata names the exercise)")
        elif cell is not None and cell.problem:
            status, first = cell.status, f"code cell: {cell.problem}"
        elif outcome == "library":
            status, first, zero = LIBRARY, f"code cell: {rec.get('message', '')}", True
        elif ex.id in excluded:
            status, first, zero = excluded[ex.id][0], excluded[ex.id][1], True
        elif TAMPERING in statuses:
            status, zero = TAMPERING, True
        elif all(s == PASS for s in statuses):
            status = PASS
        elif outcome == "timeout" or TIMEOUT in statuses:
            status = TIMEOUT
            if outcome == "timeout":
                first = f"code cell: {rec.get('message', '')}"
        elif problem and any(s == NOT_RUN for s in statuses):
            status = problem.split(":")[0]
        elif outcome in ("syntax error", "error"):
            status = SYNTAX_ERROR if outcome == "syntax error" else CODE_ERROR
            first = f"code cell: {rec.get('message', '')}"
        else:
            status = PARTIAL if any(s == PASS for s in statuses) else FAIL
        if status != PASS and not first:
            first = next((c["error"] for c in mine if c["status"] != PASS and c["error"]), "")
        earned = 0 if zero else sum(c["points"] for c in mine)
        rows.append({"student": student, "exercise": ex.id, "points": _num(earned), "max": _num(maximum),
                     "status": status, "first_error": first})
    return rows


def grade_submission(sub: Submission, lesson: str, checks: list[GradedTest] | Lesson, opts: Options) -> Graded:
    """Grade one learner's notebook: its exercise cells, extracted and reviewed (`extract`), run against the
    official graded tests in the sandbox (`sandbox`, `grade_runner`); the check cells are only audited."""
    start = time.perf_counter()
    info = checks if isinstance(checks, Lesson) else Lesson.read(opts.root, lesson, checks)
    graded = Graded(sub.student, str(sub.path) if sub.path else "", tests_sha256=info.tests_sha256)
    problem, records, integrity, excluded = "", [], {}, {}
    extracted = Extracted()
    if sub.path is None:
        problem = f"{NO_NOTEBOOK}: {sub.problem}"
    else:
        try:
            submission = json.loads(sub.path.read_text(encoding="utf-8"))
            if not isinstance(submission, dict) or not isinstance(submission.get("cells"), list):
                raise ValueError("not a Jupyter notebook (no list of cells)")
        except (OSError, ValueError, UnicodeDecodeError) as e:
            problem = f"{UNREADABLE}: {type(e).__name__}: {str(e)[:160]}"
        else:
            _, found = grading_notebook(submission, info.checks)
            integrity = found.problems
            if found.duplicates:
                graded.notes.append(f"{found.duplicates} repeated check cell(s) dropped")
            extracted = extract(submission, lesson, info.setup, release=is_release())
            if extracted.duplicates:
                graded.notes.append(f"{extracted.duplicates} repeated code cell(s) ignored (the first is graded)")
            graded.sandbox = sandbox.detect()
            graded.code_sha256 = extracted.checksum()
            records, excluded, problem = run_code(extracted, info, opts, sub.student)
    tests = [r for r in records if r.get("kind") == "test"]
    cells = {r["exercise"]: r for r in records if r.get("kind") == "cell"}
    graded.checks = [_check_entry(t, tests, integrity, excluded, problem) for t in info.checks]
    graded.integrity = integrity
    graded.notes.extend(r["message"] for r in records if r.get("kind") == "note")
    if problem:
        graded.notes.append(problem)
    graded.exercises = _exercise_rows(sub.student, lesson, graded.checks, cells, extracted, excluded, problem)
    if problem and (problem.startswith(UNREADABLE) or problem.startswith(NO_NOTEBOOK)):
        for row in graded.exercises:
            row["status"], row["first_error"] = problem.split(":")[0], problem.split(": ", 1)[-1]
    graded.seconds = round(time.perf_counter() - start, 2)
    return graded
