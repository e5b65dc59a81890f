"""Modern Hopfield networks (lessons 07-08): the update, its energy, retrieval and its limits, the three β regimes,
the layers `Hopfield`, `HopfieldPooling`, `HopfieldLayer`, static retrieval of images, multiple-instance learning."""

from __future__ import annotations

import time

import numpy as np
import pytest

import minitorch_attn as mta
from minitorch_attn import functional as F
from minitorch_attn import nn, optim
from minitorch_attn.data import clustered_patterns, corrupt, flip_bits, glyphs, mask_half, mil_bags, random_patterns
from minitorch_attn.data.hopfield_tasks import default_signature
from minitorch_attn.functional.hopfield import (
    effective_patterns,
    hopfield_energy,
    hopfield_update,
    retrieval_bound,
    separation,
)
from minitorch_attn.nn import ClassicalHopfield


def exact(out, X):
    """Fraction of rows whose signs equal the stored pattern exactly."""
    return float(np.all(np.sign(out) == X, axis=-1).mean())


# ---- the update and its energy -------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(40))
def test_energy_never_increases(seed):
    rng = np.random.default_rng(seed)
    n, d = rng.integers(2, 40), rng.integers(2, 20)
    X = rng.standard_normal((n, d)) * rng.uniform(0.2, 3)
    beta = float(10 ** rng.uniform(-2, 1.5))
    xi = rng.standard_normal((5, d)) * 2
    energies = [hopfield_energy(X, xi, beta)]
    for _ in range(12):
        xi = hopfield_update(X, xi, beta)
        energies.append(hopfield_energy(X, xi, beta))
    E = np.array(energies)  # (steps + 1, 5)
    assert np.all(np.diff(E, axis=0) <= 1e-10 * (1 + np.abs(E[:-1]))), f"energy rose: {np.diff(E, axis=0).max()}"
    assert np.all(E >= -1e-9), "E >= 0 with the constants beta^-1 log N + M^2 / 2"


def test_energy_formula_and_batching():
    rng = np.random.default_rng(0)
    X, xi, beta = rng.standard_normal((7, 4)), rng.standard_normal(4), 0.7
    s = X @ xi
    M = np.linalg.norm(X, axis=1).max()
    expected = -np.log(np.exp(beta * s).sum()) / beta + 0.5 * xi @ xi + np.log(7) / beta + 0.5 * M * M
    assert np.isclose(hopfield_energy(X, xi, beta), expected, rtol=1e-12)
    batch = rng.standard_normal((2, 3, 4))
    E = hopfield_energy(np.stack([X, X]), batch, beta)
    assert E.shape == (2, 3) and np.isclose(E[1, 2], hopfield_energy(X, batch[1, 2], beta))


def test_update_is_attention_and_shapes():
    rng = np.random.default_rng(1)
    X, xi = rng.standard_normal((9, 6)), rng.standard_normal((4, 6))
    new, p = hopfield_update(X, xi, beta=0.3, return_weights=True)
    s = 0.3 * xi @ X.T
    ref = np.exp(s - s.max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    assert np.allclose(p, ref, rtol=1e-12) and np.allclose(new, ref @ X, rtol=1e-12)
    assert new.dtype == np.float64 and hopfield_update(X, xi[0]).shape == (6,)
    one = hopfield_update(X, xi[0], return_weights=True)[1]
    assert one.shape == (9,)


def test_one_update_with_beta_one_over_sqrt_d_is_scaled_dot_product_attention():
    """Project states R and stored patterns Y as attention does: Q = R W_Q, K = Y W_K. One Hopfield update of
    the states Q with stored patterns K and beta = 1/sqrt(d) is F.scaled_dot_product_attention(Q, K, K); the
    read-out through a value projection is softmax(beta Q K^T) (K W_V) = SDPA(Q, K, K W_V)."""
    rng = np.random.default_rng(3)
    d = 8
    R, Y = rng.standard_normal((2, 5, 6)), rng.standard_normal((2, 9, 7))
    WQ, WK, WV = rng.standard_normal((6, d)), rng.standard_normal((7, d)), rng.standard_normal((d, 3))
    Q, K = R @ WQ, Y @ WK
    new, p = hopfield_update(K, Q, beta=1 / np.sqrt(d), return_weights=True)
    att, w = F.scaled_dot_product_attention(Q, K, K, return_weights=True)
    assert np.allclose(new, att.data, atol=1e-12) and np.allclose(p, w.data, atol=1e-12)
    assert np.allclose(p @ (K @ WV), F.scaled_dot_product_attention(Q, K, K @ WV).data, atol=1e-12)


def test_update_on_tensors_is_differentiable():
    rng = np.random.default_rng(2)
    X = mta.tensor(rng.standard_normal((5, 3)), requires_grad=True)
    xi = mta.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    assert mta.gradcheck(lambda X, xi: hopfield_update(X, xi, beta=0.8, steps=2), [X, xi])
    assert mta.gradcheck(lambda X, xi: hopfield_energy(X, xi, beta=1.3), [X, xi])


def test_tolerance_stops_at_a_fixed_point():
    X = random_patterns(20, 32, seed=3)
    xi = flip_bits(X[:3], 4, seed=4)
    out = hopfield_update(X, xi, beta=1.0, steps=None, tol=1e-12)
    assert np.allclose(hopfield_update(X, out, beta=1.0), out, atol=1e-12)
    assert np.array_equal(np.sign(out), X[:3])


def test_errors_name_shapes():
    with pytest.raises(ValueError, match=r"\(5, 3\).*\(4, 6\)|\(4, 6\).*\(5, 3\)"):
        hopfield_update(np.zeros((4, 6)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"\(6,\)"):
        hopfield_energy(np.zeros(6), np.zeros(6))
    with pytest.raises(ValueError, match="steps"):
        hopfield_update(np.zeros((4, 6)), np.zeros(6), steps=0)
    with pytest.raises(ValueError, match=r"\(3, 5\)"):
        ClassicalHopfield(np.ones((3, 5))).update(np.ones((3, 4)))
    with pytest.raises(ValueError, match="stored.*\\(2, 3, 8\\)"):
        nn.Hopfield(8)((np.zeros((2, 3, 8)), np.zeros((2, 3, 8)), np.zeros((2, 4, 8))))
    with pytest.raises(ValueError, match=r"expects 8"):
        nn.Hopfield(8)(np.zeros((2, 3, 7)))
    with pytest.raises(ValueError, match=r"\(B, N\) = \(2, 3\)"):
        nn.Hopfield(8)(np.zeros((2, 3, 8)), stored_pattern_padding_mask=np.zeros((2, 4), bool))
    with pytest.raises(ValueError, match="num_heads"):
        nn.Hopfield(8, num_heads=3)


def test_effective_patterns():
    assert effective_patterns(np.full(8, 1 / 8)) == pytest.approx(8)
    assert effective_patterns(np.eye(3)[1]) == 1
    p = mta.tensor(np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]]), requires_grad=True)
    assert mta.gradcheck(lambda p: effective_patterns(p), [p])


# ---- retrieval --------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [16, 1024, 10_000])
def test_one_update_retrieves_exactly(n):
    X = random_patterns(n, 64, seed=1)
    idx = np.random.default_rng(0).choice(n, size=min(n, 500), replace=False)
    probes = flip_bits(X[idx], 8, seed=2)
    out = hopfield_update(X, probes, beta=1.0)
    assert exact(out, X[idx]) == 1.0
    assert np.abs(out - X[idx]).max() < 0.02  # not just the signs: the state IS the pattern, to 2%


def test_the_classical_network_fails_by_16_patterns():
    X = random_patterns(16, 64, seed=1)
    probes = flip_bits(X, 8, seed=2)
    net = ClassicalHopfield(X)
    assert exact(net.update(probes), X) <= 0.25
    assert exact(net.update(probes, steps=20), X) <= 0.25
    few = random_patterns(4, 64, seed=1)  # well under its capacity (~0.14 d = 9) it works
    assert exact(ClassicalHopfield(few).update(flip_bits(few, 8, seed=2), steps=5), few) == 1.0


def test_retrieval_degrades_with_flips_as_the_separation_predicts():
    X = random_patterns(1024, 64, seed=1)
    accs = []
    for flips in (8, 16, 24):
        probes = flip_bits(X, flips, seed=3)
        out, p = hopfield_update(X, probes, beta=1.0, return_weights=True)
        ok = np.all(np.sign(out) == X, axis=1)
        accs.append(ok.mean())
        # the probe's separation from the other patterns decides: own score minus the best other score
        s = probes @ X.T
        own = s[np.arange(1024), np.arange(1024)]
        s[np.arange(1024), np.arange(1024)] = -np.inf
        gap = own - s.max(1)
        assert np.all(ok[gap >= 8]), "a gap of 8 (weight e^-8 per rival) always retrieves"
        assert not np.any(ok[gap <= 0]), "a rival that scores at least as high wins the softmax"
    assert accs[0] == 1.0 and accs[1] >= 0.8 and accs[2] <= 0.05
    assert retrieval_bound(1024, 1.0, 8.0) > 15  # Theorem 3 is sufficient, far from necessary


def test_separation():
    X = np.array([[1.0, 1.0], [1.0, -1.0], [1.0, 0.5]])
    assert np.allclose(separation(X), [2 - 1.5, 2 - 0.5, 1.25 - 1.5])


# ---- the three regimes ------------------------------------------------------------------------------
@pytest.mark.parametrize("beta, lo, hi", [(0.01, 31.0, 32.0), (8.0, 7.0, 9.0), (256.0, 1.0, 1.05)])
def test_three_regimes_by_beta(beta, lo, hi):
    X, _ = clustered_patterns(4, 8, 64, seed=0)
    _, p = hopfield_update(X, X, beta, steps=None, tol=1e-10, return_weights=True)
    counts = effective_patterns(p)
    assert lo <= counts.min() and counts.max() <= hi, (counts.min(), counts.max())


# ---- the layers -------------------------------------------------------------------------------------
def test_hopfield_one_update_equals_multihead_attention():
    E, H = 12, 3
    rng = np.random.default_rng(0)
    mha = nn.MultiheadAttention(E, H, rng=rng, dtype=np.float64)
    hop = nn.Hopfield(E, num_heads=H, normalize_stored_pattern=False, normalize_state_pattern=False,
                      normalize_pattern_projection=False, dtype=np.float64)
    w, b = mha.in_proj_weight.data, mha.in_proj_bias.data
    for i, lin in enumerate((hop.q_proj, hop.k_proj, hop.v_proj)):
        lin.weight.data[...] = w[i * E : (i + 1) * E]
        lin.bias.data[...] = rng.standard_normal(E)
        b[i * E : (i + 1) * E] = lin.bias.data
    mha.out_proj.bias.data[...] = rng.standard_normal(E)
    hop.out_proj.load_state_dict(mha.out_proj.state_dict())
    q, kv = rng.standard_normal((2, 4, E)), rng.standard_normal((2, 7, E))
    ours = hop((kv, q, kv))
    ref, weights = mha(q, kv, kv, average_attn_weights=False)
    assert np.allclose(ours.data, ref.data, atol=1e-12)
    assert np.allclose(hop.association_matrix, weights.data, atol=1e-12)
    assert hop.scaling is None and hop.hidden_size == 4  # beta = 1/sqrt(head_dim), as in attention


def test_hopfield_static_is_the_update():
    X = random_patterns(30, 16, seed=5)
    xi = flip_bits(X[:4], 3, seed=6)
    hop = nn.Hopfield.static(scaling=0.5, update_steps_max=3, dtype=np.float64)
    assert hop.num_parameters() == 0
    out = hop((X, xi, X))
    assert np.allclose(out.data, hopfield_update(X, xi, beta=0.5, steps=3), atol=1e-13)


def test_hopfield_update_steps_and_tolerance():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 8))
    hop = nn.Hopfield(8, num_heads=2, update_steps_max=None, update_steps_eps=1e-9, rng=rng, dtype=np.float64)
    out = hop(x)
    hop.update_steps_max = 500
    assert np.allclose(out.data, hop(x).data, atol=1e-8)
    with pytest.raises(ValueError, match="update_steps_eps"):
        nn.Hopfield(8, update_steps_max=None)


@pytest.mark.parametrize("heads, steps", [(1, 1), (2, 1), (2, 3)])
def test_hopfield_shapes_masks_and_gradcheck(heads, steps):
    rng = np.random.default_rng(heads + steps)
    hop = nn.Hopfield(6, hidden_size=4, output_size=5, pattern_size=3, num_heads=heads, stored_pattern_size=7,
                      pattern_projection_size=2, update_steps_max=steps, rng=rng, dtype=np.float64)
    Y, R, V = rng.standard_normal((2, 5, 7)), rng.standard_normal((2, 3, 6)), rng.standard_normal((2, 5, 2))
    pad = np.array([[False] * 4 + [True], [False] * 5])
    out = hop((Y, R, V), stored_pattern_padding_mask=pad)
    A = hop.association_matrix
    assert out.shape == (2, 3, 5) and A.shape == (2, heads, 3, 5)
    assert np.all(A[0, ..., 4] == 0) and np.allclose(A.sum(-1), 1)
    assert np.array_equal(hop.get_association_matrix((Y, R, V), stored_pattern_padding_mask=pad), A)
    unbatched = hop((Y[1], R[1], V[1]))
    assert unbatched.shape == (3, 5) and np.allclose(unbatched.data, hop((Y, R, V)).data[1])
    ts = [mta.tensor(a[:, :3], requires_grad=True) for a in (Y, R, V)]
    assert mta.gradcheck(lambda y, r, v, *ps: hop((y, r, v), stored_pattern_padding_mask=pad[:, :3]),
                         [*ts, *hop.parameters()])


def test_hopfield_pooling_shapes_and_gradcheck():
    rng = np.random.default_rng(0)
    pool = nn.HopfieldPooling(6, hidden_size=4, output_size=5, num_heads=2, quantity=3, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 7, 6))
    assert pool(x).shape == (2, 15)
    assert pool.get_association_matrix(x).shape == (2, 2, 3, 7)
    assert pool.pooling_weights.shape == (1, 3, 6) and pool.pooling_weights.requires_grad
    t = mta.tensor(x[:, :3], requires_grad=True)
    assert mta.gradcheck(lambda t, *ps: pool(t), [t, *pool.parameters()])


def test_hopfield_layer_is_a_lookup_independent_of_the_input():
    rng = np.random.default_rng(0)
    layer = nn.HopfieldLayer(6, output_size=4, quantity=5, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 3, 6))
    assert layer(x).shape == (2, 3, 4) and layer.get_association_matrix(x).shape == (2, 1, 3, 5)
    t = mta.tensor(x[:, :2], requires_grad=True)
    assert mta.gradcheck(lambda t, *ps: layer(t), [t, *layer.parameters()])
    names = dict(layer.named_parameters())
    assert "lookup_weights" in names and "target_weights" in names
    tied = nn.HopfieldLayer(6, quantity=5, lookup_targets_as_trainable=False, rng=rng)
    assert "target_weights" not in dict(tied.named_parameters())


# ---- static retrieval of images (the reference library's issues #12, #13, #17) -----------------------
def test_static_retrieval_restores_corrupted_and_half_masked_glyphs():
    images = glyphs(64, seed=0)  # (64, 16, 16), ink +1, background -1
    Y = images.reshape(64, -1)
    hop = nn.Hopfield.static(scaling=1.0, dtype=np.float64)
    for probes in (corrupt(images, 0.25, seed=1), mask_half(images, "bottom"), mask_half(images, "left")):
        out = hop((Y, probes.reshape(64, -1), Y)).data
        assert exact(out, Y) == 1.0 and np.abs(out - Y).max() < 0.1
    # the pitfall: uncentred pixels (0 or 255) let the image with the most ink win
    raw, probes = (images > 0) * 255.0, (corrupt(images, 0.25, seed=1) > 0) * 255.0
    out = hopfield_update(raw.reshape(64, -1), probes.reshape(64, -1), beta=1.0)
    assert np.mean(np.all((out > 127) == (raw.reshape(64, -1) > 127), axis=1)) < 0.7


# ---- multiple-instance learning ---------------------------------------------------------------------
def train_mil(kind: str, steps: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    if kind == "hopfield":
        pool = nn.HopfieldPooling(16, hidden_size=16, output_size=16, rng=rng)
        model = nn.Sequential(nn.Linear(16, 2, rng=rng))
        params = list(pool.parameters()) + list(model.parameters())
        forward = lambda x: model(pool(x))
    else:
        pool = None
        model = nn.Sequential(nn.Linear(16, 32, rng=rng), nn.ReLU(), nn.Linear(32, 2, rng=rng))
        params = list(model.parameters())
        forward = lambda x: model(mta.tensor(x).mean(axis=1))
    opt = optim.Adam(params, lr=0.01)
    for step in range(steps):
        bags = mil_bags(32, seed=1000 + step)
        loss = F.cross_entropy(forward(bags.instances), bags.labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    test = mil_bags(1000, seed=99)
    with mta.no_grad():
        acc = float((forward(test.instances).data.argmax(-1) == test.labels).mean())
    att = None
    if pool is not None:
        A = pool.get_association_matrix(test.instances)[:, 0, 0]  # (bags, instances)
        pos = np.nonzero(test.labels == 1)[0]
        att = float(A[pos, test.planted[pos]].mean())
    return acc, att


def test_mil_hopfield_pooling_finds_the_signature_and_mean_pooling_cannot():
    start = time.perf_counter()
    acc, att = train_mil("hopfield")
    mean_acc, _ = train_mil("mean")
    assert acc >= 0.95 and att >= 0.6, (acc, att)
    assert mean_acc <= 0.7, mean_acc
    assert time.perf_counter() - start < 15


def test_mil_bags():
    bags = mil_bags(50, bag_size=10, d=8, seed=0)
    assert bags.instances.shape == (50, 10, 8) and set(np.unique(bags.instances)) == {-1.0, 1.0}
    has = np.all(bags.instances == default_signature(8), axis=-1)
    assert np.array_equal(has.any(1), bags.labels == 1)
    pos = bags.labels == 1
    assert np.all(has[np.nonzero(pos)[0], bags.planted[pos]]) and np.all(bags.planted[~pos] == -1)
