"""The course's pytest plugin (loaded by the root `conftest.py`).

    pytest tests/exercises                         # grade exercises/ (default: $MTA_TARGET, else exercises)
    pytest tests/exercises --target=solutions      # grade solutions/
    pytest tests/exercises --grade-json grades.json

Graded tests are marked `@pytest.mark.exercise("1.2", points=1)` and get the target's lesson module from
the `load_target` fixture:

    @pytest.fixture(scope="module")
    def impl(load_target):
        return load_target("lesson01_autograd")

A marker naming an exercise that is not in the catalog, or without positive points, stops the run at
collection (a usage error). When graded tests ran, the terminal summary ends with the grade table.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import catalog
from .grading import format_table, summarise
from .targets import TARGETS, CourseRootNotFound, find_root, load

_KEY = "mta_course_grades"


def pytest_addoption(parser):
    group = parser.getgroup("minitorch_attn", "minitorch_attn course")
    group.addoption("--target", choices=TARGETS, default=None,
                    help="which lesson files the graded tests load: exercises (your code) or solutions "
                         "(default: $MTA_TARGET, else exercises)")
    group.addoption("--grade-json", metavar="PATH", default=None,
                    help="write the grade report (points per exercise and per test) as JSON to PATH")
    group.addoption("--course-root", metavar="DIR", default=None,
                    help="the course folder holding exercises/ and solutions/ (default: found automatically)")


def selected_target(config) -> str:
    target = config.getoption("--target") or os.environ.get("MTA_TARGET") or "exercises"
    if target not in TARGETS:
        raise pytest.UsageError(f"MTA_TARGET={target!r}: expected one of {', '.join(TARGETS)}")
    return target


def pytest_configure(config):
    config.addinivalue_line("markers",
                            "exercise(id, points): a graded test for exercise `id`, worth `points`")
    target = selected_target(config)
    if target == "solutions":
        try:
            root = find_root(config.getoption("--course-root"))
        except CourseRootNotFound as e:
            raise pytest.UsageError(f"--target=solutions: {e}") from None
        if not (root / "solutions").is_dir():
            raise pytest.UsageError(
                f"--target=solutions: there is no solutions/ folder in {root}. A student release ships "
                "without solutions; grade your own code with --target=exercises (the default)."
            )
    config.pluginmanager.register(GradeRecorder(config, target), _KEY)


def pytest_collection_modifyitems(config, items):
    """A lesson notebook whose optional package is missing (lesson 17 without the `pretrained` extra) is
    skipped under nbval, saying how to install it, instead of failing on its first import."""
    from ..tour import missing_module

    reasons = {}
    for item in items:
        path = Path(str(item.fspath))
        if path.suffix == ".ipynb" and path.parent.name == "lessons":
            if path.stem not in reasons:
                reasons[path.stem] = missing_module(path.stem)
            if reasons[path.stem]:
                item.add_marker(pytest.mark.skip(reason=reasons[path.stem]))


@pytest.fixture(scope="session")
def course_target(pytestconfig) -> str:
    """"exercises" or "solutions": what the graded tests load."""
    return selected_target(pytestconfig)


@pytest.fixture(scope="session")
def load_target(pytestconfig):
    """A function lesson -> the target's module for that lesson (e.g. exercises/lesson01_autograd.py)."""
    target = selected_target(pytestconfig)
    root = pytestconfig.getoption("--course-root")

    def _load(lesson: str):
        return load(lesson, target, root)

    return _load


def exercise_mark(item) -> tuple[str, float] | None:
    """(exercise id, points) from the item's `exercise` marker; None for an ungraded test.

    Raises ValueError describing a malformed marker."""
    marks = list(item.iter_markers("exercise"))
    if not marks:
        return None
    if len(marks) > 1:
        raise ValueError("more than one exercise marker: a test grades exactly one exercise")
    mark = marks[0]
    ex_id = mark.args[0] if mark.args else mark.kwargs.get("id")
    points = mark.args[1] if len(mark.args) > 1 else mark.kwargs.get("points")
    if ex_id is None:
        raise ValueError("the exercise marker needs an id: @pytest.mark.exercise(\"1.2\", points=1)")
    try:
        catalog.get(str(ex_id))
    except KeyError as e:
        raise ValueError(str(e.args[0])) from None
    if isinstance(points, bool) or not isinstance(points, (int, float)) or points <= 0:
        raise ValueError(f"exercise {ex_id}: points must be a positive number; got {points!r}")
    return str(ex_id), float(points)


@dataclass
class _Test:
    nodeid: str
    exercise: str
    points: float
    outcome: str = "not run"
    message: str = ""


def _first_line(report) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else ""


class GradeRecorder:
    def __init__(self, config, target: str):
        self.config, self.target = config, target
        self.tests: dict[str, _Test] = {}

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session, config, items):
        problems = []
        for item in items:
            try:
                exercise_mark(item)
            except ValueError as e:
                problems.append(f"{item.nodeid}: {e}")
        if problems:
            known = ", ".join(e.id for e in catalog.EXERCISES)
            raise pytest.UsageError(f"bad exercise markers (known ids: {known}):\n  " + "\n  ".join(problems))

    def pytest_collection_finish(self, session):
        for item in session.items:
            mark = exercise_mark(item)
            if mark is not None:
                self.tests[item.nodeid] = _Test(item.nodeid, *mark)

    def pytest_runtest_logreport(self, report):
        test = self.tests.get(report.nodeid)
        if test is None:
            return
        if report.when == "call":
            test.outcome = "passed" if report.passed else "skipped" if report.skipped else "failed"
        elif report.failed:
            test.outcome = "error"
        elif report.skipped and report.when == "setup":
            test.outcome = "skipped"
        if report.failed and not test.message:
            test.message = _first_line(report)
        elif report.skipped and not test.message and report.when in ("setup", "call"):
            test.message = "skipped: " + _first_line(report)

    def report(self) -> dict:
        tests = [{"nodeid": t.nodeid, "exercise": t.exercise, "points": t.points, "outcome": t.outcome,
                  "message": t.message} for t in self.tests.values()]
        return summarise(self.target, tests)

    def pytest_sessionfinish(self, session, exitstatus):
        path = self.config.getoption("--grade-json")
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(json.dumps(self.report(), indent=2) + "\n", encoding="utf-8")

    def pytest_terminal_summary(self, terminalreporter):
        if not self.tests or all(t.outcome == "not run" for t in self.tests.values()):
            return
        terminalreporter.section(f"grades (target: {self.target})")
        terminalreporter.write_line(format_table(self.report()))
