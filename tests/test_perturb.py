"""course/perturb.py and the perturbed check of `lessons build`: the perturbation really changes low-order
bits, a notebook that stores such bits is caught, and one that prints a stable claim passes."""

import os
import subprocess
import sys
import textwrap

from minitorch_attn.course import perturb


def test_perturbed_env_sets_every_perturbation_and_a_private_numba_cache():
    env = perturb.perturbed_env({"PATH": "/bin", "NUMBA_CACHE_DIR": "/host/cache"})
    assert all(env[k] == v for k, v in perturb.PERTURBED.items())
    assert env["PATH"] == "/bin", "the rest of the environment is kept"
    assert env["NUMBA_CACHE_DIR"] != "/host/cache", (
        "code compiled for another CPU must not reuse or overwrite the host's Numba cache")


def test_the_perturbation_changes_low_order_bits_here():
    host, pert = perturb.compare_checksums()
    assert host.keys() == pert.keys()
    changed = [k for k in host if host[k] != pert[k]]
    assert "numba fastmath dot" in changed, (
        f"LLVM for a generic x86-64 (128-bit vectors) must sum a fastmath dot in another order: {host} vs {pert}")


LESSON = """\
# %%
import numpy as np
from minitorch_attn.course.perturb import _fastmath_dot
x = np.random.default_rng(0).standard_normal(100_003).astype(np.float32)
s = _fastmath_dot(x, x[::-1].copy())
print({show})
"""


def _build(tmp_path, show):
    (tmp_path / "exercises").mkdir()
    (tmp_path / "lessons").mkdir()
    (tmp_path / "lessons" / "01_probe.py").write_text(textwrap.dedent(LESSON.format(show=show)))
    env = dict(os.environ, MTA_COURSE_ROOT=str(tmp_path))
    return subprocess.run([sys.executable, "-m", "minitorch_attn", "lessons", "build", "1"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)


def test_lessons_build_rejects_a_stored_output_that_prints_machine_dependent_bits(tmp_path):
    out = _build(tmp_path, "repr(s)")  # every bit of a fastmath reduction: differs under the perturbation
    assert (tmp_path / "lessons" / "01_probe.ipynb").exists(), out.stderr
    assert out.returncode != 0, "lessons build must fail when a stored output changes on another machine"
    assert "differs under perturbed numerics" in out.stderr and "NBVAL_IGNORE_OUTPUT" in out.stderr


def test_lessons_build_accepts_a_stable_claim(tmp_path):
    out = _build(tmp_path, "'sum is finite:', bool(np.isfinite(s)), abs(s) < 1e4")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
