"""all-MiniLM-L6-v2 on our engine against the reference library (sentence-transformers / transformers on torch).

- the real checkpoint, 18 sentences of 3 to 43 tokens (11 distinct lengths) in ONE padded batch, backends
  naive, tiled and numba: embeddings within 1e-5 and last hidden states within 1e-4 in float32; both within
  1e-10 in float64 against the reference run in float64 (`.double()`);
- a tiny random BERT written by transformers' own `save_pretrained` (so the name table is checked against
  weights we did not write), and the bad inputs: no directory, missing files, another architecture's
  config, a tensor of the wrong shape, a missing tensor -- each error names the file, the tensor and shapes;
- the key-padding mask reaches the flash kernels (not a silent fallback to the naive path).

Needs the `pretrained` extra (CI installs it); without it the tests skip, saying how to install it. The reference
library reads the installed model directory only (HF_HUB_OFFLINE=1: nothing goes to the network).
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from minitorch_attn import nn  # noqa: E402
from minitorch_attn import pretrained as P  # noqa: E402

try:
    import safetensors.numpy  # noqa: F401
    import sentence_transformers  # noqa: F401
    import tokenizers  # noqa: F401
    import torch
    import transformers

    P.default_path()
except ImportError as e:
    pytest.skip(f"needs the `pretrained` extra ({e.name} is missing): {P.INSTALL}", allow_module_level=True)

BACKENDS = ("naive", "tiled", "numba")

SENTENCES = [
    "Hi",
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "Flash attention computes exact attention in tiles, never forming the full score matrix, which saves "
    "memory traffic; the online softmax rescales the partial sums whenever a larger score turns up in a tile.",
    "Dogs bark.",
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "I love pizza!",
    "Unbelievably, the tokenizer splits rare words like 'antidisestablishmentarianism' into word pieces.",
    "¿Dónde está la biblioteca?",
    "OK",
]


@pytest.fixture(scope="module")
def reference():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(P.default_path()), device="cpu")


@pytest.fixture(scope="module")
def encoder():
    return P.SentenceEncoder.from_pretrained(backend="naive")


def _ref_hidden(hf, batch):
    with torch.inference_mode():
        return hf(input_ids=torch.tensor(batch.input_ids), attention_mask=torch.tensor(batch.attention_mask),
                  token_type_ids=torch.tensor(batch.token_type_ids)).last_hidden_state.numpy()


def test_the_batch_is_padded_and_tokenized_as_the_reference(encoder, reference):
    batch = encoder.tokenize(SENTENCES)
    lengths = batch.lengths
    assert len(SENTENCES) >= 16 and len(set(lengths.tolist())) >= 10, f"lengths {lengths}: too few distinct"
    assert lengths.min() == 3 and lengths.max() == batch.input_ids.shape[1] > 40
    ref = reference.tokenizer(SENTENCES, padding=True, return_tensors="np")
    np.testing.assert_array_equal(batch.input_ids, ref["input_ids"])
    np.testing.assert_array_equal(batch.attention_mask, ref["attention_mask"])
    assert batch.tokens[0][:3] == ["[CLS]", "hi", "[SEP]"] and batch.tokens[0][3] == "[PAD]"


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_matches_sentence_transformers(encoder, reference, backend):
    encoder.model.set_backend(backend)
    try:
        ours = encoder.encode(SENTENCES, batch_size=32)  # one padded batch
        batch = encoder.tokenize(SENTENCES)
        hidden = encoder.hidden_states(batch)
    finally:
        encoder.model.set_backend("naive")
    ref = reference.encode(SENTENCES, batch_size=32, convert_to_numpy=True)
    assert ours.shape == ref.shape == (len(SENTENCES), 384) and ours.dtype == np.float32
    err = np.abs(ours - ref).max()
    assert err <= 1e-5, f"{backend}: embeddings differ from sentence-transformers by {err:.2e} (allowed 1e-5)"
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)
    real = batch.attention_mask.astype(bool)
    herr = np.abs(hidden - _ref_hidden(reference[0].auto_model, batch))[real].max()
    assert herr <= 1e-4, f"{backend}: last hidden states (real tokens) differ by {herr:.2e} (allowed 1e-4)"


@pytest.fixture(scope="module")
def float64_pair(reference):
    from sentence_transformers import SentenceTransformer

    ref64 = SentenceTransformer(str(P.default_path()), device="cpu").double()
    enc64 = P.SentenceEncoder.from_pretrained(dtype=np.float64, backend="naive")
    return enc64, ref64


@pytest.mark.parametrize("backend", BACKENDS)
def test_float64_matches_the_reference_in_float64(float64_pair, backend):
    enc64, ref64 = float64_pair
    enc64.model.set_backend(backend)
    try:
        ours = enc64.encode(SENTENCES, batch_size=32)
        batch = enc64.tokenize(SENTENCES)
        hidden = enc64.hidden_states(batch)
    finally:
        enc64.model.set_backend("naive")
    ref = ref64.encode(SENTENCES, batch_size=32, convert_to_numpy=True)
    assert ours.dtype == ref.dtype == np.float64
    err = np.abs(ours - ref).max()
    herr = np.abs(hidden - _ref_hidden(ref64[0].auto_model, batch))[batch.attention_mask.astype(bool)].max()
    assert err <= 1e-10 and herr <= 1e-10, f"{backend} float64: embeddings {err:.2e}, hidden {herr:.2e} (1e-10)"


def test_padding_and_batching_do_not_change_an_embedding(encoder):
    alone = np.stack([encoder.encode([s])[0] for s in SENTENCES[:6]])
    together = encoder.encode(SENTENCES, batch_size=32)[:6]  # padded to the longest sentence (43 tokens)
    assert np.abs(alone - together).max() < 1e-6
    small = encoder.encode(SENTENCES, batch_size=5)  # length-sorted batches, rows back in the input order
    assert np.abs(small - encoder.encode(SENTENCES, batch_size=32)).max() < 1e-6


def test_key_padding_goes_through_the_kernels(encoder, monkeypatch):
    import minitorch_attn.kernels as kernels

    calls = []
    original = kernels.flash_attention

    def spy(q, k, v, **kw):
        calls.append((q.shape, None if kw.get("key_padding_mask") is None else kw["key_padding_mask"].copy()))
        return original(q, k, v, **kw)

    monkeypatch.setattr(kernels, "flash_attention", spy)
    batch = encoder.tokenize(SENTENCES[:4])
    encoder.model.set_backend("numba")
    try:
        encoder.hidden_states(batch)
    finally:
        encoder.model.set_backend("naive")
    assert len(calls) == 6, f"the numba backend ran the kernel {len(calls)} times for 6 layers"
    shape, kpm = calls[0]
    assert shape == (4, 12, batch.input_ids.shape[1], 32)
    np.testing.assert_array_equal(kpm, batch.attention_mask == 0)


def test_a_backend_that_cannot_take_the_mask_says_so():
    mha = nn.MultiheadAttention(8, 2, packed=False, backend="numba", rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((2, 5, 8)).astype(np.float32)
    pad = np.zeros((2, 5), bool)
    pad[1, 3:] = True
    out = mha(x, x, x, key_padding_mask=pad, need_weights=False)[0]
    naive = mha(x, x, x, key_padding_mask=pad, need_weights=False, backend="naive")[0]
    assert np.abs(out.data - naive.data).max() < 1e-6
    with pytest.raises(ValueError, match="backend 'numba' cannot"):
        mha(x, x, x, key_padding_mask=np.where(pad, -np.inf, 0.0).astype(np.float32), need_weights=False)
    with pytest.raises(ValueError, match="return_weights"):
        mha(x, x, x, key_padding_mask=pad, need_weights=True)


def test_separate_layout_is_the_packed_one_split():
    packed = nn.MultiheadAttention(8, 2, rng=np.random.default_rng(0))
    separate = nn.MultiheadAttention(8, 2, packed=False, rng=np.random.default_rng(1))
    assert "in_proj_weight" in dict(packed.named_parameters())
    names = dict(separate.named_parameters())
    assert {"q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias"} <= set(names)
    assert "in_proj_weight" not in names
    w = packed.in_proj_weight.data
    state = {"q_proj_weight": w[:8], "k_proj_weight": w[8:16], "v_proj_weight": w[16:],
             "in_proj_bias": np.arange(24, dtype=np.float32) / 24,
             "out_proj.weight": packed.out_proj.weight.data, "out_proj.bias": packed.out_proj.bias.data}
    separate.load_state_dict(state)
    packed.in_proj_bias.data[...] = state["in_proj_bias"]
    x = np.random.default_rng(2).standard_normal((2, 4, 8)).astype(np.float32)
    np.testing.assert_array_equal(separate(x, x, x)[0].data, packed(x, x, x)[0].data)
    with pytest.raises(ValueError, match="packed=True needs kdim"):
        nn.MultiheadAttention(8, 2, kdim=4, packed=True)


def test_attention_maps_are_distributions_over_the_real_tokens(encoder):
    batch = encoder.tokenize(SENTENCES[:3])
    w = encoder.model.attention_maps(batch.input_ids, batch.attention_mask, layer=2)
    n = batch.input_ids.shape[1]
    assert w.shape == (3, 12, n, n)
    real = batch.attention_mask.astype(bool)
    np.testing.assert_allclose(w.sum(-1)[np.broadcast_to(real[:, None], (3, 12, n))], 1.0, atol=1e-5)
    assert np.all(w[np.broadcast_to(~real[:, None, None, :], w.shape)] == 0), "a padded key got attention"
    with pytest.raises(IndexError, match="0 .. 5"):
        encoder.model.attention_maps(batch.input_ids, batch.attention_mask, layer=6)


def test_unused_tensors_are_listed(encoder):
    assert encoder.model.unused == ["embeddings.position_ids", "pooler.dense.bias", "pooler.dense.weight"]


# ---- a tiny random BERT written by transformers, and bad inputs --------------------------------------------
TINY = dict(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=4, intermediate_size=24,
            max_position_embeddings=20, type_vocab_size=2, layer_norm_eps=1e-12)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(directory, transformers' BertModel): random weights, saved by transformers as safetensors."""
    torch.manual_seed(0)
    model = transformers.BertModel(transformers.BertConfig(**TINY)).eval()
    path = tmp_path_factory.mktemp("tiny_bert")
    model.save_pretrained(path, safe_serialization=True)
    return path, model


def _copy(src, dst, skip=()):
    dst.mkdir()
    for f in src.iterdir():
        if f.name not in skip:
            shutil.copy(f, dst / f.name)
    return dst


def test_tiny_random_bert_matches_transformers(tiny):
    path, ref = tiny
    for dtype, tol in ((np.float32, 1e-5), (np.float64, 1e-12)):
        ours = P.load_bert(path, dtype=dtype, backend="naive")
        rng = np.random.default_rng(0)
        ids = rng.integers(1, TINY["vocab_size"], size=(3, 11))
        mask = np.ones_like(ids)
        mask[1, 7:] = 0
        mask[2, 2:] = 0
        with torch.inference_mode():
            r = ref.to(torch.float64 if dtype == np.float64 else torch.float32)(
                input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).last_hidden_state.numpy()
        h = ours(ids, mask).data
        err = np.abs(h - r)[mask.astype(bool)].max()
        assert h.dtype == dtype and err < tol, f"{dtype.__name__}: {err:.2e}"


def test_no_directory_or_missing_files(tiny, tmp_path):
    path, _ = tiny
    with pytest.raises(FileNotFoundError, match="does not exist"):
        P.load_bert(tmp_path / "nowhere")
    bare = _copy(path, tmp_path / "no_weights", skip=("model.safetensors",))
    with pytest.raises(FileNotFoundError, match=r"no model\.safetensors .*config\.json"):
        P.load_bert(bare)
    with pytest.raises(FileNotFoundError, match=r"no tokenizer\.json"):
        P.SentenceEncoder.from_pretrained(path)


def test_another_architecture_is_refused(tiny, tmp_path):
    path, _ = tiny
    other = _copy(path, tmp_path / "gpt2")
    (other / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
                                                   "n_embd": 768}))
    with pytest.raises(P.CheckpointError, match=r"config\.json: model_type 'gpt2' \(architectures \['GPT2LMHeadM"):
        P.load_bert(other)
    raw = json.loads((path / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**raw, "hidden_act": "relu"}))
    with pytest.raises(P.CheckpointError, match="hidden_act = 'relu'"):
        P.load_bert(other)


def test_a_tensor_of_the_wrong_shape_or_missing(tiny, tmp_path):
    from safetensors.numpy import load_file, save_file

    path, _ = tiny
    tensors = load_file(str(path / "model.safetensors"))
    bad = _copy(path, tmp_path / "bad_shape")
    name = "encoder.layer.1.intermediate.dense.weight"
    save_file({**tensors, name: np.ascontiguousarray(tensors[name].T)}, str(bad / "model.safetensors"))
    with pytest.raises(P.CheckpointError) as e:
        P.load_bert(bad)
    msg = str(e.value)
    assert str(bad / "model.safetensors") in msg and name in msg and "(16, 24)" in msg and "(24, 16)" in msg, msg
    assert "layers.1.linear1.weight" in msg and "transposed" in msg, msg
    gone = _copy(path, tmp_path / "missing")
    save_file({k: v for k, v in tensors.items() if k != "encoder.layer.0.attention.self.key.bias"},
              str(gone / "model.safetensors"))
    with pytest.raises(P.CheckpointError, match=r"no tensor 'encoder\.layer\.0\.attention\.self\.key\.bias'.*"
                                                r"in_proj_bias"):
        P.load_bert(gone)
    broken = _copy(path, tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(P.CheckpointError, match="cannot be read as safetensors"):
        P.load_bert(broken)
