"""`python -m minitorch_attn course COMMAND`: the course machinery from the command line.

    generate                 write exercises/ and solutions/ from the library's solution blocks
    check                    exit 1 when exercises/ or solutions/ are stale (says which and how to fix)
    grade [--target T] [--lesson NN] [--json PATH] [-v]
                             run tests/exercises on T (default exercises), print the points table, write
                             the JSON (default grades.json); exit 0 whatever the grade, non-zero only when
                             pytest itself fails (a collection error, ...)
    verify [--json-dir DIR]  check, then grade both targets: every graded test must fail on the stubs (with
                             their NotImplementedError) and pass on the solutions, and each exercise's test
                             points must equal the catalog's
    release OUT_DIR [--force]
                             the student copy of the course (see minitorch_attn/course/release.py)
    handout [--check]        write (or check) handouts/lessonNN_*.ipynb, the learners' notebooks
    autograding [--check]    write (or check) .github/classroom/autograding.json
    grade-class DIR --lesson NN [--out DIR] [--cell-timeout S] [--notebook-timeout S] [--jobs K]
                             grade a folder of submitted notebooks (see minitorch_attn/course/classroom.py)
    autograde CHECK_ID       one GitHub Classroom check: pass by exercises/ (pytest) or handouts/ (notebook)

`generate` also writes handouts/ and the autograding configuration, and `check` checks them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from . import catalog
from .grading import format_table
from .source import PACKAGE_DIR
from .targets import TARGETS, CourseRootNotFound, find_root, is_release


def _project_root(args) -> Path:
    """The course folder with exercises/ (where grading runs)."""
    return find_root(getattr(args, "root", None))


def _source_root(args) -> Path:
    """The checkout whose library generates exercises/ and solutions/ (instructor commands)."""
    return Path(args.root).resolve() if getattr(args, "root", None) else PACKAGE_DIR.parent


def _grade_command(root: Path, target: str, json_path: Path, lesson: str | None) -> list[str]:
    tests = root / "tests" / "exercises"
    if lesson:
        stem = catalog.lesson_stem(catalog.resolve_lesson(lesson))
        paths = [str(p.relative_to(root)) for p in sorted(tests.glob(f"test_{stem}.py"))]
        if not paths:
            raise FileNotFoundError(f"no graded tests for lesson {lesson} (expected {tests}/test_{stem}.py)")
    else:
        paths = [str(tests.relative_to(root))]
    return [sys.executable, "-m", "pytest", *paths, "-q", "--tb=short", "-p", "no:cacheprovider",
            f"--target={target}", f"--grade-json={json_path}", f"--course-root={root}"]


def _start_grading(root: Path, target: str, json_path: Path, lesson: str | None) -> subprocess.Popen:
    env = {**os.environ, "MTA_COURSE_ROOT": str(root)}
    return subprocess.Popen(_grade_command(root, target, json_path, lesson), cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish_grading(proc: subprocess.Popen, json_path: Path) -> tuple[int, str, dict | None]:
    output, _ = proc.communicate()
    report = json.loads(json_path.read_text(encoding="utf-8")) if json_path.exists() else None
    return proc.returncode, output, report


def _pytest_failed(rc: int, report) -> bool:
    # 0: all passed, 1: some tests failed -- both are a grade; anything else is pytest failing to run
    return rc not in (0, 1) or report is None


def cmd_generate(args) -> int:
    if is_release():
        print("this is a student release: the library's solutions are gone, so exercises/ cannot be "
              "regenerated (and regenerating would overwrite your work)", file=sys.stderr)
        return 2
    from . import autograding
    from .generate import generate
    from .handout import write_handouts

    root = _source_root(args)
    for rel, what in [*generate(root), *write_handouts(root), autograding.write(root)]:
        print(f"{what:9}  {rel}")
    return 0


def cmd_check(args) -> int:
    if is_release():
        print("student release: nothing to check (exercises/ is yours to edit inside the blocks)")
        return 0
    from . import autograding
    from .generate import check, uncatalogued_blocks
    from .handout import check_handouts

    root = _source_root(args)
    problems = check(root)
    if not problems:  # handouts are generated from the exercises' definitions: report those first
        problems = check_handouts(root) + autograding.check(root)
    for w in uncatalogued_blocks(root):
        print(f"warning: {w}", file=sys.stderr)
    for p in problems:
        print(f"stale: {p}", file=sys.stderr)
    if problems:
        print(f"course check: {len(problems)} problem(s) in {root}", file=sys.stderr)
        return 1
    print(f"course check: exercises/, solutions/, handouts/ and {autograding.AUTOGRADING_PATH} are up to date "
          f"with the library ({root})")
    return 0


def cmd_grade(args) -> int:
    root = _project_root(args)
    json_path = Path(args.json).resolve()
    json_path.parent.mkdir(parents=True, exist_ok=True)
    if json_path.exists():
        json_path.unlink()
    rc, output, report = _finish_grading(_start_grading(root, args.target, json_path, args.lesson), json_path)
    if args.verbose or _pytest_failed(rc, report):
        print(output)
    if _pytest_failed(rc, report):
        print(f"grade: pytest could not run the graded tests (exit code {rc}); see its output above",
              file=sys.stderr)
        return rc or 2
    print(format_table(report))
    print(f"wrote {json_path}")
    if report["total"] != report["max"] and not args.verbose:
        where = f"tests/exercises/test_{catalog.lesson_stem(catalog.resolve_lesson(args.lesson))}.py" \
            if args.lesson else "tests/exercises"
        print(f"details of each failure: pytest {where} --target={args.target}")
    return 0


def _verify_problems(stubs: dict, solutions: dict) -> list[str]:
    problems = []
    stub_tests = {t["nodeid"]: t for t in stubs["tests"]}
    sol_tests = {t["nodeid"]: t for t in solutions["tests"]}
    if set(stub_tests) != set(sol_tests):
        problems.append(f"the two runs collected different tests: {sorted(set(stub_tests) ^ set(sol_tests))}")
    for nodeid, t in sorted(stub_tests.items()):
        if t["outcome"] not in ("failed", "error"):
            problems.append(f"{nodeid} ({t['exercise']}) {t['outcome']} on the stubs: it must fail there")
        elif "NotImplementedError" not in t["message"]:
            problems.append(f"{nodeid} ({t['exercise']}) fails on the stubs, but not with their "
                            f"NotImplementedError: {t['message']}")
    for nodeid, t in sorted(sol_tests.items()):
        if t["outcome"] != "passed":
            problems.append(f"{nodeid} ({t['exercise']}) {t['outcome']} on the solutions: {t['message']}")
    rows = {r["id"]: r for r in solutions["exercises"]}
    for ex in catalog.EXERCISES:
        row = rows.get(ex.id)
        if row is None or row["tests_total"] == 0:
            problems.append(f"exercise {ex.id} ({ex.name}) has no graded test")
        elif row["points_max"] != row["points_catalog"]:
            problems.append(f"exercise {ex.id} ({ex.name}): its tests carry {row['points_max']} points, the "
                            f"catalog says {row['points_catalog']}")
    return problems


def cmd_verify(args) -> int:
    if is_release():
        print("verify needs the solutions, which a student release does not have", file=sys.stderr)
        return 2
    from .generate import check, uncatalogued_blocks

    root = _source_root(args)
    for w in uncatalogued_blocks(root):
        print(f"warning: {w}", file=sys.stderr)
    problems = [f"stale: {p}" for p in check(root)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.json_dir).resolve() if args.json_dir else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {t: folder / f"grades-{t}.json" for t in TARGETS}
        for p in paths.values():
            if p.exists():
                p.unlink()
        procs = {t: _start_grading(root, t, paths[t], None) for t in TARGETS}  # both at once
        results = {t: _finish_grading(procs[t], paths[t]) for t in TARGETS}
    for t in TARGETS:
        rc, output, report = results[t]
        label = "stubs (exercises/)" if t == "exercises" else "solutions (solutions/)"
        print(f"== {label} ==")
        if _pytest_failed(rc, report):
            print(output)
            problems.append(f"pytest could not run the graded tests on {t} (exit code {rc})")
            continue
        print(format_table(report, error_width=50))
        print()
    if not problems:
        problems = _verify_problems(results["exercises"][2], results["solutions"][2])
    if problems:
        print(f"course verify: FAILED ({len(problems)} problem(s))", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    n = len(results["solutions"][2]["tests"])
    total = results["solutions"][2]["total"]
    print(f"course verify: OK: all {n} graded tests fail on the stubs (0 points) and pass on the solutions "
          f"({total}/{total} points)")
    return 0


def cmd_release(args) -> int:
    if is_release():
        print("this is already a student release", file=sys.stderr)
        return 2
    from .release import ReleaseError, release

    try:
        release(_source_root(args), Path(args.out_dir), force=args.force)
    except ReleaseError as e:
        print(f"course release: FAILED: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_handout(args) -> int:
    from .handout import HANDOUT_DIR, check_handouts, write_handouts

    root = _source_root(args)
    if args.check:
        problems = check_handouts(root)
        for p in problems:
            print(f"stale: {p}", file=sys.stderr)
        if not problems:
            print(f"course handout: {HANDOUT_DIR}/ is up to date ({root})")
        return 1 if problems else 0
    for rel, what in write_handouts(root):
        print(f"{what:9}  {rel}")
    return 0


def cmd_autograding(args) -> int:
    from . import autograding

    root = _source_root(args)
    if args.check:
        problems = autograding.check(root)
        for p in problems:
            print(f"stale: {p}", file=sys.stderr)
        if not problems:
            print(f"course autograding: {autograding.AUTOGRADING_PATH} is up to date ({root})")
        return 1 if problems else 0
    rel, what = autograding.write(root)
    print(f"{what:9}  {rel}")
    return 0


def cmd_autograde(args) -> int:
    from .classroom import autograde

    return autograde(args.check_id, _project_root(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m minitorch_attn course",
                                     description="exercise generation, grading and the student release",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--root", help="the course folder (default: found from the install or the cwd)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("generate", help="write exercises/ and solutions/ from the library")
    sub.add_parser("check", help="fail when exercises/ or solutions/ are stale")
    g = sub.add_parser("grade", help="grade a target and print the points table")
    g.add_argument("--target", choices=TARGETS, default=os.environ.get("MTA_TARGET") or "exercises")
    g.add_argument("--lesson", help="only this lesson (01, 01_autograd, ...)")
    g.add_argument("--json", default="grades.json", help="the JSON report to write (default: grades.json)")
    g.add_argument("-v", "--verbose", action="store_true", help="show pytest's output too")
    v = sub.add_parser("verify", help="every graded test fails on the stubs and passes on the solutions")
    v.add_argument("--json-dir", help="keep both reports (grades-exercises.json, grades-solutions.json)")
    r = sub.add_parser("release", help="write the student copy of the course")
    r.add_argument("out_dir")
    r.add_argument("--force", action="store_true", help="replace OUT_DIR if it exists")
    h = sub.add_parser("handout", help="write handouts/lessonNN_*.ipynb (the learners' notebooks)")
    h.add_argument("--check", action="store_true", help="only check that they are up to date")
    a = sub.add_parser("autograding", help="write .github/classroom/autograding.json from the catalog")
    a.add_argument("--check", action="store_true", help="only check that it is up to date")
    sub.add_parser("grade-class", help="grade a folder of submitted notebooks", add_help=False)
    ag = sub.add_parser("autograde", help="one GitHub Classroom check (by exercises/ or handouts/)")
    ag.add_argument("check_id", help="ex-<exercise>-<test>, as in autograding.json")
    return parser


COMMANDS = {"generate": cmd_generate, "check": cmd_check, "grade": cmd_grade, "verify": cmd_verify,
            "release": cmd_release, "handout": cmd_handout, "autograding": cmd_autograding,
            "autograde": cmd_autograde}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "grade-class":  # its own parser (classroom.py)
        from .classroom import main as grade_class_main

        return grade_class_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (CourseRootNotFound, FileNotFoundError, ValueError) as e:
        print(f"course {args.command}: {e}", file=sys.stderr)
        return 2
