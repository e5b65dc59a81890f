"""Classroom grading: handout notebooks, their integrity, the GitHub Classroom configuration, and
`grade-class` on a fake class generated here (a correct submission, a partial one, a syntax error, an infinite
loop, a tampered check, a cell that kills its process, a cell that deletes its working folder, a memory hog and
an unreadable file), each graded in its own sandbox with timeouts (the attacks of a hostile learner are in
tests/test_grade_hostile.py). Instructor-side: skipped in a release."""

from __future__ import annotations

import copy
import csv
import json
import shutil
import time
from pathlib import Path

import pytest

import minitorch_attn.course as course
from minitorch_attn.course import autograding, catalog, classroom
from minitorch_attn.course.handout import (
    MISSING,
    MODIFIED,
    build_handout,
    check_handouts,
    checksum,
    graded_tests,
    grading_notebook,
    official_checks,
    solved_notebook,
)
from minitorch_attn.course.nbcheck import CheckFailed, check
from minitorch_attn.course.source import BEGIN_HIDDEN, END_HIDDEN, library_dir, read_definition, stub_definition

pytestmark = pytest.mark.skipif(course.is_release(), reason="instructor machinery: a student release has no "
                                "solutions to build the fake class from")

ROOT = Path(__file__).resolve().parents[1]
LESSON = "02_softmax"
HIDDEN_TEST = f'''

{BEGIN_HIDDEN}
@pytest.mark.exercise("2.1", points=1)
def test_hidden_softmax_rows_sum_to_one(impl):
    x = np.random.default_rng(5).standard_normal((3, 4))
    out, _ = run_op(impl.Softmax, x, axis=-1)
    assert_close(out.sum(axis=-1), np.ones(3), "hidden check: Softmax rows sum to one",
                 "divide by the row sum", rtol=1e-12)
{END_HIDDEN}
'''


def _role(cell) -> str | None:
    return cell["metadata"].get("minitorch_attn", {}).get("role")


def _code_cell(nb: dict, ex: str) -> dict:
    return next(c for c in nb["cells"] if _role(c) == "code" and c["metadata"]["minitorch_attn"]["exercise"] == ex)


def _check_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if _role(c) == "check"]


# ---- generated files ---------------------------------------------------------------------------------------
def test_handouts_and_autograding_are_fresh():
    assert check_handouts(ROOT) == [], "run `python -m minitorch_attn course generate`"
    assert autograding.check(ROOT) == [], "run `python -m minitorch_attn course generate`"


def test_handouts_hold_the_stubs_and_one_check_per_graded_test():
    package_dir = library_dir(ROOT)
    for lesson in catalog.lessons():
        nb = build_handout(ROOT, lesson).notebook
        exercise_file = (ROOT / "exercises" / f"{catalog.lesson_stem(lesson)}.py").read_text(encoding="utf-8")
        tests = graded_tests(ROOT, lesson)
        for ex in catalog.for_lesson(lesson):
            stub = "\n".join(stub_definition(read_definition(ex, package_dir)))
            assert _code_cell(nb, ex.id)["source"] == stub and stub in exercise_file, ex.id
            checks = [c for c in _check_cells(nb) if c["metadata"]["minitorch_attn"]["exercise"] == ex.id]
            visible = [t for t in tests if t.exercise == ex.id and not t.hidden]
            assert [c["metadata"]["minitorch_attn"]["test"] for c in checks] == [t.name for t in visible]
            assert sum(t.points for t in tests if t.exercise == ex.id) == ex.points, ex.id
            for c, t in zip(checks, visible):
                nbg = c["metadata"]["nbgrader"]
                assert nbg["grade"] and nbg["locked"] and not nbg["solution"]
                assert nbg["grade_id"] == f"ex-{ex.id}-{t.name}" and nbg["points"] == t.points
                assert c["metadata"]["minitorch_attn"]["checksum"] == checksum(nbg["grade_id"], t.points,
                                                                               c["source"])


def test_autograding_json_has_one_entry_per_visible_check_with_its_points():
    data = json.loads((ROOT / autograding.AUTOGRADING_PATH).read_text(encoding="utf-8"))
    expected = [t for lesson in catalog.lessons() for t in official_checks(ROOT, lesson) if not t.hidden]
    assert [e["run"] for e in data["tests"]] == [
        f"python -m minitorch_attn course autograde {t.grade_id}" for t in expected]
    assert sum(e["points"] for e in data["tests"]) == sum(t.points for t in expected)
    workflow = (ROOT / ".github/workflows/classroom.yml").read_text(encoding="utf-8")
    assert "education/autograding" in workflow


# ---- integrity and hidden checks (no kernel) ------------------------------------------------------------------
def _course_root_with_hidden_test(tmp_path: Path) -> Path:
    """A course folder whose lesson-02 graded tests have one hidden test (2.1, 1 point) at the end."""
    root = tmp_path / "course"
    (root / "tests" / "exercises").mkdir(parents=True)
    shutil.copy2(ROOT / "conftest.py", root / "conftest.py")
    src = ROOT / "tests" / "exercises" / f"test_{catalog.lesson_stem(LESSON)}.py"
    text = src.read_text(encoding="utf-8")
    assert "run_op" in text and "assert_close" in text
    (root / "tests" / "exercises" / src.name).write_text(text + HIDDEN_TEST, encoding="utf-8")
    return root


def test_hidden_checks_are_absent_from_the_handout_and_present_in_the_grading_copy(tmp_path):
    root = _course_root_with_hidden_test(tmp_path)
    handout = build_handout(root, LESSON)
    text = json.dumps(handout.notebook)
    assert "test_hidden_softmax_rows_sum_to_one" not in text and "HIDDEN" not in text
    assert [t.name for t in handout.hidden] == ["test_hidden_softmax_rows_sum_to_one"]
    assert "test_hidden_softmax_rows_sum_to_one" not in autograding.render(root)
    checks = official_checks(root, LESSON)
    graded, integrity = grading_notebook(solved_notebook(ROOT, LESSON), checks)
    assert integrity.problems == {}
    ids = [c["metadata"].get("nbgrader", {}).get("grade_id") for c in graded["cells"]]
    hidden_at = ids.index("ex-2.1-test_hidden_softmax_rows_sum_to_one")
    assert ids[hidden_at - 1] == "ex-2.1-test_softmax_backward"  # after the exercise's last check


def test_grading_copy_puts_back_official_checks_and_reports_tampering():
    checks = official_checks(ROOT, LESSON)
    nb = solved_notebook(ROOT, LESSON)
    cells = _check_cells(nb)
    edited, deleted, repointed = cells[0], cells[1], cells[2]
    edited["source"] = edited["source"].replace("check(", "print(")
    repointed["metadata"]["nbgrader"]["points"] = 100  # points are part of the checksum
    nb["cells"].remove(deleted)
    nb["cells"].append(copy.deepcopy(cells[3]))  # a repeated check is dropped
    fake = copy.deepcopy(cells[3])
    fake["metadata"]["nbgrader"]["grade_id"] = "my-own-check"
    nb["cells"].append(fake)
    graded, integrity = grading_notebook(nb, checks)
    ids = lambda c: c["metadata"].get("nbgrader", {}).get("grade_id")  # noqa: E731
    assert integrity.problems == {ids(edited): MODIFIED, ids(repointed): MODIFIED, ids(deleted): MISSING}
    assert integrity.duplicates == 1
    official = {ids(c): c for c in _check_cells(build_handout(ROOT, LESSON).notebook)}
    for c in graded["cells"]:
        if ids(c) in official:
            assert c["source"] == official[ids(c)]["source"]  # the official text runs, whatever was there
    assert ids(deleted) not in [c["metadata"].get("nbgrader", {}).get("grade_id") for c in graded["cells"]]
    assert not graded["cells"][-1]["metadata"]["nbgrader"]["grade"]  # a home-made "check" is never graded


def test_notebook_check_is_the_pytest_grader_with_its_teaching_message():
    """The handout's check cells, run on the handout's stubs, fail with the stubs' own message (the first
    line pytest's grade table shows); on the model answer they pass."""
    handout = build_handout(ROOT, LESSON).notebook
    stubs: dict = {}
    for cell in handout["cells"]:
        if _role(cell) in ("setup", "code"):
            exec(compile(cell["source"], "<handout>", "exec"), stubs)  # noqa: S102
    ex = catalog.get("2.1")
    with pytest.raises(CheckFailed) as info:
        check("2.1", "test_softmax_backward", stubs)
    assert str(info.value) == f"NotImplementedError: Exercise 2.1: Softmax.forward — {ex.hint_for('forward')}"
    with pytest.raises(CheckFailed, match="merge_normalisers is not defined"):
        check("2.3", "test_merge_with_empty_parts_is_exact", {})
    solved: dict = {}
    for cell in solved_notebook(ROOT, LESSON)["cells"]:
        if _role(cell) in ("setup", "code"):
            exec(compile(cell["source"], "<solved>", "exec"), solved)  # noqa: S102
    check("2.4", "test_online_handles_masked_and_huge_rows", solved)  # monkeypatches the namespace ...
    assert solved["merge_normalisers"].__name__ == "merge_normalisers"  # ... and puts it back


# ---- the fake class ----------------------------------------------------------------------------------------
def _fake_class(folder: Path) -> dict[str, dict]:
    """Submissions for lesson 02 and, for each, the points per exercise (2.1, 2.2, 2.3, 2.4 -- 2.1 includes the
    hidden 1-point check) and the status each exercise must get."""
    folder.mkdir(parents=True)
    solved = solved_notebook(ROOT, LESSON)
    handout = build_handout(ROOT, LESSON).notebook
    expected = {}

    def save(name, nb, points, statuses, as_folder=False):
        if as_folder:  # a GitHub Classroom style folder: the student is the folder's name
            path = folder / name / "handouts" / f"{catalog.lesson_stem(LESSON)}.ipynb"
            path.parent.mkdir(parents=True)
        else:
            path = folder / f"{name}.ipynb"
        path.write_text(json.dumps(nb), encoding="utf-8")
        expected[name] = {"points": points, "status": statuses}

    save("alice_correct", solved, [3, 2, 3, 3], ["pass"] * 4, as_folder=True)

    nb = copy.deepcopy(solved)  # backward wrong, 2.2 left as handed out
    src = _code_cell(nb, "2.1")["source"]
    good = "return p * (grad - (grad * p).sum(axis=axis, keepdims=True))"
    assert good in src
    _code_cell(nb, "2.1")["source"] = src.replace(good, "return p * grad")
    _code_cell(nb, "2.2")["source"] = _code_cell(handout, "2.2")["source"]
    save("bob_partial", nb, [2, 0, 3, 3], ["partial", "fail", "pass", "pass"])

    nb = copy.deepcopy(solved)
    _code_cell(nb, "2.1")["source"] += "\n    def oops(:\n        pass\n"
    save("carol_syntax_error", nb, [0, 2, 3, 3], ["syntax error", "pass", "pass", "pass"])

    nb = copy.deepcopy(solved)
    _code_cell(nb, "2.4")["source"] = "while True:\n    pass\n\n" + _code_cell(nb, "2.4")["source"]
    save("dave_infinite_loop", nb, [3, 2, 3, 0], ["pass", "pass", "pass", "timeout"])

    nb = copy.deepcopy(solved)
    checks = _check_cells(nb)
    by_id = {c["metadata"]["nbgrader"]["grade_id"]: c for c in checks}
    by_id["ex-2.3-test_merge_of_two_halves_is_the_whole"]["source"] = "pass  # this check is fine, trust me"
    nb["cells"].remove(by_id["ex-2.4-test_online_shapes_and_dtypes"])
    save("erin_tampered", nb, [3, 2, 2, 2], ["pass", "pass", MODIFIED, MISSING])

    nb = copy.deepcopy(solved)
    _code_cell(nb, "2.3")["source"] = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"
    save("frank_kills_itself", nb, [3, 2, 0, 3], ["pass", "pass", "rejected", "pass"])  # `import os` is refused

    nb = copy.deepcopy(solved)
    _code_cell(nb, "2.2")["source"] += ("\n\nimport os, shutil\nfor _f in os.listdir('.'):\n"
                                        "    shutil.rmtree(_f) if os.path.isdir(_f) else os.remove(_f)\n"
                                        "os.rmdir(os.getcwd())\n")
    save("grace_deletes_files", nb, [3, 0, 3, 3], ["pass", "rejected", "pass", "pass"])

    nb = copy.deepcopy(solved)
    hog = "def _eat():\n    hog = []\n    while True:\n        hog.append(np.empty(2**27))\n\n_eat()\n\n"
    _code_cell(nb, "2.4")["source"] = hog + _code_cell(nb, "2.4")["source"]
    # the cell gets a MemoryError; whether the process then survives its brush with the limit varies
    save("heidi_memory_hog", nb, [3, 2, 3, 0], ["pass", "pass", "pass", ("error in code cell",
                                                                        "grading process died")])

    (folder / "ivan_unreadable.ipynb").write_text('{"cells": [', encoding="utf-8")
    expected["ivan_unreadable"] = {"points": [0, 0, 0, 0], "status": ["unreadable notebook"] * 4}
    return expected


def test_grade_class_gives_each_submission_exactly_its_points(tmp_path, capsys):
    root = _course_root_with_hidden_test(tmp_path)
    submissions = tmp_path / "submissions"
    expected = _fake_class(submissions)
    before = sorted(p.relative_to(submissions) for p in submissions.rglob("*"))
    out = tmp_path / "grades"
    start = time.perf_counter()
    rc = classroom.main([str(submissions), "--lesson", "02", "--root", str(root), "--out", str(out),
                         "--cell-timeout", "5", "--notebook-timeout", "40", "--jobs", "2",
                         "--memory-mb", "2048"])
    seconds = time.perf_counter() - start
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    table = printed.out
    print(table)  # shown with -s: the grade table of the fake class
    assert seconds < 120, f"grading the fake class took {seconds:.0f} s"

    report = json.loads((out / "grades.json").read_text(encoding="utf-8"))
    assert report["max"] == 11  # the catalog's 10 and the hidden check's 1
    got = {s["student"]: s for s in report["students"]}
    assert set(got) == set(expected)
    for student, want in expected.items():
        rows = got[student]["exercises"]
        assert [r["exercise"] for r in rows] == ["2.1", "2.2", "2.3", "2.4"]
        assert [r["points"] for r in rows] == want["points"], (student, rows)
        for row, status in zip(rows, want["status"]):
            assert row["status"] in (status if isinstance(status, tuple) else (status,)), (student, row)
        assert [r["max"] for r in rows] == [3, 2, 3, 3]
        assert got[student]["total"] == sum(want["points"])
        assert student in table

    # the hidden check ran at grading time: it passed for alice and failed (undefined Softmax) for carol
    hidden = {s: next(c for c in got[s]["checks"] if c["hidden"]) for s in ("alice_correct", "carol_syntax_error")}
    assert hidden["alice_correct"]["status"] == "pass"
    assert hidden["carol_syntax_error"]["status"] == "fail" and "Softmax is not defined" in \
        hidden["carol_syntax_error"]["error"]
    # first error lines teach
    bob = {r["exercise"]: r for r in got["bob_partial"]["exercises"]}
    assert bob["2.2"]["first_error"] == ("NotImplementedError: Exercise 2.2: LogSumExp.forward — "
                                         + catalog.get("2.2").hint_for("forward"))
    assert bob["2.1"]["first_error"].startswith("AssertionError: Softmax.backward")
    carol = {r["exercise"]: r for r in got["carol_syntax_error"]["exercises"]}
    assert carol["2.1"]["first_error"].startswith("code cell: SyntaxError")
    erin = got["erin_tampered"]
    assert erin["integrity"] == {"ex-2.3-test_merge_of_two_halves_is_the_whole": MODIFIED,
                                 "ex-2.4-test_online_shapes_and_dtypes": MISSING}
    heidi = {r["exercise"]: r for r in got["heidi_memory_hog"]["exercises"]}
    assert heidi["2.4"]["first_error"].startswith("code cell: MemoryError")

    # the CSV holds the same rows; nothing in the submissions folder was touched
    with open(out / "grades.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == classroom.CSV_FIELDS
    assert len(rows) == 4 * len(expected)
    assert sorted(p.relative_to(submissions) for p in submissions.rglob("*")) == before


def test_find_submissions_names_students_by_file_or_folder(tmp_path):
    (tmp_path / "ann.ipynb").write_text("{}")
    (tmp_path / "ben" / "handouts").mkdir(parents=True)
    (tmp_path / "ben" / "handouts" / "lesson02_softmax.ipynb").write_text("{}")
    (tmp_path / "ben" / "handouts" / "lesson01_autograd.ipynb").write_text("{}")
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "a.ipynb").write_text("{}")
    (tmp_path / "cat" / "b.ipynb").write_text("{}")
    (tmp_path / "dan").mkdir()
    (tmp_path / ".git").mkdir()
    subs = {s.student: s for s in classroom.find_submissions(tmp_path, LESSON)}
    assert set(subs) == {"ann", "ben", "cat", "dan"}
    assert subs["ben"].path.name == "lesson02_softmax.ipynb"
    assert subs["cat"].path is None and "several notebooks" in subs["cat"].problem
    assert subs["dan"].path is None and "no .ipynb" in subs["dan"].problem


def test_a_notebook_past_its_time_limit_is_killed_with_its_sandbox(tmp_path):
    nb = solved_notebook(ROOT, LESSON)
    _code_cell(nb, "2.2")["source"] = "while True:\n    pass\n"  # the cell timeout (100 s) is longer
    path = tmp_path / "slow.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    opts = classroom.Options(root=ROOT, cell_timeout=100, notebook_timeout=6)
    start = time.perf_counter()
    graded = classroom.grade_submission(classroom.Submission("slow", path), LESSON,
                                        official_checks(ROOT, LESSON), opts)
    assert time.perf_counter() - start < 30
    rows = {r["exercise"]: r for r in graded.exercises}
    assert rows["2.2"]["status"] == "notebook timeout" and rows["2.2"]["points"] == 0
    assert "6 s limit" in rows["2.2"]["first_error"]
    # the run was killed, then repeated without 2.2: the other exercises keep their points
    assert [rows[e]["points"] for e in ("2.1", "2.3", "2.4")] == [2, 3, 3], graded.exercises
    time.sleep(1.5)  # the grader kills the sandbox's process group; --die-with-parent takes the rest
    leftover = [p for p in Path("/proc").glob("[0-9]*") if _is_grading_process(p)]
    assert leftover == []


def _is_grading_process(proc: Path) -> bool:
    try:
        found = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
    except OSError:
        return False
    return b"mta-grade-slow-" in found


def test_autograde_passes_a_check_by_either_route(tmp_path, capsys):
    root = tmp_path / "repo"
    stem = catalog.lesson_stem(LESSON)
    for rel in ("conftest.py", f"tests/exercises/test_{stem}.py", f"exercises/{stem}.py"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, root / rel)
    check_id = "ex-2.3-test_merge_with_empty_parts_is_exact"
    assert classroom.autograde(check_id, root) == 1  # the stub, and no notebook
    assert "NotImplementedError: Exercise 2.3" in capsys.readouterr().out
    (root / "handouts").mkdir()
    notebook = root / "handouts" / f"{stem}.ipynb"
    notebook.write_text(json.dumps(solved_notebook(ROOT, LESSON)), encoding="utf-8")
    assert classroom.autograde(check_id, root) == 0  # by the notebook
    assert "passed (handouts/" in capsys.readouterr().out
    shutil.copy2(ROOT / "solutions" / f"{stem}.py", root / "exercises" / f"{stem}.py")
    assert classroom.autograde(check_id, root) == 0  # by the pytest grader
    assert f"passed (pytest on exercises/{stem}.py)" in capsys.readouterr().out
    with pytest.raises(ValueError, match="not a check id"):
        classroom.autograde("2.3", root)


def test_every_lessons_model_answer_gets_full_marks_in_the_sandbox(tmp_path):
    """No false alarms: the model answer of every lesson (numba, CUDA C through g++, lazy imports, the
    library's own caches) passes the review, the audit hook and the fingerprint and earns every point."""
    from concurrent.futures import ThreadPoolExecutor

    opts = classroom.Options(root=ROOT, cell_timeout=300, notebook_timeout=600)

    def grade(lesson):
        path = tmp_path / f"{lesson}.ipynb"
        path.write_text(json.dumps(solved_notebook(ROOT, lesson)), encoding="utf-8")
        return lesson, classroom.grade_submission(classroom.Submission(lesson, path), lesson,
                                                  official_checks(ROOT, lesson), opts)

    with ThreadPoolExecutor(max_workers=2) as pool:
        graded = dict(pool.map(grade, catalog.lessons()))
    wrong = {lesson: [(r["exercise"], r["status"], r["first_error"][:200]) for r in g.exercises
                      if r["status"] != "pass"] for lesson, g in graded.items() if g.total != g.max}
    assert not wrong, wrong
    assert sum(g.total for g in graded.values()) == sum(t.points for lesson in catalog.lessons()
                                                        for t in official_checks(ROOT, lesson))
