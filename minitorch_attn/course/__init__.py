"""The course machinery: exercises generated from the library, grading, a student release.

One source of truth. Each graded exercise is a top-level function or class of the library (listed in
`catalog.py`) whose body holds blocks between the lines `### BEGIN SOLUTION` / `### END SOLUTION` (the
nbgrader convention). From those definitions:

    python -m minitorch_attn course generate   exercises/lessonNN_*.py (stubs) and solutions/lessonNN_*.py
    python -m minitorch_attn course check      fails when either is stale (learners' edits inside their
                                               `### YOUR CODE HERE` blocks are ignored)
    python -m minitorch_attn course grade      runs tests/exercises on a target, prints a points table and
                                               writes grades.json for a learning-management system
    python -m minitorch_attn course verify     every graded test fails on the stubs and passes on the
                                               solutions (the CI proof that the tests grade something)
    python -m minitorch_attn course release D  a student copy in D: no solutions/, the library's solution
                                               blocks replaced by raises, the library runs on exercises/

Graded tests (`tests/exercises/`) are marked `@pytest.mark.exercise("1.2", points=1)`; an exercise's
points are the sum of its tests' points and must equal the catalog's. They test the target's definitions
(`load_target("lesson01_autograd")`, a fixture of the pytest plugin), choosing the target with
`pytest --target=exercises|solutions` (default: $MTA_TARGET, else exercises).

CUDA C exercises (lesson 11) work the same way from a `.cu` file's `// BEGIN SOLUTION` / `// END SOLUTION`
blocks: the generated files hold each such function as a raw string, and the graded tests compile and run it on
the CPU harness (source.py, cuda_checks.py).

Hidden tests (nbgrader's idea): lines of a test file between `### BEGIN HIDDEN TESTS` and
`### END HIDDEN TESTS` run for the instructor and are removed from the student release.

In Python:

    import minitorch_attn as mta
    mta.course.use("exercises")          # the library runs on your code (as in minitorch)
    mta.course.use("library")            # and back
    impl = mta.course.load("01")         # exercises/lesson01_autograd.py as a module
"""

from __future__ import annotations

from . import catalog
from .catalog import EXERCISES, LESSONS, Exercise
from .targets import (
    CourseRootNotFound,
    Selection,
    activate_release,
    current,
    find_root,
    is_release,
    load,
    original,
    use,
)

__all__ = [
    "EXERCISES", "LESSONS", "CourseRootNotFound", "Exercise", "Selection", "activate_release", "catalog",
    "current", "find_root", "is_release", "load", "original", "use",
]
