"""`gradcheck`: compare backward's gradients with central finite differences, in float64.

For a function f of tensors x_1..x_k with any output shape, pick a fixed random weight w of the output
shape and check the gradient of the scalar L = sum(w * f(x)):

    analytic:  backward() on L
    numeric:   (L(x + eps e_i) - L(x - eps e_i)) / (2 eps), one coordinate i at a time

A random w (not ones) catches backward rules that are only right on average.
"""

from __future__ import annotations

import numpy as np

from .tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    pass


def _scalar(fn, inputs, weights):
    out = fn(*inputs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    total = 0.0
    for o, w in zip(outs, weights):
        total = total + (o * w).sum() if isinstance(o, Tensor) else total
    return total


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-4, seed: int = 0,
              raise_exception: bool = True) -> bool:
    """Check `fn(*inputs)`'s backward against central differences for every input that requires grad.

    All floating inputs must be float64: in float32 the finite differences themselves are wrong in the
    third digit. Returns True, or raises GradcheckError naming the input, the worst element, and both values.
    """
    inputs = list(inputs)
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.dtype.kind == "f" and x.dtype != np.float64:
            raise TypeError(f"gradcheck needs float64 inputs; input {i} of shape {x.shape} is {x.dtype} "
                            "(use .double() or build it with dtype=np.float64)")
    targets = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not targets:
        raise ValueError("gradcheck: no input has requires_grad=True, so there is nothing to check")
    rng = np.random.default_rng(seed)
    with no_grad():
        out = fn(*inputs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    weights = [rng.standard_normal(o.shape) if isinstance(o, Tensor) else None for o in outs]

    for i in targets:
        inputs[i].grad = None
    loss = _scalar(fn, inputs, weights)
    loss.backward()
    for i in targets:
        x = inputs[i]
        analytic = np.zeros_like(x.data) if x.grad is None else x.grad
        original = x.data
        x.data = np.array(original, order="C")  # a writable, contiguous copy (the input may be a view)
        flat = x.data.reshape(-1)  # a view: editing it edits x.data
        numeric = np.zeros(x.shape)
        try:
            with no_grad():
                for j in range(flat.size):
                    old = flat[j]
                    flat[j] = old + eps
                    plus = _scalar(fn, inputs, weights).item()
                    flat[j] = old - eps
                    minus = _scalar(fn, inputs, weights).item()
                    flat[j] = old
                    numeric.reshape(-1)[j] = (plus - minus) / (2 * eps)
        finally:
            x.data = original
        bad = ~np.isclose(analytic, numeric, atol=atol, rtol=rtol)
        if bad.any():
            worst = np.unravel_index(np.argmax(np.abs(analytic - numeric)), analytic.shape)
            msg = (f"gradcheck failed for input {i} of shape {x.shape}: {int(bad.sum())} of {bad.size} "
                   f"elements differ. Worst at index {tuple(int(k) for k in worst)}: backward gave "
                   f"{analytic[worst]:.6g}, finite differences gave {numeric[worst]:.6g}.")
            if raise_exception:
                raise GradcheckError(msg)
            return False
    return True
