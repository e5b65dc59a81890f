"""Handout notebooks: `handouts/lessonNN_topic.ipynb`, generated from the same single source as
`exercises/lessonNN_topic.py`, and the grading copy of a learner's notebook.

    python -m minitorch_attn course handout          # write handouts/ (`course generate` does it too)
    python -m minitorch_attn course handout --check  # exit 1 when a handout is stale (`course check` too)

A handout holds, for each exercise of the lesson, a markdown cell (title, points, hint), a code cell with
the stub (the same text as the exercise's definition in exercises/lessonNN_*.py, with its `### YOUR CODE
HERE` blocks), then one check cell per graded test of that exercise. A check cell calls
`minitorch_attn.course.nbcheck.check(exercise, test, globals())`, which runs that very test from
`tests/exercises/test_lessonNN_*.py` (the pytest grader) with the notebook's namespace as the
implementation: the same checks and the same teaching messages, written once.

Check cells carry nbgrader-style metadata

    nbgrader:       {grade: true, grade_id: "ex-2.1-<test name>", points: 1, locked: true, solution: false}
    minitorch_attn: {exercise: "2.1", test: "<test name>", role: "check", checksum: "<sha256>"}

and code cells `{grade: false, grade_id: "ex-2.1-code", solution: true, locked: false}`. The checksum covers
the cell's grade_id, points and source, so the grader can tell a check a learner edited.

Graded tests are read from the test files with `ast` (nothing is imported): every function (or method of a
`Test*` class) decorated with `@pytest.mark.exercise(id, points=p)`; one parametrised with a literal list of
k cases is worth k * p. Tests between `### BEGIN HIDDEN TESTS` / `### END HIDDEN TESTS` lines are hidden:
they get no cell in the handout, and `grading_notebook` adds their check cells to the grading copy only.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import catalog
from .generate import GENERATE_COMMAND
from .source import (
    BEGIN_HIDDEN,
    END_HIDDEN,
    SourceError,
    format_imports,
    imports_for,
    is_marker,
    library_dir,
    read_definition,
    stub_definition,
)
from .source import parse as parse_python

HANDOUT_DIR = "handouts"
HANDOUT_COMMAND = "python -m minitorch_attn course handout"
NBGRADER_SCHEMA = 3
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


# ---- graded tests, read from the test files ------------------------------------------------------------
@dataclass(frozen=True)
class GradedTest:
    exercise: str  # "2.1"
    name: str  # "test_softmax_backward" or "TestX::test_y"
    points: float  # marker points times the number of parametrised cases
    hidden: bool
    line: int

    @property
    def grade_id(self) -> str:
        return f"ex-{self.exercise}-{self.name}"


def test_file(root: Path, lesson: str) -> Path:
    return Path(root) / "tests" / "exercises" / f"test_{catalog.lesson_stem(lesson)}.py"


def _hidden_ranges(lines: list[str]) -> list[tuple[int, int]]:
    ranges, start = [], None
    for i, line in enumerate(lines, start=1):
        if is_marker(line, BEGIN_HIDDEN):
            start = i
        elif is_marker(line, END_HIDDEN) and start is not None:
            ranges.append((start, i))
            start = None
    if start is not None:
        ranges.append((start, len(lines) + 1))
    return ranges


def _is_mark(node, name: str) -> bool:
    """`node` is `pytest.mark.<name>(...)` or `mark.<name>(...)`."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == name):
        return False
    owner = node.func.value
    return (isinstance(owner, ast.Attribute) and owner.attr == "mark") or \
        (isinstance(owner, ast.Name) and owner.id == "mark")


def _cases(dec: ast.Call, where: str) -> int:
    if len(dec.args) < 2:
        raise SourceError(f"{where}: parametrize needs its cases as the second argument")
    try:
        values = ast.literal_eval(dec.args[1])
    except ValueError:
        raise SourceError(f"{where}: a graded test's parametrize cases must be a literal list (so a handout "
                          "knows how many points its check cell is worth)") from None
    return len(values)


def graded_tests(root: Path, lesson: str) -> list[GradedTest]:
    """The graded tests of `lesson` (hidden ones included), in file order."""
    path = test_file(root, lesson)
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    tree = parse_python(text, filename=str(path))
    hidden = _hidden_ranges(text.splitlines())
    functions = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            functions.append((node.name, node))
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            functions.extend((f"{node.name}::{f.name}", f) for f in node.body
                             if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.name.startswith("test"))
    out = []
    for name, node in functions:
        where = f"{path.name}:{node.lineno}"
        marks = [d for d in node.decorator_list if _is_mark(d, "exercise")]
        if not marks:
            continue
        mark = marks[0]
        try:
            ex_id = str(ast.literal_eval(mark.args[0]) if mark.args else
                        ast.literal_eval(next(k.value for k in mark.keywords if k.arg == "id")))
            points_node = mark.args[1] if len(mark.args) > 1 else next(k.value for k in mark.keywords
                                                                        if k.arg == "points")
            points = float(ast.literal_eval(points_node))
        except (StopIteration, ValueError) as e:
            raise SourceError(f"{where}: cannot read the exercise marker of {name} ({e})") from None
        cases = 1
        for d in node.decorator_list:
            if _is_mark(d, "parametrize"):
                cases *= _cases(d, where)
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        is_hidden = any(lo < first < hi for lo, hi in hidden)
        out.append(GradedTest(ex_id, name, points * cases, is_hidden, first))
    return out


# ---- cells ------------------------------------------------------------------------------------------------
def _num(x: float):
    return int(x) if float(x).is_integer() else x


def _points(p: float) -> str:
    return f"{_num(p)} point" + ("" if p == 1 else "s")


def checksum(grade_id: str, points, source: str) -> str:
    """What a check cell's integrity rests on: its grade_id, points and source text."""
    blob = json.dumps({"grade_id": grade_id, "points": _num(float(points)), "source": source}, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _cell_id(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]", "-", text)
    if len(slug) > 64:
        slug = slug[:55] + "-" + hashlib.sha1(text.encode()).hexdigest()[:8]
    return slug


def _markdown(source: str, cell_id: str) -> dict:
    return {"cell_type": "markdown", "id": _cell_id(cell_id), "metadata": {}, "source": source}


def _code(source: str, cell_id: str, metadata: dict) -> dict:
    return {"cell_type": "code", "execution_count": None, "id": _cell_id(cell_id), "metadata": metadata,
            "outputs": [], "source": source}


def check_source(test: GradedTest) -> str:
    return "\n".join([
        f"# Check: Exercise {test.exercise}, {test.name} ({_points(test.points)}).",
        "# Locked: grading puts back the official version of this cell; an edited check earns no points.",
        "from minitorch_attn.course.nbcheck import check",
        "",
        f"check({test.exercise!r}, {test.name!r}, globals())",
    ])


def check_cell(test: GradedTest) -> dict:
    source = check_source(test)
    meta = {
        "nbgrader": {"grade": True, "grade_id": test.grade_id, "locked": True, "points": _num(test.points),
                     "schema_version": NBGRADER_SCHEMA, "solution": False, "task": False},
        "minitorch_attn": {"checksum": checksum(test.grade_id, test.points, source), "exercise": test.exercise,
                           "role": "check", "test": test.name},
    }
    if test.hidden:
        meta["minitorch_attn"]["hidden"] = True
    return _code(source, test.grade_id, meta)


def code_grade_id(exercise_id: str) -> str:
    return f"ex-{exercise_id}-code"


def _cuda_note(exercises) -> str:
    if not any(e.file for e in exercises):
        return ""
    return ("\n\nThe CUDA C exercises are raw strings of CUDA C: write between `// YOUR CODE HERE` and "
            "`// END YOUR CODE`\n(the stub's comment lines may stay). The checks put each string back into its "
            ".cu file, compile it\nfor the CPU harness (g++) and run it; no GPU needed.")


def _intro(lesson: str, exercises, tests) -> str:
    number = lesson.split("_")[0]
    stem = catalog.lesson_stem(lesson)
    total = sum(t.points for t in tests if not t.hidden)
    rows = "\n".join(f"| {e.id} | `{e.name}` | {e.title.split(': ', 1)[-1]} | "
                     f"{_num(sum(t.points for t in tests if t.exercise == e.id and not t.hidden))} |"
                     for e in exercises)
    return f"""# Lesson {number} — {catalog.LESSONS.get(lesson, lesson)}: exercises

Complete each code cell between its `### YOUR CODE HERE` and `### END YOUR CODE` lines, replacing the
`raise NotImplementedError(...)`, then run the check cells below it: a failing check says what it expected,
what came back and the likely mistake. These are the same graded tests as
`pytest tests/exercises/test_{stem}.py`, run on the functions this notebook defines.

The check cells are locked: grading puts back their official version, and an edited or deleted check earns
no points. Your instructor may add hidden checks at grading time.{_cuda_note(exercises)}

| exercise | definition | what | points |
|---|---|---|---|
{rows}

{_points(total)} in all. Generated by `{GENERATE_COMMAND}` from the library source; do not edit the
check cells."""


def _setup_source(lesson: str, package_dir: Path) -> str:
    definitions = [read_definition(e, package_dir) for e in catalog.for_lesson(lesson)]
    imports = [line for line in format_imports(imports_for(definitions, package_dir))
               if line != "from __future__ import annotations"]
    while imports and not imports[0]:
        imports.pop(0)
    # as in exercises/*.py: the stubs keep every import the solutions use and name what learners define
    return "\n".join(["# ruff: noqa: F401, F821, F841",
                      "# Setup: the imports the exercises use. Run this cell first.", *imports])


@dataclass
class Handout:
    lesson: str
    notebook: dict
    hidden: list[GradedTest] = field(default_factory=list)

    @property
    def relpath(self) -> str:
        return f"{HANDOUT_DIR}/{catalog.lesson_stem(self.lesson)}.ipynb"

    def text(self) -> str:
        return json.dumps(self.notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def build_handout(root: Path, lesson: str) -> Handout:
    """The handout notebook of `lesson` from the library under `root` (else the installed one) and the graded
    tests in root/tests/exercises; `hidden` lists the hidden tests, which get no cell here."""
    root = Path(root)
    package_dir = library_dir(root)
    exercises = catalog.for_lesson(lesson)
    if not exercises:
        raise SourceError(f"lesson {lesson!r} has no exercises in the catalog")
    tests = graded_tests(root, lesson)
    known = {e.id for e in exercises}
    stray = sorted({t.exercise for t in tests} - known)
    if stray:
        raise SourceError(f"{test_file(root, lesson).name}: graded tests for exercises {stray}, which are not in "
                          f"lesson {lesson}")
    cells = [_markdown(_intro(lesson, exercises, tests), "intro"),
             _code(_setup_source(lesson, package_dir), "setup",
                   {"nbgrader": {"grade": False, "grade_id": "setup", "locked": True,
                                 "schema_version": NBGRADER_SCHEMA, "solution": False, "task": False},
                    "minitorch_attn": {"role": "setup"}})]
    for ex in exercises:
        mine = [t for t in tests if t.exercise == ex.id]
        visible = [t for t in mine if not t.hidden]
        d = read_definition(ex, package_dir)
        cells.append(_markdown(
            f"## Exercise {ex.id} — {ex.title} ({_points(sum(t.points for t in visible))})\n\n"
            f"Hint: {ex.hint}.", f"ex-{ex.id}-title"))
        cells.append(_code("\n".join(stub_definition(d)), code_grade_id(ex.id), {
            "nbgrader": {"grade": False, "grade_id": code_grade_id(ex.id), "locked": False,
                         "schema_version": NBGRADER_SCHEMA, "solution": True, "task": False},
            "minitorch_attn": {"exercise": ex.id, "role": "code"}}))
        cells.extend(check_cell(t) for t in visible)
    notebook = {
        "cells": cells,
        "metadata": {
            "kernelspec": KERNELSPEC,
            "language_info": {"name": "python"},
            "minitorch_attn": {"generated_by": HANDOUT_COMMAND, "lesson": lesson},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return Handout(lesson, notebook, [t for t in tests if t.hidden])


def lessons_with_handouts() -> list[str]:
    return catalog.lessons()


def write_handouts(root: Path) -> list[tuple[str, str]]:
    """Write handouts/ under `root`; [(relpath, "wrote" | "unchanged")]."""
    report = []
    for lesson in lessons_with_handouts():
        h = build_handout(root, lesson)
        path = Path(root) / h.relpath
        text = h.text()
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            report.append((h.relpath, "unchanged"))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        report.append((h.relpath, "wrote"))
    return report


def check_handouts(root: Path) -> list[str]:
    """Problems that make handouts/ stale under `root` (empty: fresh)."""
    root = Path(root)
    problems, fix = [], f"run `{GENERATE_COMMAND}` (or `{HANDOUT_COMMAND}`)"
    expected = set()
    for lesson in lessons_with_handouts():
        try:
            h = build_handout(root, lesson)
        except SourceError as e:
            problems.append(f"handout for lesson {lesson}: {e}")
            continue
        expected.add(h.relpath)
        path = root / h.relpath
        if not path.is_file():
            problems.append(f"{h.relpath} is missing: {fix}")
        elif path.read_text(encoding="utf-8") != h.text():
            problems.append(f"{h.relpath} is stale (it differs from what the catalog, the library and "
                            f"tests/exercises generate): {fix}")
    folder = root / HANDOUT_DIR
    if folder.is_dir():
        for path in sorted(folder.glob("lesson*.ipynb")):
            if f"{HANDOUT_DIR}/{path.name}" not in expected:
                problems.append(f"{HANDOUT_DIR}/{path.name} is not generated from any catalog lesson: delete it")
    return problems


# ---- the grading copy --------------------------------------------------------------------------------------
MODIFIED = "check cell modified"
MISSING = "check cell missing"


@dataclass
class Integrity:
    """What the grader found about each official check: {grade_id: MODIFIED | MISSING}."""

    problems: dict[str, str] = field(default_factory=dict)
    duplicates: int = 0


def _meta(cell, key: str) -> dict:
    value = (cell.get("metadata") or {}).get(key)
    return value if isinstance(value, dict) else {}


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def grading_notebook(submission: dict, checks: list[GradedTest]) -> tuple[dict, Integrity]:
    """The copy of a learner's notebook that the grader runs, and what its integrity check found.

    `checks` are the official checks (`official_checks`: the visible ones, whose cells the handout has, and
    the hidden ones). Every cell whose nbgrader grade_id names a visible check is replaced by the official
    cell (if its grade_id, points or source changed, the check is marked "check cell modified": it still
    runs, so the rest of the notebook behaves as designed, but earns no points). A visible check with no
    cell is "check cell missing" and is not run. Hidden checks are inserted after the exercise's last check
    (or its code cell). Other cells are kept, outputs cleared; repeated copies of a check cell are dropped.
    Needs no library source: check cells follow from the graded tests alone (so it works in a release)."""
    official = {t.grade_id: check_cell(t) for t in checks if not t.hidden}
    integrity = Integrity()
    seen: set[str] = set()
    cells = []
    for cell in submission.get("cells", []):
        if not isinstance(cell, dict):
            continue
        grade_id = _meta(cell, "nbgrader").get("grade_id")
        if grade_id in official:
            if grade_id in seen:
                integrity.duplicates += 1
                continue
            seen.add(grade_id)
            want = official[grade_id]
            got = checksum(grade_id, _meta(cell, "nbgrader").get("points", -1), _source(cell))
            if cell.get("cell_type") != "code" or got != want["metadata"]["minitorch_attn"]["checksum"]:
                integrity.problems[grade_id] = MODIFIED
            cells.append(copy.deepcopy(want))
            continue
        cell = copy.deepcopy(cell)
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
            nbg = _meta(cell, "nbgrader")
            if nbg.get("grade"):  # a cell dressed up as a check that is not an official one: never graded
                cell["metadata"]["nbgrader"] = {**nbg, "grade": False}
        cells.append(cell)
    for grade_id in official:
        if grade_id not in seen:
            integrity.problems[grade_id] = MISSING
    for test in (t for t in checks if t.hidden):
        ex = test.exercise
        anchor = -1
        for i, c in enumerate(cells):
            if _meta(c, "minitorch_attn").get("exercise") == ex or \
                    _meta(c, "nbgrader").get("grade_id") == code_grade_id(ex):
                anchor = i
        cells.insert(anchor + 1 if anchor >= 0 else len(cells), check_cell(test))
    notebook = {k: copy.deepcopy(v) for k, v in submission.items() if k != "cells"}
    notebook.update(cells=cells, nbformat=4, nbformat_minor=max(5, int(notebook.get("nbformat_minor") or 5)))
    metadata = notebook.get("metadata") if isinstance(notebook.get("metadata"), dict) else {}
    notebook["metadata"] = {**metadata, "kernelspec": KERNELSPEC}
    return notebook, integrity


def official_checks(root: Path, lesson: str) -> list[GradedTest]:
    """Every check a grade counts for `lesson` -- the visible ones (a cell each in the handout) and the hidden
    ones -- in catalog order, from root/tests/exercises."""
    order = {e.id: i for i, e in enumerate(catalog.EXERCISES)}
    return sorted(graded_tests(root, lesson), key=lambda t: (order.get(t.exercise, 1 << 30), t.hidden))


def solved_notebook(root: Path, lesson: str) -> dict:
    """The handout with every code cell holding the library's own definition (the model answer): what
    `pytest --nbval-lax` passes on, and the fully correct submission of the tests' fake class."""
    handout = build_handout(root, lesson)
    package_dir = library_dir(Path(root))
    notebook = copy.deepcopy(handout.notebook)
    for cell in notebook["cells"]:
        meta = _meta(cell, "minitorch_attn")
        if meta.get("role") == "code":
            cell["source"] = read_definition(catalog.get(meta["exercise"]), package_dir).text.rstrip("\n")
    return notebook
