# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 04 — Luong attention: dot, general, concat, local-p
#
# Luong, Pham & Manning (2015) simplified Bahdanau's recipe. The decoder first takes its step, then
# attends with its **current** state $h_t$, and they compared three scores of $h_t$ against an encoder
# state $\bar h_s$:
#
# $$\text{dot: } h_t^\top \bar h_s \qquad \text{general: } h_t^\top W_a \bar h_s \qquad
#   \text{concat: } v_a^\top \tanh(W_a [h_t; \bar h_s])$$
#
# (`concat` is Bahdanau's additive score). They also proposed **local** attention: predict a source
# position $p_t = S \cdot \sigma(v_p^\top \tanh(W_p h_t))$ and attend only inside the window
# $[p_t - D, p_t + D]$, weighting it with a Gaussian of $\sigma = D/2$ centred on $p_t$.
#
# Exercises (in `exercises/lesson04_luong.py`, graded by `pytest tests/exercises/test_lesson04_luong.py`):
#
# | exercise | what | points |
# |---|---|---|
# | 4.1 | `luong_score`: the dot, general and concat scores | 3 |
# | 4.2 | `local_p_weights`: the Gaussian window around $p_t$ | 3 |

# %%
import matplotlib.pyplot as plt
import numpy as np

import minitorch_attn as mta
from minitorch_attn import viz
from minitorch_attn.data import reversal_task
from minitorch_attn.data.sequences import vocab_size
from minitorch_attn.evaluation.seq2seq import evaluate
from minitorch_attn.functional.luong import local_p_weights
from minitorch_attn.nn import LuongAttention, Seq2Seq
from minitorch_attn.training.seq2seq import train_seq2seq

# mta.course.use("exercises")   # run the lesson on your own code
np.set_printoptions(precision=4, suppress=True)
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. Three scores, and one exact identity
#
# `general` with $W_a = I$ *is* `dot`. We check it in float64 with the same queries and keys:

# %%
B, Nq, Nk, d = 2, 3, 7, 8
q = mta.tensor(rng.standard_normal((B, Nq, d)))
k = mta.tensor(rng.standard_normal((B, Nk, d)))
v = mta.tensor(rng.standard_normal((B, Nk, 5)))
dot = LuongAttention(d, d, score="dot", dtype=np.float64)
general = LuongAttention(d, d, score="general", rng=rng, dtype=np.float64)
general.W_a.data[...] = np.eye(d)
(c_dot, w_dot), (c_gen, w_gen) = dot(q, k, v), general(q, k, v)
diff = max(np.abs(c_dot.data - c_gen.data).max(), np.abs(w_dot.data - w_gen.data).max())
print(f"general(W = I) vs dot: max |difference| = {diff:.1e}")
assert diff <= 1e-6

concat = LuongAttention(d, d, score="concat", hidden_dim=6, rng=rng, dtype=np.float64)
for name, m in (("dot", dot), ("general", general), ("concat", concat)):
    c, w = m(q, k, v)
    assert np.allclose(w.data.sum(-1), 1)
    print(f"{name:8s} parameters: {sum(p.size for p in m.parameters()):4d}   weights of query 0:", w.data[0, 0])

# %% [markdown]
# ## 2. Local-p attention
#
# With `window=D`, `LuongAttention` predicts $p_t \in [0, S-1]$ (positions count from 0 here), takes the
# softmax of the scores over the keys inside the window only, and multiplies by
# $\exp(-(s-p_t)^2 / 2\sigma^2)$, $\sigma = D/2$. Like the paper, we do **not** renormalise after the
# Gaussian, so a row sums to less than one (`renormalize=True` divides by the row sum). Outside the window
# the weights are exactly zero:

# %%
S, D = 20, 3
scores = mta.tensor(rng.standard_normal((1, 4, S)))
p = mta.tensor(np.array([[2.0, 7.5, 11.2, 18.0]]))
w = local_p_weights(scores, p, D).data[0]
s = np.arange(S)
fig, ax = plt.subplots(1, 2, figsize=(11, 3))
for t in range(4):
    ax[0].plot(s, w[t], marker="o", ms=3, label=f"p_t = {p.data[0, t]}")
    ax[0].axvspan(p.data[0, t] - D, p.data[0, t] + D, alpha=0.08, color=f"C{t}")
ax[0].set(title=f"local-p weights, D = {D}", xlabel="source position s")
ax[0].legend(fontsize=7)
viz.heatmap(w, xlabel="source position", ylabel="query", title="the same weights", ax=ax[1])
plt.show()

outside = np.abs(s - p.data[0, :, None]) > D
print("largest weight outside the windows:", w[outside].max(), "  row sums:", w.sum(-1))
assert np.all(w[outside] == 0.0)
assert np.all(w.sum(-1) <= 1 + 1e-12)

# %% [markdown]
# The same holds for the module, whose $p_t$ comes from the query, and for every window size:

# %%
for D_ in (1, 2, 5):
    local = LuongAttention(d, d, score="general", window=D_, rng=np.random.default_rng(D_), dtype=np.float64)
    keys = mta.tensor(rng.standard_normal((B, 12, d)))
    _, w = local(q, keys, keys)
    pos = local.positions(q, 12).data
    out = np.abs(np.arange(12) - pos[..., None]) > D_
    assert np.all(w.data[out] == 0.0)
    print(f"D = {D_}: predicted positions {pos[0]}, nonzero weights per row {(w.data[0] > 0).sum(-1)}")

# %% [markdown]
# **Local → global.** As $D$ grows, the window covers every key and $\sigma = D/2 \to \infty$ flattens the
# Gaussian to 1, so local-p attention becomes global attention with the same score:

# %%
keys = mta.tensor(rng.standard_normal((B, Nk, d)))
glob = LuongAttention(d, d, score="general", rng=np.random.default_rng(7), dtype=np.float64)
for D_ in (2.0, 10.0, 1e2, 1e4, 1e6):
    local = LuongAttention(d, d, score="general", window=D_, rng=np.random.default_rng(7), dtype=np.float64)
    local.W_a.data[...] = glob.W_a.data
    gap = np.abs(local(q, keys, v)[1].data - glob(q, keys, v)[1].data).max()
    print(f"D = {D_:9.0f}: max |local - global| = {gap:.1e}")
assert gap <= 1e-6

# %%
local = LuongAttention(3, 3, score="concat", window=2, hidden_dim=4, rng=rng, dtype=np.float64)
qs, ks = (mta.tensor(rng.standard_normal(sh), requires_grad=True) for sh in ((2, 2, 3), (2, 6, 3)))
assert mta.gradcheck(lambda a, b: local(a, b, b)[0], [qs, ks])
print("gradcheck of local-p attention (float64): passed — the gradient reaches p_t through the Gaussian")

# %% [markdown]
# ## 3. The scores on digit reversal
#
# The same encoder-decoder as in lesson 03 (bidirectional GRU, hidden 32, 400 steps), now with the Luong
# decoder: it steps first and attends with $h_t$, then predicts from $\tilde h_t = \tanh(W_c [c_t; h_t])$.
# Since attention is outside the recurrence, teacher forcing runs the whole target through the GRU and
# attends for all steps in one batched call. `dot` needs keys as wide as the decoder state, so the
# 64-wide bidirectional annotations are first projected to 32.

# %%
# NBVAL_IGNORE_OUTPUT
# (progress bars and timings differ from run to run and machine to machine)
L = 10
runs = {}
for name, score, window in [("dot", "dot", None), ("general", "general", None), ("concat", "concat", None),
                            ("local-p (general, D=2)", "general", 2)]:
    model = Seq2Seq(vocab_size(), emb_dim=16, hidden_dim=32, attention=score, window=window,
                    rng=np.random.default_rng(0))
    hist = train_seq2seq(model, reversal_task, steps=400, batch_size=32, lr=1e-2, length=L, seed=0, desc=name)
    runs[name] = (model, hist)
    print(f"{name:24s} trained in {hist['seconds']:.1f} s")

# %%
test = reversal_task(500, length=L, seed=1234)
anti = L - 1 - np.arange(L)
evals = {}
for name, (model, _) in runs.items():
    r = evaluate(model, test)
    r["anti"] = float((r["alignments"][:, :L].argmax(-1) == anti).mean())
    evals[name] = r
    print(f"{name:24s} token accuracy {r['token_accuracy']:.2f}   argmax on the anti-diagonal {r['anti']:.2f}")
for name, r in evals.items():
    assert r["token_accuracy"] >= 0.9 and r["anti"] >= 0.85, (name, r["token_accuracy"], r["anti"])

# %%
fig, ax = plt.subplots(1, 4, figsize=(16, 3.4))
for a_, (name, r) in zip(ax, evals.items()):
    viz.heatmap(r["alignments"][0, : L + 1], title=name, xlabel="source", ylabel="output", ax=a_, colorbar=False)
plt.show()

# %% [markdown]
# All three global scores solve reversal at this size, with sharp anti-diagonal alignments. Local-p learns
# to predict the position $p_t = L - 1 - t$ from the decoder state and attends inside a window of 5 keys.
#
# ## Summary
#
# - Luong attends with the current state; `dot` has no parameters, `general` learns a bilinear form
#   ($W_a = I$ gives `dot` exactly), `concat` is Bahdanau's additive score.
# - Local-p predicts a position, restricts the softmax to $[p_t - D, p_t + D]$ (exact zeros outside) and
#   multiplies by a Gaussian with $\sigma = D/2$, not renormalised (as in the paper); as $D \to \infty$ it
#   becomes global attention.
#
# Now complete exercises 4.1–4.2 in `exercises/lesson04_luong.py` and run
# `pytest tests/exercises/test_lesson04_luong.py`.
