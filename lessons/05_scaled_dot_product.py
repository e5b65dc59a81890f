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
# # Lesson 05 — Scaled dot-product attention, why $1/\sqrt{d}$, and masks
#
# Bahdanau and Luong scored a query against each key with a small network or a bilinear form. The
# Transformer (Vaswani et al., 2017) keeps only the cheapest score there is, the dot product, and does
# all queries at once with two matrix products:
#
# $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\Big(\frac{QK^\top}{\sqrt{d}} + M\Big)\, V$$
#
# with $Q \in \mathbb{R}^{N_q \times d}$, $K \in \mathbb{R}^{N_k \times d}$, $V \in \mathbb{R}^{N_k \times d_v}$
# and a mask $M$ (0 where attention is allowed, $-\infty$ where it is not). This lesson builds it from the
# autograd ops of lessons 01–02, measures why the $1/\sqrt{d}$ is there, and pins down masks: padding,
# causal, and the awkward row that may attend to nothing.
#
# Exercises (in `exercises/lesson05_scaled_dot_product.py`, graded by
# `pytest tests/exercises/test_lesson05_scaled_dot_product.py`):
#
# | exercise | what | points |
# |---|---|---|
# | 5.1 | `attend`: scores, mask, softmax, weighted sum (with fully masked rows) | 4 |
# | 5.2 | `causal_mask`: who may attend to whom, top-left and bottom-right aligned | 2 |
#
# To run this notebook on **your** implementations, uncomment the `use` line below.

# %%
import matplotlib.pyplot as plt
import numpy as np

import minitorch_attn as mta
from minitorch_attn import functional as F
from minitorch_attn import viz
from minitorch_attn.functional.sdpa import causal_mask

# mta.course.use("exercises")   # run the lesson on your own code
np.set_printoptions(precision=4, suppress=True)
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. From scores to output
#
# Three steps, each one autograd op: the scores $S = QK^\top \cdot \text{scale}$ (one matmul, transposing
# only the last two axes of $K$, so any batch and head axes ride along), the weights $P = \mathrm{softmax}(S)$
# along the keys, the output $O = PV$. Row $i$ of $O$ is a weighted average of the value rows, weighted by how
# well query $i$ matches each key. `F.scaled_dot_product_attention` has PyTorch's signature and semantics;
# `return_weights=True` also hands back $P$.

# %%
Nq, Nk, d, dv = 4, 6, 8, 3
q = mta.tensor(rng.standard_normal((Nq, d)), requires_grad=True)
k = mta.tensor(rng.standard_normal((Nk, d)), requires_grad=True)
v = mta.tensor(rng.standard_normal((Nk, dv)), requires_grad=True)

out, weights = F.scaled_dot_product_attention(q, k, v, return_weights=True)
by_hand = F.softmax(q @ k.transpose(-2, -1) / np.sqrt(d), axis=-1) @ v
print("out:\n", out.data)
print("out equals softmax(q k^T / sqrt(d)) v to 1e-12:", np.allclose(out.data, by_hand.data, atol=1e-12))
assert np.allclose(out.data, by_hand.data, atol=1e-12)
assert np.allclose(weights.data.sum(-1), 1)
assert mta.gradcheck(lambda a, b, c: F.scaled_dot_product_attention(a, b, c), [q, k, v])
print("rows of the weights sum to 1; gradcheck of q, k, v passed")
viz.heatmap(weights, title="attention weights P", xlabel="key", ylabel="query", annotate=True)
plt.show()

# %% [markdown]
# ## 2. Why divide by $\sqrt{d}$
#
# If the entries of $q$ and $k$ are independent with mean 0 and variance 1, then $q \cdot k = \sum_{i=1}^d q_i k_i$
# has variance $d$: the scores grow like $\sqrt{d}$. A softmax over scores whose spread is 32 (at $d = 1024$)
# is almost always one-hot — **saturated** — and a saturated softmax has almost no gradient: its Jacobian
# $J = \mathrm{diag}(p) - pp^\top$ vanishes as $p$ approaches a one-hot vector. Dividing by $\sqrt{d}$ brings
# the variance back to 1 whatever $d$ is.
#
# The measurement (COURSE_PLAN, lesson 5): $d = 1024$, $n = 64$ keys, 2,000 random query rows; for each row
# the Frobenius norm of the softmax Jacobian,
# $\|J\|_F^2 = \sum_i p_i^2 - 2\sum_i p_i^3 + \big(\sum_i p_i^2\big)^2$, and whether the row is saturated
# (its largest weight above 0.99).

# %%
d_big, n_keys, rows = 1024, 64, 2000
Qm = rng.standard_normal((rows, d_big))
Km = rng.standard_normal((n_keys, d_big))
raw = Qm @ Km.T  # (rows, n_keys) unscaled scores


def jacobian_norms(p):
    s2 = (p**2).sum(-1)
    return np.sqrt(np.maximum(s2 - 2 * (p**3).sum(-1) + s2**2, 0))


# the closed form against the Jacobian built by backward, one unit vector at a time, for one row
x = mta.tensor(raw[0] / np.sqrt(d_big), requires_grad=True)
J = np.zeros((n_keys, n_keys))
for j in range(n_keys):
    x.grad = None
    F.softmax(x).backward(np.eye(n_keys)[j])
    J[j] = x.grad
p0 = F.softmax(x).data
assert np.allclose(J, np.diag(p0) - np.outer(p0, p0), atol=1e-14)
assert np.isclose(np.linalg.norm(J), jacobian_norms(p0))

stats = {}
for name, scale in (("without scaling", 1.0), ("with 1/sqrt(d)", 1 / np.sqrt(d_big))):
    scores = raw * scale
    p = F.softmax(mta.tensor(scores), axis=-1).data
    norms = jacobian_norms(p)
    stats[name] = dict(std=scores.std(), median=np.median(norms), saturated=(p.max(-1) > 0.99).mean(), norms=norms)
    print(f"{name:16s}: score std {scores.std():6.2f}   median ||J||_F = {np.median(norms):.1e}   "
          f"saturated rows (max p > 0.99) = {stats[name]['saturated']:.0%}")

unscaled, scaled = stats["without scaling"], stats["with 1/sqrt(d)"]
assert unscaled["median"] < 2e-3 and unscaled["saturated"] > 0.5, "without scaling the softmax should saturate"
assert scaled["median"] > 0.1 and scaled["saturated"] < 0.01, "with 1/sqrt(d) it should not"

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
bins = np.linspace(-12, 0, 60)
for name, s in stats.items():
    axes[0].hist(np.log10(np.maximum(s["norms"], 1e-12)), bins=bins, alpha=0.6, label=name)
axes[0].set(title=f"softmax Jacobian norm per row (d={d_big}, n={n_keys})",
            xlabel="log10 ||J||_F (rows below 1e-12 piled up at -12)", ylabel="rows")
axes[0].legend()
dims = [4, 16, 64, 256, 1024]
for name, sc in (("without scaling", lambda dd: 1.0), ("with 1/sqrt(d)", lambda dd: 1 / np.sqrt(dd))):
    frac = []
    for dd in dims:
        s_ = (rng.standard_normal((500, dd)) @ rng.standard_normal((n_keys, dd)).T) * sc(dd)
        frac.append((F.softmax(mta.tensor(s_), axis=-1).data.max(-1) > 0.99).mean())
    axes[1].semilogx(dims, frac, marker="o", label=name, base=2)
axes[1].set(title="fraction of saturated rows vs d", xlabel="d", ylabel="max p > 0.99")
axes[1].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# Without scaling, two thirds of the rows are saturated and the median Jacobian norm is four orders of
# magnitude below the scaled one: those rows pass (almost) no gradient to $q$ and $k$, so the scores cannot
# learn. With $1/\sqrt{d}$ no row saturates at initialisation, at any $d$.
#
# ## 3. Masks
#
# A **boolean** `attn_mask` says where attention is *allowed* (True = may attend, PyTorch's SDPA
# convention; `nn.MultiheadAttention` in lesson 06 uses the *opposite*, True = masked out). It becomes
# $-\infty$ in the scores, so $e^{-\infty} = 0$ weight. A **float** mask is added to the scores. Masks
# broadcast: one $(N_q, N_k)$ mask for every batch element and head, or a padding mask of shape
# $(B, 1, N_k)$ for all queries.
#
# **Padding.** Sequences of different lengths are padded to a common length; the padded keys must get
# weight 0, and their contents must not matter at all:

# %%
B, N = 3, 6
lengths = np.array([6, 4, 2])
allowed = np.arange(N)[None, :] < lengths[:, None]  # (B, N): True for real tokens
x = rng.standard_normal((B, N, d))
out_pad, w_pad = F.scaled_dot_product_attention(x, x, x, attn_mask=allowed[:, None, :], return_weights=True)
x_junk = x.copy()
x_junk[~allowed] = 1e3 * rng.standard_normal(x_junk[~allowed].shape)  # change only the padded keys/values
out_junk = F.scaled_dot_product_attention(x, x_junk, x_junk, attn_mask=allowed[:, None, :])
assert np.all(w_pad.data[~np.broadcast_to(allowed[:, None, :], w_pad.shape)] == 0)
assert np.allclose(out_junk.data, out_pad.data, atol=1e-12)
print("padded keys get weight 0 and changing them changes nothing")

# %% [markdown]
# **Causal.** A language model predicting token $i+1$ may only look at tokens $\le i$: query $i$ attends to
# keys $j \le i$, the lower triangle (Exercise 5.2). `is_causal=True` uses PyTorch's convention: the triangle
# is aligned to the **top-left** corner, also when $N_q \ne N_k$. When new queries are the *last* $N_q$ of $N_k$
# positions (generation with a KV cache), align it to the bottom-right instead: `causal_mask(Nq, Nk, offset=Nk - Nq)`.

# %%
fig, axes = plt.subplots(1, 4, figsize=(14, 3))
viz.heatmap(allowed[:, None, :].repeat(N, 1)[2], title="padding (length 2)", ax=axes[0], colorbar=False,
            xlabel="key", ylabel="query")
viz.heatmap(causal_mask(6, 6), title="causal_mask(6, 6)", ax=axes[1], colorbar=False, xlabel="key")
viz.heatmap(causal_mask(3, 6), title="causal_mask(3, 6): top-left", ax=axes[2], colorbar=False, xlabel="key")
viz.heatmap(causal_mask(3, 6, offset=3), title="offset=3: bottom-right", ax=axes[3], colorbar=False, xlabel="key")
plt.tight_layout()
plt.show()
_, w_causal = F.scaled_dot_product_attention(x, x, x, is_causal=True, return_weights=True)
viz.heatmap(w_causal.data[0], title="causal attention weights", xlabel="key", ylabel="query", annotate=True)
plt.show()

# %% [markdown]
# The defining property: **changing future tokens leaves earlier outputs unchanged.** Perturb every token
# from position 3 on (queries, keys and values) and compare the outputs at positions 0–2:

# %%
t = 3
y = rng.standard_normal((2, 8, d))
y_future = y.copy()
y_future[:, t:] += 10 * rng.standard_normal(y_future[:, t:].shape)
o1 = F.scaled_dot_product_attention(y, y, y, is_causal=True).data
o2 = F.scaled_dot_product_attention(y_future, y_future, y_future, is_causal=True).data
print("max change at positions <  3:", np.abs(o1[:, :t] - o2[:, :t]).max())
print(f"max change at positions >= 3: {np.abs(o1[:, t:] - o2[:, t:]).max():.3g}")
assert np.array_equal(o1[:, :t], o2[:, :t])
assert np.abs(o1[:, t:] - o2[:, t:]).max() > 1
# and the gradient agrees: an earlier output does not depend on later inputs at all
yt = mta.tensor(y, requires_grad=True)
F.scaled_dot_product_attention(yt, yt, yt, is_causal=True)[:, :t].sum().backward()
assert np.all(yt.grad[:, t:] == 0)
print("d(outputs < 3)/d(inputs >= 3) = 0 exactly")

# %% [markdown]
# ## 4. A row that may attend to nothing
#
# If every key of a query is masked, its scores are all $-\infty$ and the softmax is $0/0$: NaN, which then
# spreads through every later layer and into every gradient. It happens in practice (a fully padded
# sequence in a batch, a causal mask combined with left padding). We **define** such a row's output to be
# 0, its weights 0 and its gradient 0. It is exactly what PyTorch 2.13's `scaled_dot_product_attention`
# returns on the CPU, and what the flash kernels of lesson 10 produce naturally (their running normaliser
# never leaves 0). Exercise 5.1 implements it: replace the row's scores by 0 before the softmax and its
# weights by 0 after, with `where`, which sends no gradient into the branch it drops.

# %%
mask = np.ones((2, 3, 5), dtype=bool)
mask[0, 1] = False  # query 1 of batch 0 sees no key
qm, km, vm = (mta.tensor(rng.standard_normal(s), requires_grad=True) for s in ((2, 3, 4), (2, 5, 4), (2, 5, 2)))
with np.errstate(all="raise"):  # not even an intermediate NaN or inf - inf
    om, wm = F.scaled_dot_product_attention(qm, km, vm, attn_mask=mask, return_weights=True)
    om.sum().backward()
print("output of the fully masked row :", om.data[0, 1])
print("its weights                    :", wm.data[0, 1])
print("gradient of its query          :", qm.grad[0, 1])
assert np.all(om.data[0, 1] == 0) and np.all(wm.data[0, 1] == 0) and np.all(qm.grad[0, 1] == 0)
assert all(np.isfinite(g).all() for g in (qm.grad, km.grad, vm.grad))

# %% [markdown]
# ## Summary
#
# - Attention is $\mathrm{softmax}(QK^\top/\sqrt{d} + M)V$: two matmuls and a softmax, batched over any
#   leading axes.
# - Without $1/\sqrt{d}$, at $d = 1024$ two thirds of the rows saturate and the softmax Jacobian is
#   $\sim 10^{-4}$ of its scaled size: no gradient. The scale keeps the score variance at 1.
# - Boolean masks: True = may attend (SDPA); float masks are added. Padded keys get weight 0 and have no
#   effect; causal masking makes earlier outputs independent of later tokens — exactly, in value and gradient.
# - A fully masked row outputs 0 with zero gradient (torch's SDPA and flash attention agree).
#
# Now complete exercises 5.1–5.2 in `exercises/lesson05_scaled_dot_product.py` and run
# `pytest tests/exercises/test_lesson05_scaled_dot_product.py` (or `python -m minitorch_attn grade --lesson 05`).
