"""Optimizers, gradient clipping and a learning-rate schedule, with torch's update rules.

Rules every optimizer here keeps:
- `step()` updates each parameter's `.data` in place, under `no_grad()`, from its `.grad`;
- a parameter whose `.grad` is None is skipped (its state does not advance either);
- updates keep each parameter's dtype (float32 stays float32), and state is stored in that dtype;
- `lr` is a plain attribute: a schedule changes it between steps;
- `state_dict()` / `load_state_dict()` save and restore hyperparameters and per-parameter state
  (keyed by position in the parameter list), so training resumes exactly where it stopped.

    opt = optim.AdamW(model.parameters(), lr=3e-4)
    sched = optim.WarmupCosine(opt, warmup_steps=100, total_steps=2000)
    for batch in batches:
        opt.zero_grad()
        loss = model.loss(batch); loss.backward()
        optim.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
"""

from __future__ import annotations

import math

import numpy as np

from .autograd.tensor import Tensor, no_grad


class Optimizer:
    """Holds the parameters (a list, duplicates removed), `lr`, the other hyperparameters and the
    per-parameter `state` (a dict: position in `params` -> dict of arrays and counters)."""

    def __init__(self, params, lr: float, **hyperparams):
        params = [params] if isinstance(params, Tensor) else list(params)
        unique, seen = [], set()
        for i, p in enumerate(params):
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(f"{type(self).__name__}: parameter {i} is a {type(p).__name__}"
                                f"{'' if not isinstance(p, Tensor) else ' with requires_grad=False'}; an "
                                "optimizer needs tensors that require grad (e.g. model.parameters())")
            if id(p) not in seen:
                seen.add(id(p))
                unique.append(p)
        if not unique:
            raise ValueError(f"{type(self).__name__} got an empty parameter list (was model.parameters() "
                             "already consumed by an earlier list(...)?)")
        if lr < 0:
            raise ValueError(f"learning rate must be non-negative; got {lr}")
        self.params: list[Tensor] = unique
        self.lr = lr
        self._hyper = ("lr", *hyperparams)
        for name, value in hyperparams.items():
            setattr(self, name, value)
        self.state: dict[int, dict] = {}

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def state_dict(self) -> dict:
        """{"hyperparams": {name: value}, "state": {index: {name: array copy or number}}}."""
        return {
            "hyperparams": {k: getattr(self, k) for k in self._hyper},
            "state": {i: {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                      for i, s in self.state.items()},
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what `state_dict()` saved, for an optimizer over parameters of the same shapes."""
        for i, s in state_dict["state"].items():
            if not 0 <= i < len(self.params):
                raise ValueError(f"optimizer state for parameter {i}, but this optimizer has "
                                 f"{len(self.params)} parameters")
            for k, v in s.items():
                if isinstance(v, np.ndarray) and v.shape != self.params[i].shape:
                    raise ValueError(f"optimizer state {k!r} of parameter {i} has shape {v.shape}; the "
                                     f"parameter has shape {self.params[i].shape} (another order?)")
        for k, v in state_dict["hyperparams"].items():
            setattr(self, k, v)
        self.state = {i: {k: (v.astype(self.params[i].dtype) if isinstance(v, np.ndarray) else v)
                          for k, v in s.items()}
                      for i, s in state_dict["state"].items()}


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, Nesterov and weight decay, as torch (Exercise 1.6).

    For each parameter p with gradient g (skip p when p.grad is None):

        g = g + weight_decay * p                       (when weight_decay != 0)
        buf = g on the first step, else momentum * buf + g     (when momentum != 0;
        g = g + momentum * buf if nesterov else buf             buf lives in self.state[i])
        p = p - lr * g                                 (in place: p.data -= ...)
    """

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False):
        if nesterov and momentum <= 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")
        super().__init__(params, lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)

    def step(self) -> None:
        ### BEGIN SOLUTION
        with no_grad():
            for i, p in enumerate(self.params):
                if p.grad is None:
                    continue
                g = p.grad
                if self.weight_decay != 0:
                    g = g + self.weight_decay * p.data
                if self.momentum != 0:
                    state = self.state.setdefault(i, {})
                    buf = state.get("momentum_buffer")
                    buf = g.copy() if buf is None else self.momentum * buf + g
                    state["momentum_buffer"] = buf
                    g = g + self.momentum * buf if self.nesterov else buf
                p.data -= self.lr * g
        ### END SOLUTION


_KERNEL: list = []


def _kernel():
    """`minitorch_attn.kernels.ops.adam` (Numba: Adam's update in one vectorised pass; float64 sums of squares),
    or None without Numba; imported on first use."""
    if not _KERNEL:
        try:
            from .kernels.ops import adam as kernel
        except ImportError:
            kernel = None
        _KERNEL.append(kernel)
    return _KERNEL[0]


class Adam(Optimizer):
    """Adam, as torch. For each parameter p with gradient g, at its step t = 1, 2, ...:

        g = g + weight_decay * p                (L2 penalty, when weight_decay != 0)
        m = β1 m + (1 - β1) g,   v = β2 v + (1 - β2) g²
        p = p - lr / (1 - β1ᵗ) * m / (√v / √(1 - β2ᵗ) + eps)

    The NumPy lines below are the reference; with Numba installed, float32/float64 parameters stored
    contiguously go through `kernels/ops/adam.adam_update` instead (the same formula in one pass).
    """

    decoupled_weight_decay = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"{type(self).__name__}: betas must be in [0, 1); got {betas}")
        super().__init__(params, lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)

    def step(self) -> None:
        b1, b2 = self.betas
        with no_grad():
            for i, p in enumerate(self.params):
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state.setdefault(i, {})
                if not state:
                    state.update(step=0, exp_avg=np.zeros_like(p.data), exp_avg_sq=np.zeros_like(p.data))
                state["step"] += 1
                t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
                if _fast(p.data, m, v):
                    _kernel().adam_update(p.data, g, m, v, t, self.lr, self.betas, self.eps, self.weight_decay,
                                          self.decoupled_weight_decay)
                    continue
                if self.weight_decay != 0:
                    if self.decoupled_weight_decay:
                        p.data *= 1 - self.lr * self.weight_decay
                    else:
                        g = g + self.weight_decay * p.data
                m *= b1
                m += (1 - b1) * g
                v *= b2
                v += (1 - b2) * g * g
                denom = np.sqrt(v) / math.sqrt(1 - b2**t) + self.eps
                p.data -= (self.lr / (1 - b1**t)) * m / denom


def _fast(p: np.ndarray, m: np.ndarray, v: np.ndarray) -> bool:
    """Whether `kernels/ops/adam.adam_update` can update p, m, v in place (contiguous float arrays of one dtype)."""
    return (p.dtype in (np.float32, np.float64) and m.dtype == p.dtype and v.dtype == p.dtype
            and p.flags.c_contiguous and m.flags.c_contiguous and v.flags.c_contiguous and p.flags.writeable
            and _kernel() is not None)


class AdamW(Adam):
    """Adam with decoupled weight decay, as torch: first p = p * (1 - lr * weight_decay), then the Adam
    update with the plain gradient (the decay never enters m and v)."""

    decoupled_weight_decay = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01):
        super().__init__(params, lr, betas=betas, eps=eps, weight_decay=weight_decay)


def clip_grad_norm_(params, max_norm: float, norm_type: float = 2.0) -> float:
    """Scale all gradients together so their joint norm is at most `max_norm`; returns the norm before.

    total = the `norm_type`-norm of all gradients as one vector (inf: the largest |g|);
    coef = max_norm / (total + 1e-6); the gradients are multiplied by coef only when coef < 1 (as torch).
    Parameters without a gradient are ignored. Unlike torch, the norm comes back as a Python float.
    """
    params = [params] if isinstance(params, Tensor) else list(params)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    if norm_type == math.inf:
        total = max(float(np.abs(g).max(initial=0.0)) for g in grads)
    elif norm_type == 2 and _kernel() is not None:  # one vectorised pass per gradient, float64 sums
        total = math.sqrt(sum(_kernel().sum_squares(g) for g in grads))
    else:
        total = sum(float((np.abs(g) ** norm_type).sum()) for g in grads) ** (1.0 / norm_type)
    coef = max_norm / (total + 1e-6)
    if coef < 1:
        for g in grads:
            g *= coef
    return total


def warmup_cosine(step: int, base_lr: float, warmup_steps: int, total_steps: int,
                  min_lr: float = 0.0) -> float:
    """The learning rate for optimizer step `step` (0-based) of a linear-warmup, cosine-decay schedule:

        step < warmup_steps:             base_lr * (step + 1) / warmup_steps   (base_lr / warmup_steps at 0,
                                                                                base_lr at warmup_steps - 1)
        warmup_steps <= step < total:    min_lr + (base_lr - min_lr) * (1 + cos(π * progress)) / 2,
                                         progress = (step - warmup_steps) / (total_steps - warmup_steps)
                                         (base_lr at warmup_steps, halfway at the midpoint)
        step >= total_steps:             min_lr
    """
    if step < 0 or warmup_steps < 0 or total_steps < warmup_steps:
        raise ValueError(f"warmup_cosine needs 0 <= step and 0 <= warmup_steps <= total_steps; got "
                         f"step={step}, warmup_steps={warmup_steps}, total_steps={total_steps}")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


class WarmupCosine:
    """Drive `optimizer.lr` with `warmup_cosine`, taking the optimizer's current lr as base_lr.

    Creating the scheduler sets lr = warmup_cosine(0); each `.step()` (call it after `optimizer.step()`)
    advances the count, so the k-th call of `optimizer.step()` (k = 0, 1, ...) uses warmup_cosine(k).
    `last_step` is that k for the next optimizer step.
    """

    def __init__(self, optimizer: Optimizer, warmup_steps: int, total_steps: int, min_lr: float = 0.0):
        self.optimizer, self.base_lr = optimizer, optimizer.lr
        self.warmup_steps, self.total_steps, self.min_lr = warmup_steps, total_steps, min_lr
        self.last_step = 0
        optimizer.lr = self.get_lr(0)

    def get_lr(self, step: int) -> float:
        return warmup_cosine(step, self.base_lr, self.warmup_steps, self.total_steps, self.min_lr)

    def step(self) -> float:
        """Advance one optimizer step and set (and return) the learning rate for the next one."""
        self.last_step += 1
        self.optimizer.lr = self.get_lr(self.last_step)
        return self.optimizer.lr

    def state_dict(self) -> dict:
        return {"base_lr": self.base_lr, "last_step": self.last_step}

    def load_state_dict(self, state_dict: dict) -> None:
        self.base_lr, self.last_step = state_dict["base_lr"], state_dict["last_step"]
        self.optimizer.lr = self.get_lr(self.last_step)
