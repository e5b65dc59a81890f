"""The check a handout's check cell runs: one graded test from `tests/exercises/`, on the notebook.

    from minitorch_attn.course.nbcheck import check
    check("2.1", "test_softmax_backward", globals())

runs `tests/exercises/test_lesson02_softmax.py::test_softmax_backward` with pytest, in this process, with the
notebook's namespace standing in for `exercises/lesson02_softmax.py` (the `impl` every graded test gets).
So a notebook check and `pytest tests/exercises` are the same test with the same teaching message; on
failure the cell raises `CheckFailed("<the first line pytest's grade table shows>\\n<details>")`.

The course folder is found as everywhere else (`targets.find_root`: $MTA_COURSE_ROOT when set; the grader
sets it to the instructor's checkout, whose test files hold the hidden tests too).
"""

from __future__ import annotations

import contextlib
import io
import os

import pytest

from . import catalog
from . import pytest_plugin as _plugin
from .targets import find_root

_AUTOLOAD = "PYTEST_DISABLE_PLUGIN_AUTOLOAD"


class CheckFailed(AssertionError):
    """A notebook check failed: the message is the graded test's (what was expected, what came back)."""


class NotebookNamespace:
    """A module-like view of a notebook's globals: its `__dict__` IS the globals dict, so reads and writes (a
    test's monkeypatch, and its undo) act on the notebook's own names, as they would on a module."""

    def __init__(self, namespace: dict):
        self.__dict__ = namespace

    def __getattr__(self, key):
        if key.startswith("__"):
            raise AttributeError(key)
        raise AttributeError(f"the notebook defines no {key!r} (run the cell that defines it)")

    def __repr__(self):
        return "<the notebook's namespace>"


class _Recorder:
    def __init__(self):
        self.items, self.failures, self.skips = 0, [], []

    def pytest_collection_finish(self, session):
        self.items = len(session.items)

    def pytest_runtest_logreport(self, report):
        if report.failed:
            crash = getattr(report.longrepr, "reprcrash", None)
            self.failures.append(crash.message if crash is not None else str(report.longrepr))
        elif report.skipped and report.when in ("setup", "call"):
            self.skips.append(str(report.longrepr))


def _safe_cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # a cell deleted the working directory
        return None


def run(exercise_id: str, test: str, namespace: dict) -> _Recorder:
    """Run one graded test on `namespace`; returns what was collected and how it failed."""
    ex = catalog.get(exercise_id)
    root = find_root()
    path = root / "tests" / "exercises" / f"test_{ex.stem}.py"
    if not path.is_file():
        raise CheckFailed(f"Exercise {ex.id}: the graded tests {path} are missing; restore tests/exercises from "
                          "the course release")
    impl = NotebookNamespace(namespace)
    real_load = _plugin.load

    def load(lesson, target="exercises", root=None):
        if catalog.lesson_stem(catalog.resolve_lesson(lesson)) == ex.stem:
            return impl
        return real_load(lesson, target, root)

    recorder = _Recorder()
    cwd = _safe_cwd()
    out = io.StringIO()
    autoload = os.environ.get(_AUTOLOAD)
    try:
        os.chdir(root)
        os.environ[_AUTOLOAD] = "1"  # only the course's plugin (from conftest.py): faster, and no surprises
        _plugin.load = load  # the `load_target` fixture resolves `load` when it is called
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            rc = pytest.main([f"{path}::{test}", "-q", "--tb=short", "--no-header", "-p", "no:cacheprovider",
                              "-p", "no:faulthandler", "-p", "no:doctest",
                              "-p", "no:junitxml", "-p", "no:pastebin", "--capture=sys", f"--rootdir={root}",
                              "--target=exercises"], plugins=[recorder])
    finally:
        _plugin.load = real_load
        if autoload is None:
            os.environ.pop(_AUTOLOAD, None)
        else:
            os.environ[_AUTOLOAD] = autoload
        if cwd is not None and os.path.isdir(cwd):
            os.chdir(cwd)
    if rc == pytest.ExitCode.INTERRUPTED:
        raise KeyboardInterrupt
    if rc in (pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR) or recorder.items == 0:
        raise CheckFailed(f"Exercise {ex.id}: could not run the graded test {test} from {path} (pytest exit "
                          f"code {int(rc)}); is this notebook from the same course release?\n{out.getvalue()}")
    return recorder


def check(exercise_id: str, test: str, namespace: dict) -> None:
    """Run graded test `test` of exercise `exercise_id` on the notebook's `namespace` (pass `globals()`);
    raise CheckFailed with the test's teaching message when it fails, print a line when it passes."""
    ex = catalog.get(exercise_id)
    if ex.name not in namespace:
        raise CheckFailed(f"Exercise {ex.id}: {ex.name} is not defined -- run the cell that defines it (above "
                          "this check), and fix the error it raised if it raised one")
    recorder = run(exercise_id, test, namespace)
    if recorder.failures:
        raise CheckFailed(recorder.failures[0]) from None
    if recorder.skips:  # as in the pytest grade table: a skipped test earns nothing
        raise CheckFailed(f"skipped: {recorder.skips[0]}")
    print(f"Exercise {ex.id}: {test} passed")
