"""How well a trained neural process (lesson 15) fits the points it was shown, and the others."""

from __future__ import annotations

from ..autograd import no_grad
from ..functional.neural_process import gaussian_nll
from ..nn.neural_process import ConditionalNP


def context_errors(model: ConditionalNP, batch) -> dict:
    """On the context points of `batch`: reconstruction MSE of μ, and the mean Gaussian NLL; the same on all
    targets. Returns {"context_mse", "context_nll", "target_mse", "target_nll"} as floats."""
    with no_grad():
        mu_c, sig_c = model(batch.x_context, batch.y_context, batch.x_context)
        mu_t, sig_t = model(batch.x_context, batch.y_context, batch.x_target)
    return {
        "context_mse": float(((mu_c.data - batch.y_context) ** 2).mean()),
        "context_nll": float(gaussian_nll(mu_c, sig_c, batch.y_context).data),
        "target_mse": float(((mu_t.data - batch.y_target) ** 2).mean()),
        "target_nll": float(gaussian_nll(mu_t, sig_t, batch.y_target).data),
    }
