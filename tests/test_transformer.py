"""nn.TransformerEncoderLayer / DecoderLayer / the stacks / nn.Transformer against torch 2.13 with copied
weights: outputs, input gradients and parameter gradients (float32, 1e-5), both norm_first settings, relu and
gelu, with attention masks and key padding masks. Dropout is 0 (torch in training mode, so its fast path
is off and gradients flow)."""

from __future__ import annotations

import numpy as np
import pytest

import minitorch_attn as mta
from minitorch_attn import nn
from minitorch_attn.functional.transformer import residual

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")

D, H, FF = 16, 4, 24
TOL = dict(rtol=1e-5, atol=1e-5)


def _copy_into(ours, theirs):
    ours.load_state_dict({k: v for k, v in theirs.state_dict().items()})
    assert list(ours.state_dict()) == list(theirs.state_dict()), "parameter names/order differ from torch"


def _check_grads(ours, theirs, names=None):
    tgrads = {k: p.grad.numpy() for k, p in theirs.named_parameters()}
    ograds = {k: p.grad for k, p in ours.named_parameters()}
    assert set(tgrads) == set(ograds)
    for k in tgrads:
        np.testing.assert_allclose(ograds[k], tgrads[k], err_msg=f"gradient of {k}", **TOL)


def _masks(rng, B, Nq, Nk, kind):
    """(our attn mask, torch attn mask, key padding mask) in torch's conventions (True = NOT allowed)."""
    if kind == "none":
        return None, None, None
    causal = ~np.tril(np.ones((Nq, Nk), dtype=bool))
    pad = np.zeros((B, Nk), dtype=bool)
    pad[0, -2:] = True  # padding at the end never masks a whole causal row
    pad[-1, -1] = True
    if kind == "bool":
        return causal, torch.from_numpy(causal), pad
    f = np.where(causal, -np.inf, 0.0).astype(np.float32)
    f += 0.1 * rng.standard_normal(f.shape).astype(np.float32) * ~causal  # a bias, too
    fp = np.where(pad, -np.inf, 0.0).astype(np.float32)
    return f, torch.from_numpy(f), fp


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("masks", ["none", "bool", "float"])
def test_encoder_layer_matches_torch(norm_first, activation, masks):
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    B, N = 3, 7
    t = torch.nn.TransformerEncoderLayer(D, H, FF, dropout=0.0, activation=activation, batch_first=True,
                                         norm_first=norm_first)
    ours = nn.TransformerEncoderLayer(D, H, FF, dropout=0.0, activation=activation, norm_first=norm_first)
    _copy_into(ours, t)
    x = rng.standard_normal((B, N, D)).astype(np.float32)
    am, tam, kpm = _masks(rng, B, N, N, masks)
    xt = torch.tensor(x, requires_grad=True)
    yt = t(xt, src_mask=tam, src_key_padding_mask=None if kpm is None else torch.from_numpy(kpm))
    xo = mta.tensor(x, requires_grad=True)
    yo = ours(xo, src_mask=am, src_key_padding_mask=kpm)
    np.testing.assert_allclose(yo.data, yt.detach().numpy(), **TOL)
    g = rng.standard_normal(yo.shape).astype(np.float32)
    yt.backward(torch.from_numpy(g))
    yo.backward(g)
    np.testing.assert_allclose(xo.grad, xt.grad.numpy(), **TOL)
    _check_grads(ours, t)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("masks", ["none", "bool", "float"])
def test_decoder_layer_matches_torch(norm_first, activation, masks):
    torch.manual_seed(0)
    rng = np.random.default_rng(2)
    B, T, S = 3, 5, 6
    t = torch.nn.TransformerDecoderLayer(D, H, FF, dropout=0.0, activation=activation, batch_first=True,
                                         norm_first=norm_first)
    ours = nn.TransformerDecoderLayer(D, H, FF, dropout=0.0, activation=activation, norm_first=norm_first)
    _copy_into(ours, t)
    tgt = rng.standard_normal((B, T, D)).astype(np.float32)
    mem = rng.standard_normal((B, S, D)).astype(np.float32)
    am, tam, tkpm = _masks(rng, B, T, T, masks)
    _, _, mkpm = _masks(rng, B, T, S, masks)
    tt, mt = torch.tensor(tgt, requires_grad=True), torch.tensor(mem, requires_grad=True)
    to = lambda a: None if a is None else torch.from_numpy(a)  # noqa: E731
    yt = t(tt, mt, tgt_mask=tam, tgt_key_padding_mask=to(tkpm), memory_key_padding_mask=to(mkpm))
    to_, mo = mta.tensor(tgt, requires_grad=True), mta.tensor(mem, requires_grad=True)
    yo = ours(to_, mo, tgt_mask=am, tgt_key_padding_mask=tkpm, memory_key_padding_mask=mkpm)
    np.testing.assert_allclose(yo.data, yt.detach().numpy(), **TOL)
    g = rng.standard_normal(yo.shape).astype(np.float32)
    yt.backward(torch.from_numpy(g))
    yo.backward(g)
    np.testing.assert_allclose(to_.grad, tt.grad.numpy(), **TOL)
    np.testing.assert_allclose(mo.grad, mt.grad.numpy(), **TOL)
    _check_grads(ours, t)


@pytest.mark.parametrize("norm_first", [False, True])
def test_full_transformer_matches_torch(norm_first):
    torch.manual_seed(0)
    rng = np.random.default_rng(3)
    B, S, T = 2, 6, 5
    kw = dict(d_model=D, nhead=H, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=FF, dropout=0.0,
              activation="gelu", norm_first=norm_first)
    t = torch.nn.Transformer(**kw, batch_first=True)
    ours = nn.Transformer(**kw)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in t.state_dict().items()]
    _copy_into(ours, t)
    src = rng.standard_normal((B, S, D)).astype(np.float32)
    tgt = rng.standard_normal((B, T, D)).astype(np.float32)
    mask = nn.Transformer.generate_square_subsequent_mask(T)
    np.testing.assert_array_equal(mask, torch.nn.Transformer.generate_square_subsequent_mask(T).numpy())
    spad = np.zeros((B, S), dtype=bool)
    spad[1, -2:] = True
    st, tt = torch.tensor(src, requires_grad=True), torch.tensor(tgt, requires_grad=True)
    yt = t(st, tt, tgt_mask=torch.from_numpy(mask), src_key_padding_mask=torch.from_numpy(spad),
           memory_key_padding_mask=torch.from_numpy(spad), tgt_is_causal=True)
    so, to_ = mta.tensor(src, requires_grad=True), mta.tensor(tgt, requires_grad=True)
    yo = ours(so, to_, tgt_mask=mask, src_key_padding_mask=spad, memory_key_padding_mask=spad, tgt_is_causal=True)
    np.testing.assert_allclose(yo.data, yt.detach().numpy(), **TOL)
    g = rng.standard_normal(yo.shape).astype(np.float32)
    yt.backward(torch.from_numpy(g))
    yo.backward(g)
    np.testing.assert_allclose(so.grad, st.grad.numpy(), **TOL)
    np.testing.assert_allclose(to_.grad, tt.grad.numpy(), **TOL)
    _check_grads(ours, t)


def test_stacks_and_causal_flag_match_torch():
    torch.manual_seed(0)
    rng = np.random.default_rng(4)
    layer_t = torch.nn.TransformerEncoderLayer(D, H, FF, dropout=0.0, batch_first=True, norm_first=True)
    enc_t = torch.nn.TransformerEncoder(layer_t, 3, norm=torch.nn.LayerNorm(D), enable_nested_tensor=False)
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(D, H, FF, dropout=0.0, norm_first=True), 3,
                                norm=nn.LayerNorm(D))
    _copy_into(enc, enc_t)
    x = rng.standard_normal((2, 6, D)).astype(np.float32)
    mask = nn.Transformer.generate_square_subsequent_mask(6)
    yt = enc_t(torch.from_numpy(x), mask=torch.from_numpy(mask), is_causal=True)
    np.testing.assert_allclose(enc(x, is_causal=True).data, yt.detach().numpy(), **TOL)  # the flag alone
    np.testing.assert_allclose(enc(x, mask=mask).data, yt.detach().numpy(), **TOL)
    # batch_first=False takes (N, B, E), as torch's default
    layer_sf = nn.TransformerEncoderLayer(D, H, FF, dropout=0.0, batch_first=False)
    layer_sf.load_state_dict(nn.TransformerEncoderLayer(D, H, FF, dropout=0.0).state_dict())
    ref = nn.TransformerEncoderLayer(D, H, FF, dropout=0.0)
    ref.load_state_dict(layer_sf.state_dict())
    np.testing.assert_allclose(layer_sf(x.transpose(1, 0, 2)).data.transpose(1, 0, 2), ref(x).data, atol=1e-6)


def test_dropout_is_active_in_training_and_off_in_eval():
    layer = nn.TransformerEncoderLayer(D, H, FF, dropout=0.5, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((2, 5, D)).astype(np.float32)
    a, b = layer(x).data, layer(x).data
    assert not np.allclose(a, b)
    layer.eval()
    np.testing.assert_array_equal(layer(x).data, layer(x).data)


def test_residual_orders_and_errors():
    x = mta.tensor(np.arange(6, dtype=np.float64).reshape(2, 3))
    double = lambda t: t * 2.0  # noqa: E731
    plus1 = lambda t: t + 1.0  # noqa: E731
    np.testing.assert_allclose(residual(x, double, plus1, norm_first=True).data, x.data + 2 * (x.data + 1))
    np.testing.assert_allclose(residual(x, double, plus1, norm_first=False).data, 3 * x.data + 1)
    with pytest.raises(ValueError, match="activation"):
        nn.TransformerEncoderLayer(D, H, activation="swish")
    with pytest.raises(ValueError, match="divisible"):
        nn.TransformerEncoderLayer(10, 3)
    with pytest.raises(ValueError, match="d_model"):
        nn.Transformer(d_model=D, nhead=H, num_encoder_layers=1, num_decoder_layers=1)(
            np.zeros((1, 2, D + 1), np.float32), np.zeros((1, 2, D), np.float32))


def test_seq2seq_transformer_shapes_padding_and_loss():
    from minitorch_attn.data import reversal_task
    from minitorch_attn.data.sequences import vocab_size

    model = nn.Seq2SeqTransformer(vocab_size(5), d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                                  dim_feedforward=24, rng=np.random.default_rng(0))
    batch = reversal_task(6, length=5, min_length=2, num_digits=5, seed=0)
    loss, logits = model.loss(batch)
    assert logits.shape == (6, 6, vocab_size(5)) and abs(loss.item() - np.log(vocab_size(5))) < 1.0
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    tokens, cross = model.greedy_decode(batch.src, batch.src_pad, steps=6)
    assert tokens.shape == (6, 6) and cross.shape == (6, 6, 5) and model.training
    np.testing.assert_allclose(cross.sum(-1), 1.0, atol=1e-5)
    assert np.all(cross[np.broadcast_to(batch.src_pad[:, None, :], cross.shape)] == 0)
    with pytest.raises(ValueError, match="max_len"):
        model(np.zeros((1, 70), np.int64), np.zeros((1, 3), np.int64))
