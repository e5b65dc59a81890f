"""The graded tests name the mistake they see (issue 14): plant a plausible mistake in a solution, run the
graded test on it, and check that the failure carries that mistake's message, not a restated recipe.

Each case wraps the solution's own function (so everything but the mistake is right) and calls one graded
test function directly, with a namespace standing in for the `impl` fixture.
"""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path

import numpy as np
import pytest

from minitorch_attn import course
from minitorch_attn import functional as F
from minitorch_attn.autograd import ops
from minitorch_attn.autograd.fused import Softmax
from minitorch_attn.course.targets import load

pytestmark = pytest.mark.skipif(course.is_release(), reason="needs the solutions, which a student release lacks")

ROOT = Path(__file__).resolve().parents[1]


def graded_tests(stem: str) -> types.ModuleType:
    """tests/exercises/test_<stem>.py, imported by path (the folder is not a package)."""
    path = ROOT / "tests" / "exercises" / f"test_{stem}.py"
    spec = importlib.util.spec_from_file_location(f"mta_graded_mistakes.{stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def planted(stem: str, **mistakes) -> types.SimpleNamespace:
    """The solutions of lesson `stem` with the named definitions replaced."""
    solution = load(stem, "solutions", ROOT)
    impl = types.SimpleNamespace(**{k: getattr(solution, k) for k in dir(solution) if not k.startswith("__")})
    for name, value in mistakes.items():
        setattr(impl, name, value)
    return impl


def fails_with(test, impl, message: str) -> None:
    with pytest.raises(AssertionError) as info:
        test(impl)
    first = str(info.value).splitlines()[0]
    assert message in first, f"expected the hint {message!r}; the failure said: {first}"


def test_attend_mistakes():
    s05, t05 = load("lesson05_scaled_dot_product", "solutions", ROOT), graded_tests("lesson05_scaled_dot_product")

    def over_queries(q, k, v, mask, scale):
        w = F.softmax(ops.matmul(q, k.transpose(-2, -1)) * scale, axis=-2)
        return ops.matmul(w, v), w

    cases = {"multiply the scores by `scale`": lambda q, k, v, mask, scale: s05.attend(q, k, v, mask, 1.0),
             "multiply by it, do not divide": lambda q, k, v, mask, scale: s05.attend(q, k, v, mask, 1 / scale),
             "not over the queries": over_queries}
    for message, wrong in cases.items():
        fails_with(t05.test_attend_without_mask, planted("lesson05_scaled_dot_product", attend=wrong), message)


def test_rope_and_hopfield_mistakes():
    t06 = graded_tests("lesson06_multihead")

    def rope(sign=1.0, step=2, shift=True):
        def apply_rope(x, offset=0, base=10000.0):
            n, d = x.shape[-2], x.shape[-1]
            pos = (offset if shift else 0) + np.arange(n)
            angle = sign * pos[:, None] * base ** (-step * np.arange(d // 2) / d)
            c, s = np.cos(angle), np.sin(angle)
            x1, x2 = x[..., : d // 2], x[..., d // 2 :]
            return ops.cat([x1 * c - x2 * s, x1 * s + x2 * c], axis=-1)
        return apply_rope

    for message, wrong in {"turns the wrong way": rope(sign=-1.0), "base ** (-2i / d)": rope(step=1),
                           "positions start at `offset`": rope(shift=False)}.items():
        fails_with(t06.test_rope_matches_the_rotation, planted("lesson06_multihead", apply_rope=wrong), message)

    s07, t07 = load("lesson07_hopfield", "solutions", ROOT), graded_tests("lesson07_hopfield")
    no_beta = planted("lesson07_hopfield", hopfield_update=lambda X, xi, beta=1.0, steps=1, tol=None,
                      return_weights=False: s07.hopfield_update(X, xi, 1.0, steps, tol, return_weights))
    fails_with(t07.test_update_matches_the_formula, no_beta, "multiply the scores by beta BEFORE the softmax")
    no_log_n = planted("lesson07_hopfield", hopfield_energy=lambda X, xi, beta=1.0: s07.hopfield_energy(X, xi, beta)
                       - np.log(np.shape(X)[-2]) / beta)
    fails_with(t07.test_energy_matches_the_formula, no_log_n, "the constant log(N) / beta")


def test_sparse_graph_and_flash_mistakes():
    t13 = graded_tests("lesson13_sparse_attention")
    fails_with(t13.test_sparsemax_forward, planted("lesson13_sparse_attention", Sparsemax=Softmax), "this is a softmax")

    s15, t15 = load("lesson15_graphs_and_sets", "solutions", ROOT), graded_tests("lesson15_graphs_and_sets")
    swapped = planted("lesson15_graphs_and_sets", gat_attention=lambda wh, a_dst, a_src, adj, negative_slope=0.2:
                      s15.gat_attention(wh, a_src, a_dst, adj, negative_slope))
    fails_with(t15.test_gat_attention_matches_the_formula, swapped, "a_dst and a_src are swapped")

    s10, t10 = load("lesson10_flash_cpu", "solutions", ROOT), graded_tests("lesson10_flash_cpu")

    def no_scale(q, k, v, o, lse, do, scale=None, **kwargs):
        dq, dk, dv = s10.flash_backward_tiled(q, k, v, o, lse, do, scale=scale, **kwargs)
        scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
        return dq / scale, dk / scale, dv

    fails_with(t10.test_backward_on_awkward_shapes, planted("lesson10_flash_cpu", flash_backward_tiled=no_scale),
               "missing the factor `scale`")
