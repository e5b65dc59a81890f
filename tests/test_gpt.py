"""nn.GPT, the training loop, checkpoints and the character corpus: the loss falls on a tiny corpus within a
bounded number of seeded steps; a checkpoint round-trips (identical logits) and a resumed run continues
identically; the cached generation step equals the full forward; causality; weight tying; the corpus loader's
errors; the train-char / sample command line on a slice of tiny Shakespeare."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minitorch_attn as mta
from minitorch_attn import nn
from minitorch_attn.data import text as text_mod
from minitorch_attn.data.text import CorpusNotFound, char_corpus, load_char_corpus
from minitorch_attn.functional.sdpa import cached_attention
from minitorch_attn.functional.transformer import next_token_probs, sample_tokens
from minitorch_attn.training.checkpoint import load_checkpoint, restore, save_checkpoint
from minitorch_attn.training.loop import train_loop

ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
TINY_TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
             "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. resolved.\n\n") * 20


def small_gpt(vocab=13, block=16, seed=0, **kw):
    cfg = nn.GPTConfig(vocab_size=vocab, block_size=block, n_layer=2, n_head=2, n_embd=16, bias=kw.pop("bias", True),
                       **kw)
    return nn.GPT(cfg, rng=np.random.default_rng(seed))


def corpus_slice(n=20_000):
    """The first n characters of tiny Shakespeare, or a generated stand-in when CI's copy is absent."""
    if SHAKESPEARE.is_file():
        return SHAKESPEARE.read_text(encoding="utf-8")[:n], SHAKESPEARE
    return TINY_TEXT, None


# ---- the model ----------------------------------------------------------------------------------------------
def test_weight_tying_is_one_parameter_and_names_are_nanogpts():
    m = small_gpt()
    assert m.lm_head.weight is m.transformer.wte.weight
    names = [n for n, _ in m.named_parameters()]
    assert "lm_head.weight" not in names and names.count("transformer.wte.weight") == 1
    sd = m.state_dict()
    assert "lm_head.weight" in sd and "transformer.h.1.attn.c_attn.weight" in sd and "transformer.ln_f.bias" in sd
    n, L, V, T = 16, 2, 13, 16
    per_block = 2 * 2 * n + (3 * n * n + 3 * n) + (n * n + n) + (4 * n * n + 4 * n) + (4 * n * n + n)
    expected = V * n + T * n + L * per_block + 2 * n
    assert m.num_parameters() == expected
    # a gradient from the head and one from the embedding land in the same .grad
    idx = np.array([[1, 2, 3]])
    _, loss = m(idx, idx)
    loss.backward()
    assert m.lm_head.weight.grad is not None and m.lm_head.weight.grad[1:4].any() and m.lm_head.weight.grad[5].any()


def test_init_follows_nanogpt():
    m = nn.GPT(nn.GPTConfig(vocab_size=50, block_size=32, n_layer=4, n_head=4, n_embd=64), rng=np.random.default_rng(0))
    std = lambda name: float(dict(m.named_parameters())[name].data.std())  # noqa: E731
    assert abs(std("transformer.wte.weight") - 0.02) < 0.002
    assert abs(std("transformer.h.0.mlp.c_fc.weight") - 0.02) < 0.002
    assert abs(std("transformer.h.0.mlp.c_proj.weight") - 0.02 / np.sqrt(8)) < 0.001
    assert not dict(m.named_parameters())["transformer.h.0.attn.c_attn.bias"].data.any()
    assert np.all(dict(m.named_parameters())["transformer.h.0.ln_1.weight"].data == 1)


def test_configure_optimizers_decay_groups():
    """"matrices" (nanoGPT since May 2023) decays every >= 2-D parameter, embeddings included; "linear" (nanoGPT
    when its README reported 1.88) only the Linear weights, not the tied head/token embedding nor wpe."""
    m = small_gpt(bias=True)
    names = {id(p): n for n, p in m.named_parameters()}
    for decay, expected in (("matrices", {n for n, p in m.named_parameters() if p.ndim >= 2}),
                            ("linear", {n for n, p in m.named_parameters()
                                        if n.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight"))})):
        opts = m.configure_optimizers(0.1, 1e-3, decay=decay)
        assert [o.weight_decay for o in opts] == [0.1, 0.0]
        assert {names[id(p)] for p in opts[0].params} == expected
        assert len(opts[0].params) + len(opts[1].params) == len(names)
    with pytest.raises(ValueError, match="decay must be"):
        m.configure_optimizers(0.1, 1e-3, decay="all")


def test_gelu_config_picks_the_mlp_activation():
    """GPTConfig(gelu="tanh") is nanoGPT's early new_gelu: 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))."""
    x = np.random.default_rng(1).standard_normal((2, 3, 16))
    for gelu in ("none", "tanh"):
        m = small_gpt(gelu=gelu).double()
        mlp = m.transformer.h[0].mlp
        h = x @ mlp.c_fc.weight.data.T + mlp.c_fc.bias.data
        if gelu == "tanh":
            act = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h**3)))
        else:
            from scipy.special import ndtr

            act = h * ndtr(h)
        expected = act @ mlp.c_proj.weight.data.T + mlp.c_proj.bias.data
        np.testing.assert_allclose(mlp(mta.tensor(x)).data, expected, rtol=1e-12, atol=1e-12)
    assert nn.GPTConfig.from_dict(nn.GPTConfig(gelu="tanh").to_dict()).gelu == "tanh"


def test_causality_future_tokens_do_not_change_earlier_logits():
    m = small_gpt()
    rng = np.random.default_rng(1)
    idx = rng.integers(0, 13, (2, 12))
    changed = idx.copy()
    changed[:, 7:] = rng.integers(0, 13, (2, 5))
    a, _ = m(idx)
    b, _ = m(changed)
    np.testing.assert_array_equal(a.data[:, :7], b.data[:, :7])
    assert np.abs(a.data[:, 7:] - b.data[:, 7:]).max() > 1e-3


def test_cached_step_equals_full_forward_and_generation_matches():
    m = small_gpt(block=16)
    rng = np.random.default_rng(2)
    idx = rng.integers(0, 13, (3, 12))
    full, _ = m(idx)
    logits, past = m.forward_cached(idx[:, :5])
    np.testing.assert_allclose(logits.data, full.data[:, 4], atol=1e-5)
    for t in range(5, 12):
        logits, past = m.forward_cached(idx[:, t : t + 1], past)
        np.testing.assert_allclose(logits.data, full.data[:, t], atol=1e-5, err_msg=f"cached step at position {t}")
    assert past[0][0].shape == (3, 2, 12, 8)
    # past block_size the window slides; both paths crop the same way
    for kw in (dict(temperature=1.0, top_k=None), dict(temperature=0.7, top_k=4), dict(temperature=0.0)):
        a = m.generate(idx[:, :3], 30, rng=np.random.default_rng(5), **kw)
        b = m.generate(idx[:, :3], 30, rng=np.random.default_rng(5), use_cache=False, **kw)
        np.testing.assert_array_equal(a, b)
        assert a.shape == (3, 33) and np.array_equal(a[:, :3], idx[:, :3])
    assert m.training  # generate restores the mode


def test_cached_attention_uses_a_bottom_right_causal_mask():
    rng = np.random.default_rng(3)
    q, k, v = (mta.tensor(rng.standard_normal((1, 2, 6, 4))) for _ in range(3))
    full, _ = cached_attention(q, k, v)
    ref = mta.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    np.testing.assert_allclose(full.data, ref.data, atol=1e-12)
    _, past = cached_attention(q[:, :, :4], k[:, :, :4], v[:, :, :4])
    out, (k_all, v_all) = cached_attention(q[:, :, 4:], k[:, :, 4:], v[:, :, 4:], past)
    np.testing.assert_allclose(out.data, full.data[:, :, 4:], atol=1e-12)
    assert k_all.shape == (1, 2, 6, 4)


def test_next_token_probs_and_sampling():
    logits = np.array([[1.0, 3.0, 2.0, 3.0], [0.0, 0.0, 0.0, 5.0]])
    p = next_token_probs(logits)
    np.testing.assert_allclose(p.sum(-1), 1.0)
    np.testing.assert_allclose(p[0], np.exp(logits[0]) / np.exp(logits[0]).sum())
    p2 = next_token_probs(logits, top_k=2)
    assert p2[0, 0] == 0 and p2[0, 2] == 0 and p2[0, 1] == p2[0, 3] == 0.5  # ties with the k-th survive
    pt = next_token_probs(logits, temperature=0.5)
    np.testing.assert_allclose(pt[1], np.exp(2 * logits[1]) / np.exp(2 * logits[1]).sum())
    g = next_token_probs(logits, temperature=0)
    np.testing.assert_array_equal(g, [[0, 1, 0, 0], [0, 0, 0, 1]])
    draws = np.array([sample_tokens(p, np.random.default_rng(s)) for s in range(2000)])
    np.testing.assert_allclose(np.bincount(draws[:, 0], minlength=4) / 2000, p[0], atol=0.04)
    with pytest.raises(ValueError):
        next_token_probs(logits, top_k=0)
    with pytest.raises(ValueError):
        next_token_probs(logits[0])


def test_errors_name_the_problem():
    m = small_gpt(block=8)
    with pytest.raises(ValueError, match="block_size"):
        m(np.zeros((1, 9), dtype=np.int64))
    with pytest.raises(ValueError, match="integer"):
        m(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="divisible"):
        nn.GPT(nn.GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=3, n_embd=16))


# ---- training, checkpoints, resume ------------------------------------------------------------------------
def _setup(seed=0):
    corpus = char_corpus(TINY_TEXT)
    m = small_gpt(vocab=corpus.vocab_size, block=16, seed=seed, bias=False)
    opts = m.configure_optimizers(0.1, 3e-3)
    return corpus, m, opts


def test_loss_decreases_on_a_tiny_corpus_within_bounded_steps():
    corpus, m, opts = _setup()
    def val(mm):
        return {"val": mm(*corpus.get_batch("val", 16, 16, np.random.default_rng(0)))[1].item()}

    hist = train_loop(m, lambda rng: corpus.get_batch("train", 8, 16, rng), lambda mm, b: mm(*b)[1], opts, 150,
                      warmup_steps=10, min_lr=3e-4, seed=0, progress=False, eval_fn=val, eval_interval=75)
    first, last = np.mean(hist["loss"][:5]), np.mean(hist["loss"][-10:])
    assert first > 0.9 * np.log(corpus.vocab_size)
    assert last < 0.6 * first, (first, last)
    assert [e["step"] for e in hist["eval"]] == [0, 75, 150]
    assert hist["eval"][-1]["val"] < 0.7 * hist["eval"][0]["val"]
    assert hist["lr"][0] == pytest.approx(3e-3 / 10) and hist["lr"][-1] < 4e-4


def test_checkpoint_round_trip_gives_identical_logits(tmp_path):
    corpus, m, opts = _setup()
    train_loop(m, lambda rng: corpus.get_batch("train", 4, 16, rng), lambda mm, b: mm(*b)[1], opts, 5,
               progress=False)
    path = save_checkpoint(tmp_path / "c.npz", m, opts, step=5, config={"model": m.config.to_dict(), "note": "x"})
    ck = load_checkpoint(path)
    assert ck["step"] == 5 and ck["config"]["note"] == "x"
    m2 = nn.GPT(nn.GPTConfig.from_dict(ck["config"]["model"]), rng=np.random.default_rng(99))
    restore(ck, m2)
    idx = corpus.get_batch("val", 2, 16, np.random.default_rng(0))[0]
    np.testing.assert_array_equal(m(idx)[0].data, m2(idx)[0].data)
    assert m2.lm_head.weight is m2.transformer.wte.weight  # tying survives loading
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.npz")


def test_resume_continues_identically(tmp_path):
    batch = lambda rng: corpus.get_batch("train", 4, 16, rng)  # noqa: E731
    loss = lambda mm, b: mm(*b)[1]  # noqa: E731
    evalf = lambda mm: {"l": 0.0}  # noqa: E731
    kw = dict(warmup_steps=3, min_lr=1e-4, seed=7, progress=False, eval_fn=evalf, eval_interval=5)
    corpus, m_a, opts_a = _setup()
    hist_a = train_loop(m_a, batch, loss, opts_a, 12, **kw)

    class Interrupt(Exception):
        pass

    def interrupted(rng, calls=[0]):  # noqa: B006 - a counter
        calls[0] += 1
        if calls[0] == 8:
            raise Interrupt
        return batch(rng)

    _, m_b, opts_b = _setup()
    ck = tmp_path / "ckpt.npz"
    with pytest.raises(Interrupt):
        train_loop(m_b, interrupted, loss, opts_b, 12, checkpoint=ck, **kw)
    assert load_checkpoint(ck)["step"] == 5
    _, m_c, opts_c = _setup(seed=123)  # different init: everything must come from the checkpoint
    hist_c = train_loop(m_c, batch, loss, opts_c, 12, checkpoint=ck, resume=ck, **kw)
    assert hist_c["loss"] == hist_a["loss"] and hist_c["lr"] == hist_a["lr"]
    for (name, pa), (_, pc) in zip(m_a.named_parameters(), m_c.named_parameters()):
        np.testing.assert_array_equal(pa.data, pc.data, err_msg=name)
    assert [e["step"] for e in hist_c["eval"]] == [0, 5, 10, 12]


# ---- the corpus and the command line -------------------------------------------------------------------------
def test_corpus_split_batches_and_encoding():
    c = char_corpus(TINY_TEXT)
    assert c.chars == sorted(set(TINY_TEXT)) and c.decode(c.encode("Speak")) == "Speak"
    n = len(TINY_TEXT)
    assert len(c.train_data) == int(0.9 * n) and len(c.val_data) == n - int(0.9 * n)
    x, y = c.get_batch("train", 5, 8, np.random.default_rng(0))
    assert x.shape == y.shape == (5, 8) and x.dtype == np.int64
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    x2, _ = c.get_batch("train", 5, 8, np.random.default_rng(0))
    np.testing.assert_array_equal(x, x2)
    with pytest.raises(KeyError, match="not in the corpus"):
        c.encode("€")


def test_corpus_loader_says_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv("MTA_DATA", raising=False)
    monkeypatch.setattr(text_mod, "DEFAULT_CORPUS", tmp_path / "nowhere" / "tinyshakespeare.txt")
    with pytest.raises(CorpusNotFound) as e:
        load_char_corpus()
    msg = str(e.value)
    assert str(tmp_path / "nowhere" / "tinyshakespeare.txt") in msg and "MTA_DATA" in msg and "--data" in msg
    with pytest.raises(CorpusNotFound, match="no text file"):
        load_char_corpus(tmp_path / "missing.txt")
    monkeypatch.setenv("MTA_DATA", str(tmp_path / "env.txt"))
    with pytest.raises(CorpusNotFound, match="MTA_DATA"):
        load_char_corpus()
    (tmp_path / "env.txt").write_text("abcabc" * 10, encoding="utf-8")
    assert load_char_corpus().chars == ["a", "b", "c"]


def test_default_corpus_location_is_the_shared_folder():
    assert text_mod.DEFAULT_CORPUS.resolve() == SHAKESPEARE.resolve()


def test_train_char_and_sample_command_line(tmp_path):
    text, source = corpus_slice(20_000)
    if source is None:  # CI keeps tiny Shakespeare next to the project; elsewhere use a generated stand-in
        source = tmp_path / "corpus.txt"
        source.write_text(text, encoding="utf-8")
    else:
        source = tmp_path / "slice.txt"
        source.write_text(text, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "minitorch_attn", "train-char", "--data", str(source), "--preset", "tiny",
                        "--iters", "40", "--out", str(out), "--no-progress"], capture_output=True, text=True, env=env,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "val_loss" in r.stdout and (out / "ckpt.npz").is_file()
    ck = load_checkpoint(out / "ckpt.npz")
    assert ck["step"] == 40 and ck["config"]["model"]["n_layer"] == 2
    evals = ck["history"]["eval"]
    assert evals[-1]["train_loss"] < evals[0]["train_loss"] - 0.3
    r = subprocess.run([sys.executable, "-m", "minitorch_attn", "sample", "--checkpoint", str(out / "ckpt.npz"),
                        "--prompt", "First", "--tokens", "30"], capture_output=True, text=True, env=env, cwd=ROOT,
                       timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("First") and len(r.stdout.rstrip("\n")) >= 30
    r = subprocess.run([sys.executable, "-m", "minitorch_attn", "train-char", "--data", str(tmp_path / "no.txt"),
                        "--preset", "tiny"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert r.returncode == 2 and "no text file" in r.stderr


def test_dropout_trains_and_eval_is_deterministic():
    m = small_gpt(dropout=0.3)
    idx = np.random.default_rng(0).integers(0, 13, (2, 8))
    assert not np.array_equal(m(idx)[0].data, m(idx)[0].data)
    m.eval()
    np.testing.assert_array_equal(m(idx)[0].data, m(idx)[0].data)
    a = m.generate(idx[:, :2], 5, rng=np.random.default_rng(0))
    assert not m.training and a.shape == (2, 7)
