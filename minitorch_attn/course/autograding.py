"""GitHub Classroom autograding: `.github/classroom/autograding.json`, generated from the catalog.

    python -m minitorch_attn course autograding          # write it (`course generate` does it too)
    python -m minitorch_attn course autograding --check  # exit 1 when it is stale (`course check` too)

One entry per visible graded test, worth that test's points (hidden tests never ship, so they have no
entry). Each entry runs

    python -m minitorch_attn course autograde ex-2.1-test_softmax_backward

which passes when the learner's code passes that graded test by either route: the pytest grader on
`exercises/lesson02_softmax.py`, or the same check in `handouts/lesson02_softmax.ipynb` (the notebook is
graded once per commit, in its own process with the grade-class limits, and the result cached under
out/classroom/). So the Classroom total equals the course's points whichever way a learner works.
The workflow `.github/workflows/classroom.yml` installs the course and runs the entries with GitHub's
`education/autograding` action.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import catalog
from .handout import official_checks

AUTOGRADING_PATH = ".github/classroom/autograding.json"
TIMEOUT_MINUTES = 10


def render(root: Path) -> str:
    tests = []
    for lesson in catalog.lessons():
        for t in official_checks(root, lesson):
            if t.hidden:
                continue
            points = int(t.points) if float(t.points).is_integer() else t.points
            tests.append({
                "name": f"{t.exercise} {t.name}",
                "setup": "",
                "run": f"python -m minitorch_attn course autograde {t.grade_id}",
                "input": "",
                "output": "",
                "comparison": "included",
                "timeout": TIMEOUT_MINUTES,
                "points": points,
            })
    return json.dumps({"tests": tests}, indent=2, ensure_ascii=False) + "\n"


def write(root: Path) -> tuple[str, str]:
    path = Path(root) / AUTOGRADING_PATH
    text = render(root)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return AUTOGRADING_PATH, "unchanged"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return AUTOGRADING_PATH, "wrote"


def check(root: Path) -> list[str]:
    path = Path(root) / AUTOGRADING_PATH
    fix = "run `python -m minitorch_attn course generate` (or `course autograding`)"
    if not path.is_file():
        return [f"{AUTOGRADING_PATH} is missing: {fix}"]
    if path.read_text(encoding="utf-8") != render(root):
        return [f"{AUTOGRADING_PATH} is stale (its entries differ from the catalog's graded tests): {fix}"]
    return []
