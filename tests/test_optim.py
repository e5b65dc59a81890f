"""optim: SGD, Adam, AdamW and clip_grad_norm_ step for step against torch; the warmup-cosine schedule
against its formula; optimizer state that round-trips so training resumes exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import minitorch_attn as mta
from minitorch_attn import nn, optim

RNG = np.random.default_rng(0)
X, Y = RNG.standard_normal((16, 3)), RNG.standard_normal((16, 2))


def make_pair(seed=0):
    """The same float64 MLP in torch and in our library, with identical weights."""
    torch.manual_seed(seed)
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()
    ours = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2)).double()
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def our_loss(model):
    return ((model(mta.tensor(X)) - Y) ** 2).mean()


def torch_loss(model):
    return ((model(torch.tensor(X)) - torch.tensor(Y)) ** 2).mean()


def assert_params_match(ours, theirs, what: str, atol=1e-6):
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        err = np.abs(p.data - q.detach().numpy()).max()
        assert err <= atol, (f"{what}: parameter {name} differs from torch's by {err:.3g} after training "
                             "on the same gradients. Compare your update with the docstring, term by term.")


OPTIMIZERS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, momentum=0.5, weight_decay=0.1)),
    ("SGD", dict(lr=0.1, weight_decay=0.1)),
    ("Adam", dict(lr=0.05)),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1)),
    ("AdamW", dict(lr=0.05)),
    ("AdamW", dict(lr=0.05, weight_decay=0.5)),
]


@pytest.mark.parametrize("name,kwargs", OPTIMIZERS, ids=lambda v: v if isinstance(v, str) else
                         ",".join(f"{k}={x}" for k, x in v.items()))
def test_optimizer_matches_torch(name, kwargs):
    ours, theirs = make_pair()
    opt = getattr(optim, name)(ours.parameters(), **kwargs)
    topt = getattr(torch.optim, name)(theirs.parameters(), **kwargs)
    for step in range(25):
        opt.zero_grad(), topt.zero_grad()
        our_loss(ours).backward()
        torch_loss(theirs).backward()
        if step == 3:  # a parameter without a gradient must be skipped, its state not advanced
            ours[0].bias.grad, theirs[0].bias.grad = None, None
        opt.step(), topt.step()
    assert_params_match(ours, theirs, f"{name}({kwargs})")


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_updates_keep_float32(name):
    model = nn.Linear(3, 2)
    opt = getattr(optim, name)(model.parameters(), lr=0.1, **({"momentum": 0.9} if name == "SGD" else {}))
    for _ in range(2):
        model(mta.randn(4, 3)).sum().backward()
        opt.step()
    for p in model.parameters():
        assert p.dtype == np.float32, f"{name}.step() turned a float32 parameter into {p.dtype}"
    for state in opt.state.values():
        for k, v in state.items():
            assert not isinstance(v, np.ndarray) or v.dtype == np.float32, f"state {k!r} should stay float32"


def test_step_updates_in_place_without_recording_a_graph():
    model = nn.Linear(2, 2)
    before = model.weight.data
    model(mta.randn(1, 2)).sum().backward()
    optim.SGD(model.parameters(), lr=0.1).step()
    assert model.weight.data is before, "step() should change p.data in place (p.data -= ...), not rebind it"
    assert model.weight.is_leaf and model.weight.requires_grad


def test_quadratic_converges_to_its_minimum():
    target = np.array([1.0, -2.0, 3.0])
    w = nn.Parameter(np.zeros(3))
    opt = optim.SGD([w], lr=0.1, momentum=0.9)
    for _ in range(400):
        opt.zero_grad()
        ((w - target) ** 2).sum().backward()
        opt.step()
    np.testing.assert_allclose(w.data, target, atol=1e-6, err_msg="SGD with momentum minimises a quadratic")


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(max_norm, norm_type):
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(s) for s in [(3, 4), (4,), (2, 2)]]
    ours = [nn.Parameter(np.zeros_like(g)) for g in grads] + [nn.Parameter(np.zeros(2))]  # last: no grad
    theirs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, q, g in zip(ours, theirs, grads):
        p.grad, q.grad = g.copy(), torch.tensor(g)
    total = optim.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    assert isinstance(total, float)
    assert abs(total - expected.item()) < 1e-10, f"returned norm: expected {expected.item()}, got {total}"
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-12, atol=1e-12,
                                   err_msg="clipped gradients differ from torch's: scale every gradient by "
                                           "max_norm / (total + 1e-6), and only when that is < 1")
    assert ours[-1].grad is None


def test_warmup_cosine_at_key_steps():
    base, lo, warm, total = 1.0, 0.1, 10, 110
    lr = lambda s: optim.warmup_cosine(s, base, warm, total, min_lr=lo)
    assert lr(0) == pytest.approx(base / warm), "warmup starts at base_lr / warmup_steps at step 0"
    assert lr(4) == pytest.approx(base * 5 / warm)
    assert lr(warm - 1) == pytest.approx(base), "warmup reaches base_lr at step warmup_steps - 1"
    assert lr(warm) == pytest.approx(base), "the cosine starts at base_lr"
    assert lr(60) == pytest.approx(lo + (base - lo) / 2), "halfway through the decay: mean of base and min"
    assert lr(35) == pytest.approx(lo + (base - lo) * 0.5 * (1 + math.cos(math.pi * 0.25)))
    assert lr(total) == pytest.approx(lo), "min_lr at total_steps"
    assert lr(total + 50) == pytest.approx(lo), "min_lr after total_steps"
    decay = [lr(s) for s in range(warm, total + 1)]
    assert all(a >= b for a, b in zip(decay, decay[1:])), "the cosine part must never increase"
    assert optim.warmup_cosine(0, 0.5, 0, 10) == pytest.approx(0.5), "warmup_steps=0: start at base_lr"
    with pytest.raises(ValueError):
        optim.warmup_cosine(0, 1.0, 20, 10)


def test_warmup_cosine_scheduler_sets_the_lr_of_each_step():
    w = nn.Parameter(np.zeros(2))
    opt = optim.SGD([w], lr=2.0)
    sched = optim.WarmupCosine(opt, warmup_steps=3, total_steps=8, min_lr=0.2)
    used = []
    for _ in range(10):
        used.append(opt.lr)  # the lr that this optimizer.step() will use
        opt.step()
        sched.step()
    expected = [optim.warmup_cosine(k, 2.0, 3, 8, 0.2) for k in range(10)]
    np.testing.assert_allclose(used, expected, err_msg="the k-th optimizer step must use warmup_cosine(k)")

    opt2 = optim.SGD([w], lr=2.0)
    sched2 = optim.WarmupCosine(opt2, warmup_steps=3, total_steps=8, min_lr=0.2)
    sched2.load_state_dict(sched.state_dict())
    assert opt2.lr == opt.lr


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.05)),
                                         ("AdamW", dict(lr=0.05, weight_decay=0.1))])
def test_state_dict_round_trip_resumes_training_exactly(name, kwargs):
    def train(model, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            our_loss(model).backward()
            opt.step()

    ref, _ = make_pair()
    ref_opt = getattr(optim, name)(ref.parameters(), **kwargs)
    train(ref, ref_opt, 5)
    model_state, opt_state = ref.state_dict(), ref_opt.state_dict()
    train(ref, ref_opt, 5)  # must not change the saved copies

    resumed, _ = make_pair(seed=1)
    resumed.load_state_dict(model_state)
    opt = getattr(optim, name)(resumed.parameters(), lr=123.0)  # hyperparameters come from the state too
    opt.load_state_dict(opt_state)
    train(resumed, opt, 5)
    for (n, p), (_, q) in zip(resumed.named_parameters(), ref.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=f"{name}: resuming from state_dict() should "
                                      f"continue exactly; {n} differs (is the optimizer state a copy?)")


def test_optimizer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="requires_grad"):
        optim.SGD([mta.zeros(2)], lr=0.1)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam(nn.Linear(2, 2).parameters(), betas=(0.9, 1.0))
    opt = optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict({"hyperparams": {}, "state": {0: {"momentum_buffer": np.zeros(3)}}})


def test_shared_parameters_are_updated_once():
    w = nn.Parameter(np.ones(2))
    opt = optim.SGD([w, w], lr=0.5)
    w.grad = np.ones(2)
    opt.step()
    np.testing.assert_array_equal(w.data, [0.5, 0.5], err_msg="a parameter listed twice must be stepped once")
