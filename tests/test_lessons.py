"""The lesson notebooks are fresh copies of their .py sources, executed; the tour runs them headless."""

import subprocess
import sys

from minitorch_attn.course.notebooks import check
from minitorch_attn.course.targets import find_root


def test_notebooks_are_fresh_and_executed():
    problems = check(find_root())
    assert not problems, "stored notebooks are out of date:\n" + "\n".join(problems)


def test_tour_runs_a_lesson_and_writes_its_figures(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "minitorch_attn", "tour", "--lesson", "02", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, f"the tour failed:\n{proc.stdout}\n{proc.stderr}"
    assert "02_softmax" in proc.stdout and "ok" in proc.stdout, proc.stdout
    figures = sorted(tmp_path.glob("02_softmax_*.png"))
    assert len(figures) >= 2, f"lesson 02 shows two figures; the tour saved {[f.name for f in figures]}"
    assert all(f.stat().st_size > 5000 for f in figures), "a saved figure is suspiciously small (blank?)"
