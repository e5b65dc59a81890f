"""Grade a class: `python -m minitorch_attn grade-class SUBMISSIONS_DIR --lesson NN`.

    SUBMISSIONS_DIR/alice.ipynb                      student "alice" (the file's stem)
    SUBMISSIONS_DIR/bob/handouts/lesson02_softmax.ipynb   student "bob" (the folder's name; the notebook is
                                                     found anywhere below it: the one named like the handout,
                                                     else the only lessonNN_*.ipynb, else the only .ipynb)

Each submission is graded on its own, from what the learner wrote, never from what their code reports:

1. `extract` takes the source of the exercise code cells (nbgrader grade_id `ex-<id>-code`) and nothing else,
   and reviews it with `ast` (no imports beyond numpy/math/numba/... and the library, no `open`/`exec`/frames/
   dunders, no assignments into modules; in the instructor's copy, not the library's own answer);
2. `sandbox` runs `grade_runner` on it in bubblewrap (no network, its own PID namespace, a read-only view of the
   library and of this lesson's graded tests only, a private /tmp, resource limits, a wall-clock limit), or,
   without bubblewrap, as a plain child process with the same limits and a warning;
3. `grade_runner` starts pytest on the official graded test file, so the tests' references and helpers are
   imported first; then it runs the official setup cell and the learner's cells, under an audit hook and a
   fingerprint of everything the verdicts rest on, and sends one signed record per cell and per test down a
   file descriptor the grader opened (stdout is only a log);
4. a run that dies, passes the time limit or reports tampering is run again without the exercise that did it,
   so that exercise alone loses its points (each run has --notebook-timeout).

The check cells of the notebook are for the learner's instant feedback; the grader only audits them (an
edited or deleted check earns no points, as before). See docs/instructors.md for the threat model.

Outputs (in --out, default out/classroom/lessonNN): grades.csv (student, exercise, points, max, status,
first_error, and per submission the isolation used, seconds, the SHA-256 of the code graded and of the graded
tests) and grades.json (the same per exercise, plus every check's outcome and the integrity findings).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from . import catalog, sandbox
from .extract import CODE_MISSING, LIBRARY, Extracted, extract
from .handout import (
    HANDOUT_DIR,
    MISSING,
    MODIFIED,
    GradedTest,
    _setup_source,
    code_grade_id,
    grading_notebook,
    official_checks,
    test_file,
)
from .source import library_dir
from .targets import is_release

DEFAULT_CELL_TIMEOUT = 60.0
DEFAULT_NOTEBOOK_TIMEOUT = 600.0
DEFAULT_MEMORY_MB = 4096

# statuses, per check and per exercise (and extract's CODE_MISSING, REJECTED, LIBRARY)
PASS, PARTIAL, FAIL = "pass", "partial", "fail"
TIMEOUT, DIED, NOTEBOOK_TIMEOUT, TAMPERING = "timeout", "grading process died", "notebook timeout", "tampering"
SYNTAX_ERROR, CODE_ERROR = "syntax error", "error in code cell"
UNREADABLE, NO_NOTEBOOK, GRADER_ERROR, NOT_RUN = "unreadable notebook", "no notebook", "grader error", "not run"


# ---- finding the submissions ------------------------------------------------------------------------------
@dataclass
class Submission:
    student: str
    path: Path | None
    problem: str = ""


def find_submissions(folder: Path, lesson: str) -> list[Submission]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder of submissions")
    wanted = f"{catalog.lesson_stem(lesson)}.ipynb"
    prefix = catalog.lesson_stem(lesson).split("_")[0] + "_"
    out = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith((".", "_")):
            continue
        if entry.is_file() and entry.suffix == ".ipynb":
            out.append(Submission(entry.stem, entry))
        elif entry.is_dir():
            found = sorted(p for p in entry.rglob("*.ipynb")
                           if ".ipynb_checkpoints" not in p.parts and not any(
                               part.startswith(".") for part in p.relative_to(entry).parts))
            for choose in ([p for p in found if p.name == wanted], [p for p in found if p.name.startswith(prefix)],
                           found):
                if len(choose) == 1:
                    out.append(Submission(entry.name, choose[0]))
                    break
                if len(choose) > 1:
                    names = ", ".join(str(p.relative_to(entry)) for p in choose)
                    out.append(Submission(entry.name, None, f"several notebooks ({names}); keep one"))
                    break
            else:
                out.append(Submission(entry.name, None, "no .ipynb in the folder"))
    return out


# ---- the parent: grade one submission ------------------------------------------------------------------------
@dataclass
class Options:
    root: Path
    cell_timeout: float = DEFAULT_CELL_TIMEOUT
    notebook_timeout: float = DEFAULT_NOTEBOOK_TIMEOUT
    memory_mb: int = DEFAULT_MEMORY_MB
    keep: bool = False


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

# ---- the class ---------------------------------------------------------------------------------------------
def grade_class(folder: Path, lesson: str, opts: Options, jobs: int = 2, progress: bool = True) -> dict:
    lesson = catalog.resolve_lesson(lesson)
    checks = official_checks(opts.root, lesson)
    if not checks:
        raise FileNotFoundError(f"no graded tests for lesson {lesson} in {opts.root}/tests/exercises")
    info = Lesson.read(opts.root, lesson, checks)
    kind = sandbox.detect()  # once, before the workers (MTA_REQUIRE_SANDBOX=1 stops here)
    subs = find_submissions(folder, lesson)
    results: dict[str, Graded] = {}
    start = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(subs), desc=f"grading lesson {lesson.split('_')[0]}", unit="student",
                   file=sys.stderr)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(grade_submission, s, lesson, info, opts): s for s in subs}
        for fut in as_completed(futures):
            s = futures[fut]
            try:
                results[s.student] = fut.result()
            except Exception as e:  # noqa: BLE001 - one submission never stops the others
                g = Graded(s.student, str(s.path))
                g.notes.append(f"{GRADER_ERROR}: {type(e).__name__}: {e}")
                g.exercises = [{"student": s.student, "exercise": ex.id, "points": 0,
                                "max": _num(sum(t.points for t in checks if t.exercise == ex.id)),
                                "status": GRADER_ERROR, "first_error": f"{type(e).__name__}: {e}"}
                               for ex in catalog.for_lesson(lesson)]
                results[s.student] = g
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(s.student)
    if bar is not None:
        bar.close()
    students = [results[s.student] for s in subs]
    return {
        "lesson": lesson,
        "course_root": str(opts.root),
        "cell_timeout": opts.cell_timeout,
        "notebook_timeout": opts.notebook_timeout,
        "seconds": round(time.perf_counter() - start, 2),
        "max": _num(sum(t.points for t in checks)),
        "sandbox": kind,
        "tests_sha256": info.tests_sha256,
        "students": [{"student": g.student, "notebook": g.notebook, "total": g.total, "max": g.max,
                      "seconds": g.seconds, "sandbox": g.sandbox, "code_sha256": g.code_sha256,
                      "tests_sha256": g.tests_sha256, "notes": g.notes, "integrity": g.integrity,
                      "exercises": g.exercises, "checks": g.checks} for g in students],
    }


CSV_FIELDS = ["student", "exercise", "points", "max", "status", "first_error", "sandbox", "seconds", "code_sha256",
              "tests_sha256"]
STUDENT_FIELDS = ("sandbox", "seconds", "code_sha256", "tests_sha256")  # per submission, repeated on its rows


def write_reports(report: dict, out: Path) -> tuple[Path, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out / "grades.csv", out / "grades.json"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for s in report["students"]:
        for row in s["exercises"]:
            writer.writerow({**{k: s.get(k, "") for k in STUDENT_FIELDS}, **{k: row[k] for k in CSV_FIELDS
                                                                            if k in row}})
    csv_path.write_text(buf.getvalue(), encoding="utf-8")
    json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return csv_path, json_path


def _clip(s: str, width: int) -> str:
    return s if len(s) <= width else s[: width - 1] + "…"


def format_class_table(report: dict, error_width: int = 70) -> str:
    """One row per student: points per exercise, total, and what went wrong where."""
    ids = [ex.id for ex in catalog.for_lesson(report["lesson"])
           if any(r["exercise"] == ex.id for s in report["students"] for r in s["exercises"])]
    head = ["student", *ids, "total", "notes"]
    rows = [head]
    for s in report["students"]:
        by = {r["exercise"]: r for r in s["exercises"]}
        cells = [s["student"]]
        for i in ids:
            r = by.get(i)
            cells.append(f"{r['points']}/{r['max']}" if r else "-")
        cells.append(f"{s['total']}/{s['max']}")
        notes = [f"{r['exercise']} {r['status']}" + (f" ({r['first_error']})" if r["first_error"] else "")
                 for r in s["exercises"] if r["status"] != PASS]
        cells.append(_clip("; ".join(notes), error_width))
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    lines = ["  ".join(f"{c:{w}}" for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  -----")
    n = len(report["students"])
    lines.append(f"{n} submission(s) graded in {report['seconds']} s (lesson {report['lesson']}, max "
                 f"{report['max']} points; isolation: {report.get('sandbox', '?')})")
    return "\n".join(line.rstrip() for line in lines)


def build_parser(prog: str = "python -m minitorch_attn grade-class") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="grade a folder of submitted notebooks",
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("submissions", help="folder of NAME.ipynb files or NAME/ folders (one per student)")
    p.add_argument("--lesson", required=True, help="the lesson the notebooks are for (02, 02_softmax, ...)")
    p.add_argument("--out", help="where to write grades.csv and grades.json (default out/classroom/lessonNN)")
    p.add_argument("--cell-timeout", type=float, default=DEFAULT_CELL_TIMEOUT,
                   help=f"seconds one cell may run (default {DEFAULT_CELL_TIMEOUT:g})")
    p.add_argument("--notebook-timeout", type=float, default=DEFAULT_NOTEBOOK_TIMEOUT,
                   help="seconds one run of a notebook's tests may take (a rerun without the exercise "
                        "that ran past it gets as long) "
                        f"(default {DEFAULT_NOTEBOOK_TIMEOUT:g})")
    p.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB,
                   help=f"address-space limit of each sandbox (default {DEFAULT_MEMORY_MB})")
    p.add_argument("--jobs", "-j", type=int, default=min(4, os.cpu_count() or 1),
                   help="submissions graded at once (default: min(4, CPUs))")
    p.add_argument("--root", help="the instructor's course checkout (default: found as for `course grade`)")
    p.add_argument("--keep-workdirs", action="store_true", help="keep each submission's temporary folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    from .targets import find_root

    args = build_parser().parse_args(argv)
    try:
        lesson = catalog.resolve_lesson(args.lesson)
        root = find_root(args.root)
        opts = Options(root=root, cell_timeout=args.cell_timeout, notebook_timeout=args.notebook_timeout,
                       memory_mb=args.memory_mb, keep=args.keep_workdirs)
        report = grade_class(Path(args.submissions), lesson, opts, jobs=args.jobs, progress=not args.no_progress)
    except (FileNotFoundError, ValueError, sandbox.SandboxUnavailable) as e:
        print(f"grade-class: {e}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path("out") / "classroom" / catalog.lesson_stem(lesson)
    csv_path, json_path = write_reports(report, out)
    print(format_class_table(report))
    print(f"wrote {csv_path} and {json_path}")
    return 0


# ---- one check, by either route (GitHub Classroom) ----------------------------------------------------------
_GRADE_ID = re.compile(r"^ex-([0-9]+\.[0-9]+)-(.+)$")


def graded_notebook_cached(notebook: Path, lesson: str, opts: Options, cache_dir: Path) -> Graded:
    """Grade one notebook (as grade-class does), caching the result by the notebook's content."""
    import hashlib

    key = hashlib.sha256(notebook.read_bytes() + str(opts.root).encode()).hexdigest()[:24]
    cache = cache_dir / f"{catalog.lesson_stem(lesson)}-{key}.json"
    if cache.is_file():
        data = json.loads(cache.read_text(encoding="utf-8"))
        return Graded(**data)
    graded = grade_submission(Submission(notebook.stem, notebook), lesson, official_checks(opts.root, lesson), opts)
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(graded.__dict__), encoding="utf-8")
    return graded


def autograde(grade_id: str, root: Path, opts: Options | None = None) -> int:
    """Exit status 0 when the learner passes graded check `grade_id` ("ex-2.1-test_softmax_backward") by
    either route: the pytest grader on exercises/, or the check in handouts/ (graded in isolation)."""
    match = _GRADE_ID.match(grade_id)
    if not match:
        raise ValueError(f"{grade_id!r} is not a check id (ex-<exercise>-<test>, as in autograding.json)")
    ex = catalog.get(match.group(1))
    test = match.group(2)
    root = Path(root)
    opts = opts or Options(root=root, cell_timeout=120, notebook_timeout=900)
    rel = f"tests/exercises/test_{ex.stem}.py"
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "grade.json"
        proc = subprocess.run([sys.executable, "-m", "pytest", f"{rel}::{test}", "-q", "--no-header",
                               "--tb=short", "-p", "no:cacheprovider", "--target=exercises",
                               f"--course-root={root}", f"--rootdir={root}", f"--grade-json={report_path}"],
                              cwd=root, capture_output=True, text=True)
        report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else {}
    if proc.returncode == 0:
        print(f"{grade_id}: passed (pytest on exercises/{ex.stem}.py)")
        return 0
    messages = [t.get("message", "") for t in report.get("tests", []) if t.get("message")]
    if not messages:
        messages = [line for line in proc.stdout.splitlines() if line.strip()][-1:]
    print(f"{grade_id}: not passed by exercises/{ex.stem}.py" + (f": {messages[0]}" if messages else ""))
    notebook = root / "handouts" / f"{ex.stem}.ipynb"
    if notebook.is_file():
        graded = graded_notebook_cached(notebook, ex.lesson, opts, root / "out" / "classroom" / "autograde")
        entry = next((c for c in graded.checks if c["grade_id"] == grade_id), None)
        if entry is not None and entry["status"] == PASS:
            print(f"{grade_id}: passed (handouts/{notebook.name})")
            return 0
        why = f"{entry['status']}: {entry['error']}" if entry else "no such check in the notebook"
        print(f"{grade_id}: not passed by handouts/{notebook.name} ({why})")
    return 1


if __name__ == "__main__":
    sys.exit(main())
