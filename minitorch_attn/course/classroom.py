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

Processes and timeouts: grade-class (this process) grades --jobs submissions at once, each on a thread that
starts one sandboxed child per run (`classroom_run`: bwrap, or a plain child in a new session, running
`grade_runner`). Inside the child a SIGALRM stops a cell or test past --cell-timeout ("timeout", the run
goes on); the grader SIGKILLs a child past --notebook-timeout ("notebook timeout") and reruns it without
the exercise that was running; rlimits (--memory-mb, CPU, files, processes) end a child that "died".

The pieces, each in its own module (everything is re-exported here, as before the split):

    classroom_submissions  finding the submissions          classroom_verdict   records -> points, statuses
    classroom_run          the child process and its limits  classroom_report    grades.csv, grades.json, table
    classroom_status       the status names                  classroom_autograde one check, for GitHub Classroom
    classroom (this file)  grading the class, and the command line
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from . import catalog, sandbox
from .classroom_autograde import autograde, graded_notebook_cached
from .classroom_report import CSV_FIELDS, STUDENT_FIELDS, format_class_table, write_reports
from .classroom_run import (
    DEFAULT_CELL_TIMEOUT,
    DEFAULT_MEMORY_MB,
    DEFAULT_NOTEBOOK_TIMEOUT,
    Lesson,
    Options,
    run_code,
)
from .classroom_status import (
    CODE_ERROR,
    DIED,
    FAIL,
    GRADER_ERROR,
    NO_NOTEBOOK,
    NOT_RUN,
    NOTEBOOK_TIMEOUT,
    PARTIAL,
    PASS,
    SYNTAX_ERROR,
    TAMPERING,
    TIMEOUT,
    UNREADABLE,
)
from .classroom_submissions import Submission, find_submissions
from .classroom_verdict import Graded, _num, grade_submission
from .handout import official_checks

__all__ = [
    "CODE_ERROR", "CSV_FIELDS", "DEFAULT_CELL_TIMEOUT", "DEFAULT_MEMORY_MB", "DEFAULT_NOTEBOOK_TIMEOUT", "DIED",
    "FAIL", "GRADER_ERROR", "NOTEBOOK_TIMEOUT", "NOT_RUN", "NO_NOTEBOOK", "PARTIAL", "PASS", "STUDENT_FIELDS",
    "SYNTAX_ERROR", "TAMPERING", "TIMEOUT", "UNREADABLE", "Graded", "Lesson", "Options", "Submission",
    "autograde", "build_parser", "find_submissions", "format_class_table", "grade_class", "grade_submission",
    "graded_notebook_cached", "main", "run_code", "write_reports",
]


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


if __name__ == "__main__":
    sys.exit(main())
