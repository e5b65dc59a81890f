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
# # Lesson 02 — Softmax, temperature, log-sum-exp and the online normaliser
#
# Every attention mechanism in this course ends the same way: a row of scores becomes a row of
# weights that are positive and sum to one. That map is the **softmax**
#
# $$\mathrm{softmax}(x)_i = \frac{e^{x_i}}{\sum_j e^{x_j}}.$$
#
# This lesson is about doing it *right*: with a temperature, without overflow, with its log-space
# twin `logsumexp`, with a backward pass that never builds the Jacobian, and — the idea that flash
# attention (lesson 10) is built on — **one block at a time**, keeping only two numbers per row.
#
# Exercises (in `exercises/lesson02_softmax.py`, graded by `pytest tests/exercises/test_lesson02_softmax.py`):
#
# | exercise | what | points |
# |---|---|---|
# | 2.1 | `Softmax` forward and backward | 2 |
# | 2.2 | `LogSumExp` forward and backward | 2 |
# | 2.3 | `merge_normalisers`: combine two partial (max, normaliser) pairs | 3 |
# | 2.4 | `online_normaliser`: stream a row block by block | 3 |
#
# To run this notebook on **your** implementations, uncomment the `use` line below.

# %%
import matplotlib.pyplot as plt
import numpy as np

import minitorch_attn as mta
from minitorch_attn import functional as F
from minitorch_attn.kernels import merge_normalisers, online_normaliser, online_softmax

# mta.course.use("exercises")   # run the lesson on your own code
np.set_printoptions(precision=4, suppress=True)
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. Temperature
#
# Dividing the scores by a temperature $T$ before the softmax sharpens ($T < 1$) or flattens ($T > 1$)
# the distribution. As $T \to 0$ it becomes the one-hot argmax; as $T \to \infty$ it becomes uniform.
# The **entropy** $H(p) = -\sum_i p_i \log p_i$ measures how spread out it is: 0 for one-hot, $\log n$
# for uniform.

# %%
scores = mta.tensor([2.0, 1.0, 0.5, -1.0, 0.0])
temperatures = [0.1, 0.5, 1.0, 2.0, 10.0]


def entropy(p):
    p = np.asarray(p, dtype=np.float64)
    return float(-(p * np.log(np.where(p > 0, p, 1))).sum())


fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
for T in temperatures:
    p = F.softmax(scores, temperature=T).data
    axes[0].plot(p, marker="o", label=f"T = {T}")
    print(f"T = {T:5}:  p = {p}   entropy = {entropy(p):.3f}")
axes[0].set(title="softmax(x / T)", xlabel="item", ylabel="weight")
axes[0].legend()
Ts = np.logspace(-2, 2, 60)
axes[1].semilogx(Ts, [entropy(F.softmax(scores, temperature=T).data) for T in Ts])
axes[1].axhline(np.log(5), ls="--", c="gray", label="log n (uniform)")
axes[1].set(title="entropy grows with temperature", xlabel="T", ylabel="H(p) (nats)")
axes[1].legend()
plt.show()

# %%
cold, hot = F.softmax(scores, temperature=1e-3).data, F.softmax(scores, temperature=1e4).data
assert cold.argmax() == 0 and cold[0] > 0.999, "T -> 0 should give the one-hot argmax"
assert np.allclose(hot, 1 / 5, atol=1e-3), "T -> infinity should give the uniform distribution"
print("T -> 0:", cold, "  T -> inf:", hot)

# %% [markdown]
# ## 2. Why subtract the max
#
# `exp` overflows float32 at about 88.7 and float64 at about 709. Attention scores of a few hundred
# are not unusual (lesson 05 shows where they come from), so the textbook formula breaks:

# %%
big = np.array([1e4, 1e4 - 1.0, -1e4], dtype=np.float32)
with np.errstate(over="ignore", invalid="ignore"):
    naive = np.exp(big) / np.exp(big).sum()
print("naive  :", naive)
print("stable :", F.softmax(mta.tensor(big)).data)

# %% [markdown]
# Softmax is unchanged by adding a constant to every score, $\mathrm{softmax}(x - c) = \mathrm{softmax}(x)$,
# so we subtract $m = \max_i x_i$: the largest exponent is then $e^0 = 1$, nothing overflows and
# at least one term of the sum is 1, so nothing divides by zero.
#
# The same trick gives **log-sum-exp**, $\mathrm{lse}(x) = \log \sum_i e^{x_i} = m + \log \sum_i e^{x_i - m}$,
# the log of the normaliser. It turns up everywhere: $\log \mathrm{softmax}(x) = x - \mathrm{lse}(x)$,
# cross-entropy is $\mathrm{lse}(x) - x_{\text{target}}$, the Hopfield energy of lesson 07 is a
# $-\mathrm{lse}$, and flash attention stores exactly one number per query row: its `lse`.

# %%
x = mta.tensor(np.array([[1e4, -1e4, 3.0], [-np.inf, -np.inf, -np.inf], [0.0, -np.inf, 0.0]]))
print("logsumexp      :", F.logsumexp(x, axis=-1).data)
print("x - lse        :\n", (F.log_softmax(x, axis=-1)).data)

# %% [markdown]
# Conventions at the edge, the same as PyTorch's: a row that is entirely $-\infty$ (every key masked)
# has $\mathrm{lse} = -\infty$, and its softmax is undefined (NaN) — lesson 05 decides what attention
# returns for such rows. Its *gradient*, though, is 0: no change of the inputs changes $-\infty$.

# %%
x = mta.tensor(np.array([[-np.inf, -np.inf], [0.0, 1.0]]), requires_grad=True)
F.logsumexp(x, axis=-1).sum().backward()
print("gradient of lse:\n", x.grad)
assert np.isfinite(x.grad).all()

# %% [markdown]
# ## 3. The backward pass without the Jacobian
#
# The Jacobian of softmax is $J = \mathrm{diag}(p) - p p^\top$. Backward needs only $J^\top g$ for the
# incoming gradient $g$, and that collapses to
#
# $$\frac{\partial L}{\partial x} = p \odot \big(g - \langle g, p\rangle\big),$$
#
# one dot product per row instead of an $n \times n$ matrix. For $\mathrm{lse}$ it is simpler still:
# $\partial\, \mathrm{lse} / \partial x = \mathrm{softmax}(x)$. Let us check both against the explicit
# Jacobian and against finite differences, in float64.

# %%
z = rng.standard_normal(6)
g = rng.standard_normal(6)
p = np.exp(z - z.max())
p /= p.sum()
J = np.diag(p) - np.outer(p, p)

zt = mta.tensor(z, requires_grad=True)
F.softmax(zt).backward(g)
print("backward     :", zt.grad)
print("J^T g        :", J.T @ g)
diff = np.abs(zt.grad - J.T @ g).max()  # 0 or a few 1e-17: the last bit depends on the CPU and BLAS
assert diff < 1e-12, diff
print("max |diff| < 1e-12:", diff < 1e-12)
assert mta.gradcheck(lambda t: F.softmax(t), [mta.tensor(z, requires_grad=True)])
assert mta.gradcheck(lambda t: F.logsumexp(t), [mta.tensor(z, requires_grad=True)])
print("gradcheck (float64 central differences): passed")

# %% [markdown]
# ## 4. The online normaliser
#
# To normalise a row we need $m$ and $l = \sum_i e^{x_i - m}$. Milakov & Gimelshein (2018) noticed
# both can be computed **in one pass**, a block at a time. If the part of the row seen so far has
# $(m, l)$ and the next block has its own $(m_b, l_b)$, then
#
# $$m' = \max(m, m_b), \qquad l' = l\, e^{m - m'} + l_b\, e^{m_b - m'}.$$
#
# The factor $e^{m - m'}$ *rescales* the old sum whenever a larger maximum turns up. Nothing else is
# kept: not the row, not its exponentials. The same rule merges two halves computed by different
# workers, so a row can also be reduced as a tree. Flash attention does exactly this per query row,
# over tiles of keys, and carries the weighted sum of values along with $l$.
#
# The empty prefix is $(m, l) = (-\infty, 0)$. Careful: $-\infty - (-\infty)$ is NaN, which is why
# `merge_normalisers` never subtracts two maxima that may both be $-\infty$.

# %%
row = rng.standard_normal((1, 1000)) * 3
block = 128
m, l = np.array([-np.inf]), np.array([0.0])
ms, ls = [], []
for start in range(0, row.shape[1], block):
    b = row[:, start : start + block]
    mb = b.max(axis=1)
    m, l = merge_normalisers(m, l, mb, np.exp(b - mb[:, None]).sum(axis=1))
    ms.append(m[0])
    ls.append(l[0])

m_batch = row.max()
l_batch = np.exp(row - m_batch).sum()
print(f"streamed: m = {m[0]:.6f}, l = {l[0]:.10f}")
print(f"batch   : m = {m_batch:.6f}, l = {l_batch:.10f}")
print("relative difference of l below 1e-12:", abs(l[0] - l_batch) / l_batch < 1e-12)
assert abs(l[0] - l_batch) / l_batch < 1e-12

fig, ax = plt.subplots(1, 2, figsize=(10, 3))
ax[0].step(range(len(ms)), ms, where="post")
ax[0].set(title="running max m after each block", xlabel="blocks seen")
ax[1].step(range(len(ls)), ls, where="post", c="C1")
ax[1].set(title="running normaliser l (drops when m jumps)", xlabel="blocks seen")
plt.show()

# %% [markdown]
# The library's `online_normaliser` does the same for every row of a matrix, and `online_softmax`
# uses its $(m, l)$ to produce the probabilities. The result equals the batch softmax to float64
# round-off for any block size, including sizes that do not divide the row length:

# %%
X = rng.standard_normal((4, 1000)) * 10
reference = F.softmax(mta.tensor(X), axis=-1).data
for block_size in (1, 7, 128, 1000, 4096):
    err = np.abs(online_softmax(X, block_size) - reference).max()
    print(f"block size {block_size:5}: max |online - batch| < 1e-12: {err < 1e-12}")
    assert err < 1e-12

m, l = online_normaliser(X, 64)
lse_online = m + np.log(l)
assert np.allclose(lse_online, F.logsumexp(mta.tensor(X), axis=-1).data, atol=1e-12, rtol=0)
print("lse = m + log l matches logsumexp")

# %% [markdown]
# **Tree reduction.** Split each row into four parts, compute each part's $(m, l)$ independently
# (as four threads would), and merge them pairwise. The order of merging does not matter:

# %%
parts = np.array_split(X, 4, axis=1)
stats = [(p.max(axis=1), np.exp(p - p.max(axis=1, keepdims=True)).sum(axis=1)) for p in parts]
left = merge_normalisers(*stats[0], *stats[1])
right = merge_normalisers(*stats[2], *stats[3])
m_tree, l_tree = merge_normalisers(*left, *right)
tree_gap = np.abs(l_tree * np.exp(m_tree - m) / l - 1).max()
print("tree vs streamed l, max relative difference below 1e-12:", tree_gap < 1e-12)
assert tree_gap < 1e-12

# %% [markdown]
# ## Summary
#
# - Softmax with temperature interpolates between argmax ($T \to 0$) and uniform ($T \to \infty$).
# - Subtract the row max: then nothing overflows, even at logits of $\pm 10^4$.
# - `lse` is the log normaliser; its gradient is the softmax, and a fully masked row has gradient 0.
# - Backward of softmax is $p \odot (g - \langle g, p \rangle)$: no Jacobian needed.
# - $(m, l)$ can be streamed and merged: the online normaliser. Lesson 10 adds the values and gets
#   flash attention.
#
# Now complete exercises 2.1–2.4 in `exercises/lesson02_softmax.py` and run
# `pytest tests/exercises/test_lesson02_softmax.py` (or `python -m minitorch_attn grade --lesson 02`).
