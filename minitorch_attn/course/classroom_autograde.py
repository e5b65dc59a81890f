"""One graded check for GitHub Classroom (`python -m minitorch_attn course autograde ex-2.1-test_...`): passed
by either route, the pytest grader on exercises/ or the check in handouts/ graded as grade-class does."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from . import catalog
from .classroom_run import Options
from .classroom_status import PASS
from .classroom_submissions import Submission
from .classroom_verdict import Graded, grade_submission
from .handout import official_checks

_GRADE_ID = re.compile(r"^ex-([0-9]+\.[0-9]+)-(.+)$")


def graded_notebook_cached(notebook: Path, lesson: str, opts: Options, cache_dir: Path) -> Graded:
    """Grade one notebook (as grade-class does), caching the result by the notebook's content."""
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
