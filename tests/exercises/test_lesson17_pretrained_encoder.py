"""Graded tests for lesson 17, a pretrained encoder on your engine: exercises 17.1-17.2 in
`exercises/lesson17_pretrained_encoder.py` (or `solutions/` with `--target=solutions`).

    pytest tests/exercises/test_lesson17_pretrained_encoder.py
    python -m minitorch_attn grade --lesson 17

No download and no extra package needed: 17.1 is checked on a tiny random BERT checkpoint (two layers, the real
model's tensor names) against one BERT layer written out below in NumPy from the paper's equations, in
float64; 17.2 against a loop over each sentence's real tokens.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import erf

from minitorch_attn.course.checks import assert_close, fail
from minitorch_attn.nn.bert import BertConfig, BertModel


@pytest.fixture(scope="module")
def impl(load_target):
    return load_target("lesson17_pretrained_encoder")


E, FF, H, N = 8, 12, 2, 5
CONFIG = BertConfig(vocab_size=11, hidden_size=E, num_hidden_layers=2, num_attention_heads=H, intermediate_size=FF,
                    max_position_embeddings=N, layer_norm_eps=1e-12)
SHAPES = {"attention.self.query.weight": (E, E), "attention.self.key.weight": (E, E),
          "attention.self.value.weight": (E, E), "attention.output.dense.weight": (E, E),
          "intermediate.dense.weight": (FF, E), "output.dense.weight": (E, FF)}


def _checkpoint(seed=0):
    """Random tensors under BERT's names for layers 0 and 1 (LayerNorm weights far from 1, so swaps show)."""
    rng = np.random.default_rng(seed)
    ckpt = {}
    for i in range(2):
        p = f"encoder.layer.{i}."
        for name, shape in SHAPES.items():
            ckpt[p + name] = rng.standard_normal(shape) / math.sqrt(shape[1])
            ckpt[p + name.replace("weight", "bias")] = rng.standard_normal(shape[0])
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            ckpt[p + ln + ".weight"] = rng.uniform(0.2, 3.0, E)
            ckpt[p + ln + ".bias"] = rng.standard_normal(E)
    return ckpt


def _bert_layer(x, ckpt, i, pad):
    """One BERT layer (Devlin et al. 2019, as Hugging Face's BertLayer computes it), straight from the names."""
    w = lambda n: ckpt[f"encoder.layer.{i}.{n}"]
    dense = lambda h, n: h @ w(n + ".weight").T + w(n + ".bias")

    def ln(h, n):
        mu, var = h.mean(-1, keepdims=True), h.var(-1, keepdims=True)
        return (h - mu) / np.sqrt(var + 1e-12) * w(n + ".weight") + w(n + ".bias")

    heads = lambda h: h.reshape(h.shape[0], h.shape[1], H, E // H).transpose(0, 2, 1, 3)
    q, k, v = (heads(dense(x, f"attention.self.{n}")) for n in ("query", "key", "value"))
    s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(E // H) + np.where(pad, -np.inf, 0.0)[:, None, None, :]
    p = np.exp(s - s.max(-1, keepdims=True))
    ctx = (p / p.sum(-1, keepdims=True)) @ v
    ctx = ctx.transpose(0, 2, 1, 3).reshape(x.shape)
    a = ln(dense(ctx, "attention.output.dense") + x, "attention.output.LayerNorm")
    inter = dense(a, "intermediate.dense")
    inter = inter * 0.5 * (1 + erf(inter / math.sqrt(2)))
    return ln(dense(inter, "output.dense") + a, "output.LayerNorm")


def _names(impl, i):
    names = impl.layer_names(i)
    if not isinstance(names, dict) or not names:
        fail(f"layer_names({i})", f"returned {type(names).__name__} {names!r:.80}",
             "return the dict {our name: (checkpoint names...)} of the whole layer")
    return names


# ---- 17.1 layer_names -------------------------------------------------------------------------------------
@pytest.mark.exercise("17.1", points=1)
def test_layer_names_cover_the_layer(impl):
    model = BertModel(CONFIG, rng=np.random.default_rng(0), dtype=np.float64)
    ours = {k for k in model.state_dict() if k.startswith("layers.1.")}
    names = _names(impl, 1)
    if set(names) != ours:
        fail("layer_names(1)", f"our names missing: {sorted(ours - set(names))}; not ours: "
             f"{sorted(set(names) - ours)}", "the keys are our layer's state_dict names under 'layers.1.'")
    ckpt = _checkpoint()
    used = [n for v in names.values() for n in (v if isinstance(v, tuple | list) else [v])]
    unknown = [n for n in used if n not in ckpt]
    if unknown:
        fail("layer_names(1)", f"names that BERT's checkpoint does not have: {unknown[:4]}",
             "checkpoint names start with 'encoder.layer.1.' (e.g. 'encoder.layer.1.attention.self.query.weight'), "
             "and each value is a tuple of names")
    if sorted(used) != sorted(k for k in ckpt if k.startswith("encoder.layer.1.")):
        fail("layer_names(1)", "some tensor of BERT's layer 1 is used twice or not at all",
             "every checkpoint tensor of the layer goes to exactly one of our names")


@pytest.mark.exercise("17.1", points=1)
def test_layer_names_load_a_layer_that_computes_bert(impl):
    ckpt = _checkpoint()
    model = BertModel(CONFIG, backend="naive", rng=np.random.default_rng(0), dtype=np.float64).eval()
    layer = model.layers[1]
    state = {}
    for ours, theirs in _names(impl, 1).items():
        theirs = (theirs,) if isinstance(theirs, str) else tuple(theirs)
        state[ours.removeprefix("layers.1.")] = np.concatenate([ckpt[n] for n in theirs], axis=0)
    try:
        layer.load_state_dict(state)
    except (ValueError, KeyError) as e:
        fail("layer_names(1)", f"the layer does not load: {e}", "linear1 is intermediate.dense (E -> FF), linear2 "
             "is output.dense (FF -> E); in_proj_bias concatenates three biases")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, N, E))
    pad = np.zeros((3, N), bool)
    pad[1, 3:], pad[2, 1:] = True, True
    got = layer(x, src_key_padding_mask=pad).data
    want = _bert_layer(x, ckpt, 1, pad)
    real = ~pad
    if not np.allclose(got[real], want[real], atol=1e-10):
        fail("layer_names(1)", f"the loaded layer differs from BERT's layer 1 by {np.abs(got - want)[real].max():.3g}",
             "check which tensor is which: norm1 (after attention) is attention.output.LayerNorm, norm2 is "
             "output.LayerNorm; q_proj is query, k_proj is key; in_proj_bias = (query, key, value) biases in that "
             "order; and the names must be those of layer 1, not layer 0")
    assert_close(got[real], want[real], "layer_names(1): our layer vs BERT's equations", atol=1e-10)


# ---- 17.2 mean_pool ---------------------------------------------------------------------------------------
def _pool_case(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    B, n, e = 5, 7, 6
    lengths = np.array([7, 1, 4, 2, 6])
    mask = (np.arange(n)[None] < lengths[:, None]).astype(np.int64)
    hidden = rng.standard_normal((B, n, e)).astype(dtype)
    hidden[mask == 0] += 50.0  # padded positions hold large values: including them shows
    want = np.stack([hidden[b, : lengths[b]].mean(axis=0) for b in range(B)])
    return hidden, mask, want


@pytest.mark.exercise("17.2", points=1)
def test_mean_pool_averages_the_real_tokens_only(impl):
    hidden, mask, want = _pool_case()
    got = impl.mean_pool(hidden, mask)
    if got is None or np.shape(got) != want.shape:
        fail("mean_pool", f"returned shape {np.shape(got)}, expected (B, E) = {want.shape}",
             "sum over the token axis (axis=1), not the feature axis")
    got = np.asarray(got)
    if np.allclose(got, hidden.mean(axis=1)):
        fail("mean_pool", "the padded positions were averaged too", "multiply by the mask before summing")
    if np.allclose(got, (hidden * mask[:, :, None]).sum(1) / hidden.shape[1]):
        fail("mean_pool", "divided by the padded length N", "divide by each sentence's number of real tokens")
    assert_close(got, want, "mean_pool vs the mean over each sentence's real tokens", atol=1e-12)


@pytest.mark.exercise("17.2", points=1)
def test_mean_pool_empty_rows_and_dtype(impl):
    hidden, mask, want = _pool_case(seed=1, dtype=np.float32)
    mask[3] = 0  # a row with no token: 0, not NaN
    got = np.asarray(impl.mean_pool(hidden, mask))
    if not np.all(np.isfinite(got)):
        fail("mean_pool", "a sentence with no real token pooled to NaN/inf", "floor the count: np.maximum(count, 1e-9)")
    if got.dtype != np.float32:
        fail("mean_pool", f"float32 input came back as {got.dtype}", "convert the mask to hidden's dtype")
    want[3] = 0.0
    assert_close(got, want, "mean_pool (float32, one empty row)", atol=1e-5)
