"""A hostile class for `grade-class`, generated here: one submission per attack the grader must withstand
(issue 16), each graded exactly. For every row: the points it earned and no more, a status that says what
happened, and no effect on any other row, on the output files or on the other submissions.

The attacks target Exercise 2.2 (2 points) with the stub left in place, so any point 2.2 gets is unearned;
the other exercises hold the model answer and must keep their points (3, 3, 3: 2.1 includes a 1-point hidden
check). Attacks that need `os`/`sys` reach them the way a cheat would, through numpy's own modules
(`np.lib._utils_impl.os`), past the static review; the harness (audit hook, fingerprint, signed records)
must catch them at run time. Instructor-side: skipped in a release (it builds the class from the solutions).
"""

from __future__ import annotations

import copy
import csv
import json
import os
import shutil
import time
from pathlib import Path

import pytest

import minitorch_attn.course as course
from minitorch_attn.course import catalog, classroom, sandbox
from minitorch_attn.course.handout import MISSING, MODIFIED, build_handout, solved_notebook
from minitorch_attn.course.source import BEGIN_HIDDEN, END_HIDDEN

pytestmark = pytest.mark.skipif(course.is_release(), reason="instructor machinery: a student release has no "
                                "solutions to build the hostile class from")

ROOT = Path(__file__).resolve().parents[1]
LESSON = "02_softmax"
STEM = catalog.lesson_stem(LESSON)
FULL = [3, 2, 3, 3]  # 2.1 (with the hidden check), 2.2, 2.3, 2.4
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
OS, SYS = "np.lib._utils_impl.os", "np.lib._utils_impl.sys"  # os and sys, reached without importing them
LSE = catalog.get("2.2")
CHEAT_ARRAY = '''
class _Yes(np.ndarray):
    """compares equal to anything: x - y is zero"""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        plain = [np.asarray(i) for i in inputs]
        if ufunc is np.subtract:
            return np.zeros(np.broadcast(*plain).shape)
        return ufunc(*plain, **kwargs) if method == "__call__" else ufunc.reduce(*plain, **kwargs)


class LogSumExp(Function):
    @staticmethod
    def forward(ctx, x, axis=-1, keepdims=False):
        ctx.save(x, axis, keepdims)
        return np.zeros_like(np.sum(x, axis=axis, keepdims=keepdims)).view(_Yes)

    @staticmethod
    def backward(ctx, grad):
        x, axis, keepdims = ctx.saved
        return np.zeros_like(x).view(_Yes)
'''
HOSTILE: set[str] = set()  # the students of the class, for the check that nothing of theirs runs on


def _cells(nb, role):
    return [c for c in nb["cells"] if c.get("metadata", {}).get("minitorch_attn", {}).get("role") == role]


def _code(nb, ex):
    return next(c for c in _cells(nb, "code") if c["metadata"]["minitorch_attn"]["exercise"] == ex)


def _check(nb, name):
    return next(c for c in _cells(nb, "check") if c["metadata"]["minitorch_attn"]["test"] == name)


def _course(tmp: Path) -> Path:
    root = tmp / "course"
    (root / "tests" / "exercises").mkdir(parents=True)
    shutil.copy2(ROOT / "conftest.py", root / "conftest.py")
    src = ROOT / "tests" / "exercises" / f"test_{STEM}.py"
    (root / "tests" / "exercises" / src.name).write_text(src.read_text(encoding="utf-8") + HIDDEN_TEST,
                                                         encoding="utf-8")
    return root


def _class(folder: Path, course_root: Path, out: Path) -> dict[str, tuple]:
    """{student: (points per exercise, status of 2.2 (or a set of allowed ones), text its first_error must
    hold)}; writes the notebooks."""
    folder.mkdir(parents=True)
    solved = solved_notebook(ROOT, LESSON)
    stub = _code(build_handout(ROOT, LESSON).notebook, "2.2")["source"]
    hidden_file = course_root / "tests" / "exercises" / f"test_{STEM}.py"
    want: dict[str, tuple] = {}
    bwrap = sandbox.detect() == sandbox.BWRAP
    HOSTILE.clear()

    def add(name, points, status, says="", nb=None, cell=None, prepend=""):
        nb = copy.deepcopy(nb or solved)
        if cell is not None or prepend:
            _code(nb, "2.2")["source"] = prepend + (stub if cell is None else cell)
        (folder / f"{name}.ipynb").write_text(json.dumps(nb), encoding="utf-8")
        want[name] = (points, status, says)
        HOSTILE.add(name)

    zero = [3, 0, 3, 3]
    add("correct_control", FULL, "pass")
    # monkeypatching the grading helpers, numpy, builtins, pytest, the harness
    add("patch_checks_import", zero, "rejected", "imports minitorch_attn.course.checks",
        cell=stub + "\nimport minitorch_attn.course.checks as c\nc.assert_close = lambda *a, **k: None\n")
    add("patch_allclose", zero, "rejected", "changes np.allclose",
        cell=stub + "\nnp.allclose = lambda *a, **k: True\n")
    add("patch_allclose_alias", zero, "tampering", "numpy.allclose replaced",
        cell=stub + "\nm = np\nm.allclose = lambda *a, **k: True\n")
    add("patch_builtins_import", zero, "rejected", "imports builtins",
        cell=stub + "\nimport builtins\nbuiltins.isinstance = lambda *a: True\n")
    add("patch_builtins_runtime", zero, "tampering", "builtins.abs replaced",
        cell=stub + f"\nb = {SYS}.modules['builtins']\nb.abs = lambda *a: 0\n")
    add("patch_pytest_and_checks", zero, "tampering", "replaced",
        cell=stub + f"\nmods = {SYS}.modules\no = mods['_pytest.outcomes']\no.fail = lambda *a, **k: None\n"
        "c = mods['minitorch_attn.course.checks']\nc.assert_close = lambda *a, **k: None\n")
    add("patch_harness", zero, "tampering", "__main__.Recorder",
        cell=stub + f"\nh = {SYS}.modules['__main__']\nh.Recorder._finish = lambda *a: None\n")
    # editing, deleting, duplicating and re-pointing check cells and their metadata
    nb = copy.deepcopy(solved)
    _check(nb, "test_logsumexp_forward_is_stable")["source"] = "pass  # trust me"
    _check(nb, "test_merge_with_empty_parts_is_exact")["metadata"]["nbgrader"]["points"] = 100
    nb["cells"].remove(_check(nb, "test_online_shapes_and_dtypes"))
    add("checks_edited", [3, 1, 2, 2], MODIFIED, "check cell modified", nb=nb)
    nb = copy.deepcopy(solved)
    dup = _check(nb, "test_softmax_backward")
    nb["cells"].extend(copy.deepcopy(dup) for _ in range(3))
    fake = copy.deepcopy(dup)
    fake["metadata"]["nbgrader"].update(grade_id="ex-2.2-test_bonus", points=50)
    fake["source"] = "pass"
    nb["cells"].append(fake)
    add("checks_duplicated_and_invented", FULL, "pass", nb=nb)
    nb = copy.deepcopy(solved)
    _code(nb, "2.2")["metadata"]["nbgrader"]["grade_id"] = "ex-2.1-code"  # claims 2.1's code cell
    add("code_cell_repointed", zero, "code cell missing", "ex-2.2-code", nb=nb)
    # writing the grader's files, other submissions, a fake result
    targets = [out / "grades.csv", out / "grades.json", folder / "correct_control.ipynb"]
    writes = "".join(f"np.savetxt({str(t)!r}, np.ones(1))\n" for t in targets)
    if bwrap:  # those paths do not exist in the sandbox (its /tmp is its own)
        add("write_grades_and_others", zero, "error in code cell", "No such file", cell=stub + "\n" + writes)
    else:  # process isolation: the audit hook refuses the write
        add("write_grades_and_others", zero, "tampering", "open", cell=stub + "\n" + writes)
    forged = json.dumps({"kind": "test", "name": "test_logsumexp_forward_is_stable", "outcome": "passed"})
    add("fake_result_records", zero, "fail", "NotImplementedError", cell=stub + (
        f"\nfor _fd in range(3, 12):\n    try:\n        {OS}.write(_fd, b'{forged}\\n')\n"
        "    except OSError:\n        pass\n"))
    # reading the hidden tests and instructor files
    add("read_hidden_tests", zero, "tampering", "open", cell=stub + "".join(
        f"\ntry:\n    print(np.loadtxt({p!r}, dtype=str, delimiter='\\x00', comments=None))\n"
        "except FileNotFoundError:\n    pass\n" for p in
        ("/grade/course/tests/exercises/" + hidden_file.name, str(hidden_file),
         str(ROOT / "solutions" / f"{STEM}.py"))))
    # ending or killing the grader
    add("sys_exit", zero, "error in code cell", "SystemExit", prepend="raise SystemExit(0)\n")
    add("os_exit", zero, "grading process died", "died", prepend=f"{OS}._exit(0)\n")
    add("kill_parent", zero, "tampering", "os.kill", prepend=f"{OS}.kill({OS}.getppid(), 9)\n")
    add("mimic_markers", zero, "fail", "NotImplementedError", cell=stub + (
        f"\nprint({forged!r})\nprint('Exercise 2.2: test_logsumexp_forward_is_stable passed')\n"
        "print('{\"kind\": \"end\", \"exit\": 0}')\nprint('10 passed')\n"))
    # taking the answer instead of writing it
    add("stack_inspection", zero, "tampering", "sys._getframe", cell=stub.replace(
        "### YOUR CODE HERE", f"f = {SYS}._getframe(1)\n        ### YOUR CODE HERE", 1))
    add("inspect_import", zero, "rejected", "imports inspect", cell="import inspect\n" + stub)
    add("library_import", zero, "uses the library's implementation", f"imports {LSE.name} from {LSE.module}",
        cell=f"from {LSE.module} import {LSE.name}\n")
    add("library_via_sys_modules", zero, "uses the library's implementation", "the library's own",
        cell=f"{LSE.name} = {SYS}.modules[{LSE.module!r}].{LSE.name}\n")
    add("array_that_equals_anything", zero, "fail", "", cell=CHEAT_ARRAY)
    # threads, child processes, memory, disk, fork
    add("thread_left_running", zero, "tampering", "thread", cell=stub + (
        f"\n{SYS}.modules['threading'].Thread(target=lambda: [0 for _ in iter(int, 1)], daemon=True).start()\n"))
    add("child_process", zero, "tampering", "os.system", cell=stub + f"\n{OS}.system('sleep 100 &')\n")
    add("fork_bomb", zero, "tampering", "os.fork", cell=stub + f"\nfor _ in range(1000):\n    {OS}.fork()\n")
    add("memory_hog", zero, {"error in code cell", "grading process died"}, "", cell=stub + (
        "\n_hog = []\nwhile True:\n    _hog.append(np.empty(2**27))\n"))  # 1 GiB of address space each
    # bubblewrap: /tmp is the sandbox's own tmpfs (256 MiB), which fills; processes: /tmp is the machine's
    add("fill_disk", zero, "error in code cell" if bwrap else "tampering", "", cell=stub + (
        "\nfor _i in range(10**6):\n    np.save(f'/tmp/fill{_i}.npy', np.ones(2**20))\n"))
    add("infinite_loop", zero, "timeout", "limit", prepend="while True:\n    pass\n")
    add("syntax_error", zero, "syntax error", "SyntaxError", cell=stub + "\ndef oops(:\n    pass\n")
    (folder / "unreadable.ipynb").write_text('{"cells": [', encoding="utf-8")
    want["unreadable"] = ([0, 0, 0, 0], "unreadable notebook", "JSONDecodeError")
    return want


@pytest.fixture(params=[sandbox.BWRAP, sandbox.PROCESS])
def isolation(request, monkeypatch):
    """Each way the grader can isolate a submission: bubblewrap, and the fallback without it."""
    sandbox.detect.cache_clear()
    if request.param == sandbox.PROCESS:
        monkeypatch.setenv("MTA_SANDBOX", "process")
        monkeypatch.delenv("MTA_REQUIRE_SANDBOX", raising=False)
    elif sandbox._try_bwrap() and os.environ.get("MTA_REQUIRE_SANDBOX") != "1":
        pytest.skip(f"bubblewrap cannot run here ({sandbox._try_bwrap()}); `apt-get install bubblewrap`")
    yield request.param
    sandbox.detect.cache_clear()


def test_the_hostile_class_is_graded_exactly(tmp_path, capsys, isolation):
    root = _course(tmp_path)
    submissions, out = tmp_path / "submissions", tmp_path / "grades"
    want = _class(submissions, root, out)
    before = {p: p.read_bytes() for p in submissions.rglob("*") if p.is_file()}
    start = time.perf_counter()
    rc = classroom.main([str(submissions), "--lesson", "02", "--root", str(root), "--out", str(out),
                         "--cell-timeout", "4", "--notebook-timeout", "60", "--jobs", "2", "--memory-mb", "2048",
                         "--no-progress"])
    seconds = time.perf_counter() - start
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    report = json.loads((out / "grades.json").read_text(encoding="utf-8"))
    got = {s["student"]: s for s in report["students"]}
    with capsys.disabled():  # the table the issue asks for: attack -> points, status, time
        print(f"\nsandbox: {report['sandbox']}; {len(got)} submissions in {seconds:.1f} s")
        for name, s in got.items():
            row = {r["exercise"]: r for r in s["exercises"]}["2.2"]
            print(f"  {name:32} {s['total']:>2}/{s['max']}  2.2 {row['status']:34} {s['seconds']:5.1f} s")
    assert set(got) == set(want)
    wrong = []
    for name, (points, status, says) in want.items():
        rows = {r["exercise"]: r for r in got[name]["exercises"]}
        row = rows["2.2"] if name != "checks_edited" else next(r for r in got[name]["exercises"]
                                                               if r["status"] != "pass")
        problems = []
        if [rows[e]["points"] for e in ("2.1", "2.2", "2.3", "2.4")] != points:
            problems.append(f"points {[rows[e]['points'] for e in ('2.1', '2.2', '2.3', '2.4')]} != {points}")
        if row["status"] not in (status if isinstance(status, set) else {status}):
            problems.append(f"status {row['status']!r} != {status!r}")
        if says not in row["first_error"]:
            problems.append(f"first_error {row['first_error']!r} does not say {says!r}")
        if name not in ("checks_edited", "unreadable"):  # the attack costs its own exercise only
            problems += [f"{e} {rows[e]['status']}" for e in ("2.1", "2.3", "2.4") if rows[e]["status"] != "pass"]
        if name != "unreadable" and not (got[name]["sandbox"] == report["sandbox"] and
                                         len(got[name]["code_sha256"]) == 64 and
                                         got[name]["tests_sha256"] == report["tests_sha256"]):
            problems.append("no audit fields")
        if problems:
            wrong.append(f"{name}: {'; '.join(problems)} ({got[name]['notes']})")
    assert not wrong, "\n".join(wrong)
    assert got["checks_edited"]["integrity"] == {"ex-2.2-test_logsumexp_forward_is_stable": MODIFIED,
                                                 "ex-2.3-test_merge_with_empty_parts_is_exact": MODIFIED,
                                                 "ex-2.4-test_online_shapes_and_dtypes": MISSING}
    assert report["max"] == 11 and all(s["max"] == 11 for s in got.values())  # no invented check counts
    assert any("unsigned" in n for n in got["fake_result_records"]["notes"])
    assert report["sandbox"] == isolation
    # the outputs are the grader's alone, the submissions untouched, nothing left running
    assert sorted(p.name for p in out.iterdir()) == ["grades.csv", "grades.json"]
    with open(out / "grades.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 * len(want) and {r["student"] for r in rows} == set(want)
    assert {p: p.read_bytes() for p in submissions.rglob("*") if p.is_file()} == before
    assert not [p for p in Path("/proc").glob("[0-9]*") if _is_leftover(p)]
    assert seconds < 120, f"grading the hostile class took {seconds:.0f} s"


def _is_leftover(proc: Path) -> bool:
    try:
        cmdline = (proc / "cmdline").read_bytes()
    except OSError:
        return False
    return b"sleep\x00100" in cmdline or b"/mta-grade-" in cmdline and any(
        f"/mta-grade-{name}-".encode() in cmdline for name in HOSTILE)


def test_review_rejects_what_a_cheat_needs_and_accepts_ordinary_code():
    from minitorch_attn.course.extract import LIBRARY, REJECTED, review

    for src, why in [("import os", "imports os"), ("from minitorch_attn.course import checks", "imports from"),
                     ("x = getattr(np, 'all' + 'close')", "computed name"),
                     ("f = (lambda: 0).__globals__", "__globals__"), ("g = getattr", "passes getattr around"),
                     ("np.linalg.norm = abs", "changes np.linalg.norm"), ("np.x[0] = 1", "changes np.x")]:
        found, status = review(src, LESSON, known={"np"})
        assert status == REJECTED and why in found, (src, found, status)
    assert review("Softmax = ops.Softmax", LESSON, known={"ops"}) == ("takes Softmax from ops", LIBRARY)
    assert review("Softmax = ops.Softmax", LESSON, release=True, known={"ops"}) == ("", "")
    for ok in ("out[np.arange(3)] = 0", "def forward(ctx, input):\n    return input", "self.axis = axis",
               "y = getattr(ctx, 'axis', -1)"):
        assert review(ok, LESSON, known={"np"}) == ("", ""), ok
