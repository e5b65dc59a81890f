"""nn: layers against torch (outputs and every gradient), float64 gradchecks, and the Module machinery.

Parity recipe: build the torch module, load its `state_dict()` into ours, feed both the same input,
backpropagate the same random upstream gradient, and compare outputs, input gradients and each
parameter's gradient by name.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import minitorch_attn as mta
from minitorch_attn import nn

TOL = {np.float32: dict(atol=1e-5, rtol=1e-4), np.float64: dict(atol=1e-10, rtol=1e-8)}
TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}


def assert_close(ours, theirs, what: str, dtype=np.float64, hint: str = "") -> None:
    ours = ours.data if isinstance(ours, mta.Tensor) else np.asarray(ours)
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    assert ours.shape == theirs.shape, \
        f"{what}: expected shape {theirs.shape} (torch), got {ours.shape}. {hint}"
    if not np.allclose(ours, theirs, **TOL[dtype]):
        err = np.abs(ours - theirs)
        worst = np.unravel_index(np.argmax(err), err.shape)
        raise AssertionError(f"{what}: differs from torch by up to {err.max():.3g} at index {worst} "
                             f"(ours {ours[worst]:.6g}, torch {theirs[worst]:.6g}). {hint}")


def check_parity(ours: nn.Module, theirs: torch.nn.Module, inputs, dtype, seed=0, hint=""):
    """Run both modules on `inputs` (NumPy arrays; floating ones get gradients) and compare everything."""
    theirs = theirs.to(TORCH_DTYPE[dtype])
    ours.to_dtype(dtype).load_state_dict(theirs.state_dict())
    ours_in = [mta.tensor(a, requires_grad=a.dtype.kind == "f") for a in inputs]
    theirs_in = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in inputs]
    out_ours, out_theirs = ours(*ours_in), theirs(*theirs_in)
    if not isinstance(out_ours, tuple):
        out_ours, out_theirs = (out_ours,), (out_theirs,)
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(o.shape).astype(dtype) for o in out_theirs]
    sum(((o * w).sum() for o, w in zip(out_ours, weights)), start=mta.tensor(np.zeros((), dtype))).backward()
    sum((o * torch.tensor(w)).sum() for o, w in zip(out_theirs, weights)).backward()

    for k, (o, t) in enumerate(zip(out_ours, out_theirs)):
        assert_close(o, t, f"output {k}", dtype, hint)
    for k, (a, b) in enumerate(zip(ours_in, theirs_in)):
        if b.grad is not None:
            assert_close(a.grad, b.grad, f"gradient of input {k}", dtype, hint)
    names_ours = [n for n, _ in ours.named_parameters()]
    names_theirs = [n for n, _ in theirs.named_parameters()]
    assert names_ours == names_theirs, f"parameter names: expected torch's {names_theirs}, got {names_ours}"
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert p.grad is not None, f"{name} got no gradient: is it used in forward()?"
        assert_close(p.grad, q.grad, f"gradient of {name}", dtype, hint)


DTYPES = [np.float32, np.float64]


# ---- parity with torch --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(dtype, bias):
    torch.manual_seed(0)
    x = np.random.default_rng(1).standard_normal((2, 4, 5)).astype(dtype)
    check_parity(nn.Linear(5, 3, bias=bias), torch.nn.Linear(5, 3, bias=bias), [x], dtype,
                 hint="Linear computes x @ weight.T + bias with weight of shape (out, in).")


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_matches_torch_with_repeated_indices(dtype):
    torch.manual_seed(0)
    idx = np.array([[1, 3, 3, 0], [9, 1, 1, 1]], dtype=np.int64)
    check_parity(nn.Embedding(10, 4), torch.nn.Embedding(10, 4), [idx], dtype,
                 hint="Repeated indices must add their gradients into the same row (np.add.at).")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs", [{}, {"elementwise_affine": False}, {"bias": False}],
                         ids=["affine", "no_affine", "no_bias"])
@pytest.mark.parametrize("shape", [6, (3, 6)], ids=["int", "tuple"])
def test_layer_norm_matches_torch(dtype, kwargs, shape):
    torch.manual_seed(0)
    theirs = torch.nn.LayerNorm(shape, **kwargs)
    with torch.no_grad():  # move weight and bias off their ones/zeros init so they are really tested
        for p in theirs.parameters():
            p.add_(torch.randn(p.shape))
    x = (3 * np.random.default_rng(2).standard_normal((2, 3, 6)) + 1).astype(dtype)
    check_parity(nn.LayerNorm(shape, **kwargs), theirs, [x], dtype,
                 hint="LayerNorm uses the biased variance and eps inside the square root.")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_h", [True, False])
@pytest.mark.parametrize("batched", [True, False])
def test_gru_cell_matches_torch(dtype, with_h, batched):
    torch.manual_seed(0)
    rng = np.random.default_rng(3)
    lead = (3,) if batched else ()
    inputs = [rng.standard_normal(lead + (4,)).astype(dtype)]
    if with_h:
        inputs.append(rng.standard_normal(lead + (5,)).astype(dtype))
    check_parity(nn.GRUCell(4, 5), torch.nn.GRUCell(4, 5), inputs, dtype,
                 hint="Gate order is (r, z, n); n = tanh(W_in x + b_in + r * (W_hn h + b_hn)); "
                      "h' = (1 - z) * n + z * h.")


GRU_CASES = [
    dict(num_layers=1, bidirectional=False),
    dict(num_layers=2, bidirectional=False),
    dict(num_layers=1, bidirectional=True),
    dict(num_layers=2, bidirectional=True),
    dict(num_layers=2, bidirectional=True, bias=False),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_h0", [True, False])
@pytest.mark.parametrize("cfg", GRU_CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_gru_matches_torch(dtype, with_h0, cfg):
    torch.manual_seed(0)
    B, T, n_in, H = 2, 5, 3, 4
    D = 2 if cfg["bidirectional"] else 1
    rng = np.random.default_rng(4)
    inputs = [rng.standard_normal((B, T, n_in)).astype(dtype)]
    if with_h0:
        inputs.append(rng.standard_normal((cfg["num_layers"] * D, B, H)).astype(dtype))
    check_parity(nn.GRU(n_in, H, batch_first=True, **cfg), torch.nn.GRU(n_in, H, batch_first=True, **cfg),
                 inputs, dtype,
                 hint="Output is the last layer's states (forward, then reverse, on the last axis); h_n is "
                      "ordered l0, l0_reverse, l1, ...; the reverse direction runs from t = T-1 down to 0.")


@pytest.mark.parametrize("layout", ["time_first", "unbatched"])
def test_gru_other_layouts_match_torch(layout):
    torch.manual_seed(0)
    rng = np.random.default_rng(5)
    if layout == "time_first":
        x, h0 = rng.standard_normal((5, 2, 3)), rng.standard_normal((4, 2, 4))
    else:
        x, h0 = rng.standard_normal((5, 3)), rng.standard_normal((4, 4))
    cfg = dict(num_layers=2, bidirectional=True, batch_first=False)
    check_parity(nn.GRU(3, 4, **cfg), torch.nn.GRU(3, 4, **cfg), [x, h0], np.float64)


def test_gru_defaults_to_batch_first():
    gru = nn.GRU(3, 4)
    assert gru.batch_first, "our GRU defaults to batch_first=True (the library's (B, T, E) convention)"
    out, h_n = gru(mta.randn(2, 7, 3))
    assert out.shape == (2, 7, 4) and h_n.shape == (1, 2, 4)


# ---- float64 gradchecks -------------------------------------------------------------------------
def gradcheck_module(module: nn.Module, *inputs):
    """gradcheck with respect to the inputs that require grad and every parameter of `module`."""
    params = list(module.double().parameters())
    n = len(inputs)
    assert mta.gradcheck(lambda *args: module(*args[:n]), [*inputs, *params])


def _x(*shape, seed=0, grad=True):
    return mta.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=grad)


def test_gradcheck_linear():
    gradcheck_module(nn.Linear(3, 2), _x(2, 3))


def test_gradcheck_embedding():
    gradcheck_module(nn.Embedding(5, 3), mta.tensor(np.array([[0, 4, 4], [2, 0, 1]])))


@pytest.mark.parametrize("kwargs", [{}, {"bias": False}])
def test_gradcheck_layer_norm(kwargs):
    ln = nn.LayerNorm(4, **kwargs)
    for p in ln.parameters():
        p.data += np.random.default_rng(1).standard_normal(p.shape).astype(p.dtype)
    gradcheck_module(ln, _x(2, 4))


def test_gradcheck_gru_cell():
    gradcheck_module(nn.GRUCell(3, 2), _x(2, 3), _x(2, 2, seed=1))


def test_gradcheck_gru_two_layers_bidirectional():
    gradcheck_module(nn.GRU(2, 2, num_layers=2, bidirectional=True), _x(2, 3, 2), _x(4, 2, 2, seed=1))


def test_gradcheck_sequential_mlp():
    mlp = nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 4), nn.Tanh(), nn.LayerNorm(4), nn.ReLU())
    gradcheck_module(mlp, _x(2, 3))


# ---- module machinery ---------------------------------------------------------------------------
class OurNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.rnn = nn.GRU(4, 6, num_layers=2, bidirectional=True)
        self.blocks = nn.ModuleList([nn.Sequential(nn.Linear(12, 12), nn.ReLU(), nn.LayerNorm(12))
                                     for _ in range(2)])
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(12, 10, bias=False)

    def forward(self, idx):
        h, _ = self.rnn(self.embed(idx))
        for block in self.blocks:
            h = block(self.drop(h))
        return self.head(h)


class TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)
        self.rnn = torch.nn.GRU(4, 6, num_layers=2, bidirectional=True, batch_first=True)
        self.blocks = torch.nn.ModuleList([
            torch.nn.Sequential(torch.nn.Linear(12, 12), torch.nn.ReLU(), torch.nn.LayerNorm(12))
            for _ in range(2)])
        self.drop = torch.nn.Dropout(0.5)
        self.head = torch.nn.Linear(12, 10, bias=False)

    def forward(self, idx):
        h, _ = self.rnn(self.embed(idx))
        for block in self.blocks:
            h = block(self.drop(h))
        return self.head(h)


def test_names_and_shapes_equal_torchs_and_a_torch_checkpoint_loads():
    ours, theirs = OurNet(), TorchNet()
    want = [(n, tuple(p.shape)) for n, p in theirs.named_parameters()]
    got = [(n, p.shape) for n, p in ours.named_parameters()]
    assert got == want, f"named_parameters: expected torch's names and shapes\n{want}\ngot\n{got}"
    assert list(ours.state_dict()) == list(theirs.state_dict()), "state_dict keys must be in torch's order"
    assert ours.num_parameters() == sum(p.numel() for p in theirs.parameters())

    ours.load_state_dict(theirs.state_dict())  # torch tensors load as they are
    ours.eval(), theirs.eval()
    idx = np.array([[1, 2, 3], [4, 5, 9]])
    with torch.no_grad():
        expected = theirs(torch.tensor(idx)).numpy()
    assert_close(ours(idx), expected, "OurNet output after loading TorchNet's weights", np.float32)


def test_named_modules_and_children():
    net = OurNet()
    names = [n for n, _ in net.named_modules()]
    assert names[:4] == ["", "embed", "rnn", "blocks"], names
    assert "blocks.1.2" in names and len(list(net.modules())) == len(names)
    kinds = [type(m).__name__ for m in net.children()]
    assert kinds == ["Embedding", "GRU", "ModuleList", "Dropout", "Linear"], kinds


def test_state_dict_round_trip_and_copies():
    mta.manual_seed(0)
    a = OurNet().eval()
    mta.manual_seed(1)
    b = OurNet().eval()
    idx = np.array([[0, 1, 2, 3]])
    state = a.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    state["head.weight"][...] = 0  # a copy: must not change the model
    assert not np.all(a.head.weight.data == 0), "state_dict() must return copies, not the parameters' arrays"

    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(b(idx).data, a(idx).data, err_msg="same weights must give the same output")


def test_load_casts_to_the_parameter_dtype():
    lin = nn.Linear(2, 3)
    lin.load_state_dict({"weight": np.ones((3, 2), dtype=np.float64), "bias": [1, 2, 3]})
    assert lin.weight.dtype == np.float32 and lin.bias.dtype == np.float32
    np.testing.assert_array_equal(lin.bias.data, [1, 2, 3])


def test_strict_load_names_missing_unexpected_and_mismatched_keys():
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    before = net.state_dict()
    state = net.state_dict()
    del state["1.bias"]
    state["2.weight"] = np.zeros((1, 1))
    state["0.weight"] = np.zeros((3, 4))  # transposed
    with pytest.raises(RuntimeError) as info:
        net.load_state_dict(state)
    msg = str(info.value)
    for text in ["Missing key", '"1.bias"', "Unexpected key", '"2.weight"', "0.weight", "(3, 4)", "(4, 3)"]:
        assert text in msg, f"the load error should mention {text!r}; got:\n{msg}"
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=f"a failed load must change nothing; {k} changed")


def test_non_strict_load_reports_keys_but_shape_mismatch_still_raises():
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    result = net.load_state_dict({"0.weight": np.ones((4, 3)), "extra": np.ones(1)}, strict=False)
    assert result.missing_keys == ["0.bias", "1.weight", "1.bias"] and result.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(net[0].weight.data, 1)
    with pytest.raises(RuntimeError, match=r"size mismatch for 0.weight.*\(2, 3\).*\(4, 3\)"):
        net.load_state_dict({"0.weight": np.ones((2, 3))}, strict=False)


def test_buffers_are_saved_but_not_trained():
    class WithMask(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)
            self.register_buffer("scale", np.full(2, 3.0, dtype=np.float32))
            self.register_buffer("mask", np.tril(np.ones((3, 3), dtype=bool)), persistent=False)

    m = WithMask()
    assert [n for n, _ in m.named_parameters()] == ["lin.weight", "lin.bias"], "buffers are not parameters"
    assert list(m.state_dict()) == ["scale", "lin.weight", "lin.bias"], \
        "state_dict: own parameters, own persistent buffers, then children (torch's order)"
    m.load_state_dict({**m.state_dict(), "scale": np.array([1.0, 2.0])})
    np.testing.assert_array_equal(m.scale, [1.0, 2.0])
    m.double()
    assert m.scale.dtype == np.float64 and m.mask.dtype == bool and m.lin.weight.dtype == np.float64


def test_train_eval_toggles_dropout():
    net = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.3, rng=np.random.default_rng(0)))
    assert net.training and net[1].training
    x = mta.ones(200, 500)
    y = net[1](x).data
    frac = (y == 0).mean()
    assert abs(frac - 0.3) < 0.01, f"Dropout(p=0.3) in training should zero ~30% of elements; got {frac:.1%}"
    np.testing.assert_allclose(y[y != 0], 1 / 0.7, rtol=1e-6, err_msg="survivors are scaled by 1/(1-p)")

    assert net.eval() is net
    assert not net[1].training, "eval() must reach every submodule"
    np.testing.assert_array_equal(net[1](x).data, x.data, err_msg="Dropout in eval mode is the identity")
    net.train()
    assert net[1].training


def test_dropout_draws_from_the_library_generator_when_no_rng():
    x = mta.ones(10, 10)
    mta.manual_seed(7)
    a = nn.Dropout(0.5)(x).data
    mta.manual_seed(7)
    b = nn.Dropout(0.5)(x).data
    np.testing.assert_array_equal(a, b, err_msg="mta.manual_seed must make dropout repeatable")


def test_repr_is_an_indented_tree():
    text = repr(OurNet())
    for part in ["OurNet(", "(embed): Embedding(10, 4)", "(rnn): GRU(4, 6, num_layers=2",
                 "(blocks): ModuleList(", "    (0): Sequential(",
                 "(0): Linear(in_features=12, out_features=12, bias=True)",
                 "(drop): Dropout(p=0.5)", "(head): Linear(in_features=12, out_features=10, bias=False)"]:
        assert part in text, f"repr should contain {part!r}; got:\n{text}"


def test_zero_grad_and_shared_parameters():
    a = nn.Linear(3, 3)
    net = nn.Sequential(a, nn.Tanh(), a)
    assert len(list(net.parameters())) == 2, "a shared parameter is listed once by parameters()"
    assert net.num_parameters() == 12
    assert list(net.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    net(mta.randn(2, 3)).sum().backward()
    assert a.weight.grad is not None
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_parameter_and_registration_rules():
    p = nn.Parameter([1, 2, 3])
    assert p.requires_grad and p.dtype == np.float32 and isinstance(p, mta.Tensor)

    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.zeros(2))

    with pytest.raises(AttributeError, match="super"):
        Bad()

    lin = nn.Linear(2, 2)
    lin.weight = nn.Parameter(np.zeros((2, 2), dtype=np.float32))  # reassigning keeps the position
    assert [n for n, _ in lin.named_parameters()] == ["weight", "bias"]
    lin.bias = None
    assert [n for n, _ in lin.named_parameters()] == ["weight"] and "bias" not in lin.state_dict()
    with pytest.raises(TypeError, match="Parameter"):
        lin.weight = mta.zeros(2, 2)


def test_to_dtype_converts_parameters():
    net = nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3))
    net(mta.randn(1, 2)).sum().backward()
    assert net.double() is net
    assert all(p.dtype == np.float64 and p.grad is None for p in net.parameters())
    assert net(mta.randn(1, 2, dtype=np.float64)).dtype == np.float64
    assert all(p.dtype == np.float32 for p in net.float().parameters())


# ---- initialisation and seeds -------------------------------------------------------------------
def test_initialisation_follows_torch():
    rng = np.random.default_rng(0)
    lin = nn.Linear(400, 300, rng=rng)
    bound = 1 / np.sqrt(400)
    for p in lin.parameters():
        assert np.abs(p.data).max() <= bound, f"Linear init is U(-1/sqrt(in), 1/sqrt(in)) = ±{bound:.4f}"
    assert abs(lin.weight.data.std() - bound / np.sqrt(3)) < 1e-3, "Linear weight: uniform, not normal"
    assert lin.weight.dtype == np.float32

    gru = nn.GRU(10, 25, rng=rng)
    assert all(np.abs(p.data).max() <= 1 / 5 for p in gru.parameters()), "GRU init: U(-1/sqrt(H), 1/sqrt(H))"
    emb = nn.Embedding(1000, 100, rng=rng).weight.data
    assert abs(emb.mean()) < 0.01 and abs(emb.std() - 1) < 0.01, "Embedding init is N(0, 1)"
    ln = nn.LayerNorm(5)
    assert np.all(ln.weight.data == 1) and np.all(ln.bias.data == 0)


def test_manual_seed_and_rng_make_init_repeatable():
    mta.manual_seed(3)
    a = nn.GRU(3, 4).state_dict()
    mta.manual_seed(3)
    b = nn.GRU(3, 4).state_dict()
    c = nn.GRU(3, 4, rng=np.random.default_rng(3)).state_dict()
    d = nn.GRU(3, 4, rng=np.random.default_rng(3)).state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg="mta.manual_seed must make init repeatable")
        np.testing.assert_array_equal(c[k], d[k], err_msg="the same rng seed must give the same init")


# ---- bad input ----------------------------------------------------------------------------------
def test_linear_wrong_feature_count_names_the_shapes():
    with pytest.raises(ValueError, match=r"in_features=4.*\(\.\.\., 4\).*\(2, 5\)"):
        nn.Linear(4, 3)(mta.randn(2, 5))


def test_gru_bad_inputs_name_the_shapes():
    gru = nn.GRU(3, 4, num_layers=2)
    with pytest.raises(ValueError, match=r"input_size=3.*\(2, 5, 6\)"):
        gru(mta.randn(2, 5, 6))
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 2, 4\).*got \(1, 2, 4\)"):
        gru(mta.randn(2, 5, 3), mta.randn(1, 2, 4))
    with pytest.raises(ValueError, match=r"\(3, 4\).*got \(3, 5\)"):
        nn.GRUCell(2, 4)(mta.randn(3, 2), mta.randn(3, 5))
    with pytest.raises(ValueError, match=r"\(B, 2\).*\(3, 7\)"):
        nn.GRUCell(2, 4)(mta.randn(3, 7))
