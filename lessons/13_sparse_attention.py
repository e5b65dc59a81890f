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
# # Lesson 13 — Sparse attention: sparsemax and α-entmax
#
# Softmax never says "no": $e^{x_i} > 0$ for every finite score, so every key keeps *some* weight. With
# $n$ keys, $n - 1$ of them irrelevant, those small weights add up, and the one key that matters gets
# less and less of the total as $n$ grows. This lesson replaces softmax with a family of maps that can
# give **exactly zero** weight: **α-entmax** (Peters, Niculae & Martins 2019),
#
# $$\alpha\text{-entmax}(z)_i = \big[(\alpha - 1)\, z_i - \tau\big]_+^{1/(\alpha - 1)}, \qquad
#   \tau \text{ chosen so that } \textstyle\sum_i p_i = 1,$$
#
# with $[\cdot]_+ = \max(\cdot, 0)$. At $\alpha = 2$ it is **sparsemax** (Martins & Astudillo 2016),
# $p = [z - \tau]_+$; as $\alpha \to 1$ it tends to softmax. We find $\tau$ exactly by sorting
# (sparsemax, 1.5-entmax) or by bisection (any $\alpha$), derive the backward pass, and measure what
# sparsity buys at long context, the motivation of Vasylenko et al. 2025, *Long-context generalization
# with sparse attention* (arXiv 2506.16640).
#
# Exercises (in `exercises/lesson13_sparse_attention.py`, graded by
# `pytest tests/exercises/test_lesson13_sparse_attention.py`):
#
# | exercise | what | points |
# |---|---|---|
# | 13.1 | `Sparsemax`: sort, cumulative sum, support size, τ; backward on the support | 3 |
# | 13.2 | `Entmax15`: the exact sort-based threshold for α = 1.5; backward with $\sqrt{p}$ | 3 |
# | 13.3 | `bisect_threshold`: τ for any α by bisection | 2 |
#
# To run this notebook on **your** implementations, uncomment the `use` line below.

# %%
import matplotlib.pyplot as plt
import numpy as np

import minitorch_attn as mta
from minitorch_attn import functional as F
from minitorch_attn.autograd import entmax as E  # E.bisect_threshold: swapped by `use` (a bare import is not)
from minitorch_attn.autograd.entmax import entmax, entmax15, sparsemax

# mta.course.use("exercises")   # run the lesson on your own code
np.set_printoptions(precision=4, suppress=True)
rng = np.random.default_rng(13)

# %% [markdown]
# ## 1. Softmax is never zero; sparsemax is
#
# The same five scores through softmax, 1.5-entmax and sparsemax. Softmax gives every score a share;
# the other two give the low ones **exactly** 0.

# %%
z = np.array([3.0, 2.5, 2.0, 0.2, -1.0])
maps = {"softmax": lambda t: F.softmax(t), "1.5-entmax": entmax15, "sparsemax": sparsemax}
for name, f in maps.items():
    p = f(mta.tensor(z)).data
    print(f"{name:10}: p = {p}   nonzero: {np.count_nonzero(p)} of {len(p)}   sum = {p.sum():.15f}")
assert np.count_nonzero(F.softmax(mta.tensor(z)).data) == 5
assert np.count_nonzero(sparsemax(mta.tensor(z)).data) == 2 and np.count_nonzero(entmax15(mta.tensor(z)).data) == 3

# %% [markdown]
# ## 2. Sparsemax is a projection
#
# Sparsemax is the point of the probability simplex $\Delta = \{p \ge 0, \sum_i p_i = 1\}$ **closest** to $z$:
#
# $$\mathrm{sparsemax}(z) = \arg\min_{p \in \Delta} \lVert p - z \rVert^2 .$$
#
# With two scores, $z = (t, 0)$, the three maps are curves in $t$: softmax is the logistic sigmoid, never
# reaching 0 or 1; sparsemax is $\mathrm{clip}((t + 1)/2, 0, 1)$ — a straight line that **saturates**
# at $|t| \ge 1$; 1.5-entmax lies between and saturates at $|t| \ge 2$. On the right, three scores:
# each point $z$ (drawn on the plane $\sum_i z_i = 1$, where the triangle is the simplex) is joined to
# its sparsemax. Points far outside land on an edge or a corner: the entries on the far side are 0.

# %%
t = np.linspace(-3, 3, 241)
pair = np.stack([t, np.zeros_like(t)], axis=1)
fig, ax = plt.subplots(1, 2, figsize=(11, 4))
for name, f in maps.items():
    ax[0].plot(t, f(mta.tensor(pair)).data[:, 0], label=name)
ax[0].set(title="p_1 for scores (t, 0)", xlabel="t", ylabel="weight of the first score")
ax[0].legend()

corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]])  # e_1, e_2, e_3 in the plane


def to_plane(p):
    """Barycentric (sums to one) -> 2-D coordinates of the triangle."""
    return p @ corners


ax[1].fill(*corners.T, alpha=0.15, c="C0")
Z = rng.standard_normal((40, 3)) * 0.8
Z += (1 - Z.sum(1, keepdims=True)) / 3  # put z on the plane sum = 1 (sparsemax ignores a common shift)
P = sparsemax(mta.tensor(Z)).data
for zi, pi in zip(to_plane(Z), to_plane(P)):
    ax[1].plot(*np.stack([zi, pi]).T, c="gray", lw=0.7)
ax[1].scatter(*to_plane(Z).T, s=10, c="C1", label="z")
ax[1].scatter(*to_plane(P).T, s=14, c="C0", label="sparsemax(z)")
ax[1].set(title="sparsemax projects onto the simplex", aspect="equal")
ax[1].axis("off")
ax[1].legend(loc="upper right")
plt.show()
print("points landing on an edge or a corner (some p_i = 0):", int((P == 0).any(1).sum()), "of", len(P))

# %% [markdown]
# A check of the claim: no point of the simplex (here 5,000 random ones) is closer to $z$ than its sparsemax.

# %%
z6 = rng.standard_normal(6) * 2
p6 = sparsemax(mta.tensor(z6)).data
Q = rng.dirichlet(np.full(6, 0.3), size=5000)
closest_random = np.sum((Q - z6) ** 2, axis=1).min()
print(f"|sparsemax(z) - z|^2 = {np.sum((p6 - z6) ** 2):.6f}   closest of 5000 random simplex points: "
      f"{closest_random:.6f}")
assert np.sum((p6 - z6) ** 2) <= closest_random

# %% [markdown]
# ## 3. The threshold τ, by sorting
#
# Sparsemax is $p_i = [z_i - \tau]_+$. If we knew the **support** $S$ (the entries with $p_i > 0$), then
# $\sum_{i \in S} (z_i - \tau) = 1$ gives $\tau = (\sum_{i\in S} z_i - 1)/|S|$. The support is always the
# $k$ largest scores for some $k$, so sort $z$ descending, $z_{(1)} \ge z_{(2)} \ge \dots$, and take the
# largest $k$ for which the $k$-th score would still get positive weight:
#
# $$k^* = \max\Big\{k : 1 + k\, z_{(k)} > \sum_{j \le k} z_{(j)}\Big\}, \qquad
#   \tau = \frac{\sum_{j \le k^*} z_{(j)} - 1}{k^*}.$$
#
# One sort and one cumulative sum: $O(n \log n)$. Here it is, step by step, on the scores of section 1
# (Exercise 13.1 is this, plus the row-max shift and the -inf entries of masked keys).

# %%
zs = np.sort(z)[::-1]
k = np.arange(1, len(z) + 1)
csum = np.cumsum(zs)
test = 1 + k * zs > csum
kstar = int(test.sum())
tau = (csum[kstar - 1] - 1) / kstar
print("sorted z      :", zs)
print("cumsum        :", csum)
print("1 + k z_(k)   :", 1 + k * zs)
print("in support    :", test, "  k* =", kstar, "  tau =", tau)
print("[z - tau]_+   :", np.maximum(z - tau, 0))
assert np.allclose(np.maximum(z - tau, 0), sparsemax(mta.tensor(z)).data, rtol=0, atol=1e-15)

# %% [markdown]
# **1.5-entmax** has an exact sort-based threshold too. On $u = z/2$, $p_i = [u_i - \tau]_+^2$; for a
# support of the top $k$ entries, $\sum_{j\le k}(u_{(j)} - \tau)^2 = 1$ is a quadratic in $\tau$ whose
# relevant root is
#
# $$\tau_k = \mu_k - \sqrt{\delta_k}, \qquad \mu_k = \tfrac1k \textstyle\sum_{j\le k} u_{(j)}, \qquad
#   \delta_k = \frac{1 - k\,\big(\tfrac1k\sum_{j\le k} u_{(j)}^2 - \mu_k^2\big)}{k},$$
#
# and the support is the longest prefix with $\tau_k < u_{(k)}$ (Exercise 13.2). For **any other α**
# there is no closed form, but $f(\tau) = \sum_i [(\alpha-1) z_i - \tau]_+^{1/(\alpha-1)}$ *decreases* in
# $\tau$, and after shifting $\max_i z_i$ to 0 the root of $f(\tau) = 1$ lies in
# $[-1, -(1/n)^{\alpha - 1}]$: at $\tau = -1$ the top entry alone contributes 1, and at the right end
# every entry contributes at most $1/n$. **Bisection** halves that bracket each step (Exercise 13.3):

# %%
zrow = rng.standard_normal((1, 50)) * 2
zrow -= zrow.max()
steps = np.arange(1, 41)
for alpha in (1.25, 1.5, 2.0, 3.0):
    errs = [abs((np.maximum((alpha - 1) * zrow - E.bisect_threshold(zrow, alpha, n_iter=s), 0)
                 ** (1 / (alpha - 1))).sum() - 1) for s in steps]
    plt.semilogy(steps, np.maximum(errs, 1e-17), label=f"alpha = {alpha}")
    print(f"alpha = {alpha}: |sum p - 1| after 10, 20, 40 steps: {errs[9]:.1e} {errs[19]:.1e} {errs[39]:.1e}")
    assert errs[39] < 1e-9
plt.gca().set(title="bisection on tau: the error halves each step", xlabel="steps", ylabel="|sum(p) - 1|")
plt.legend()
plt.show()

# %% [markdown]
# The library's `entmax(x, alpha)` uses the exact sort-based maps at α = 2 and α = 1.5 and bisection
# (50 steps, then a final division by $\sum p$) for any other α. Sweeping α shows the family: the larger
# α, the fewer nonzeros.

# %%
z12 = np.sort(rng.standard_normal(12))[::-1] * 1.5
fig, ax = plt.subplots(figsize=(8, 3))
for i, alpha in enumerate([1.0, 1.25, 1.5, 2.0, 4.0]):
    p = F.softmax(mta.tensor(z12)).data if alpha == 1.0 else entmax(mta.tensor(z12), alpha).data
    ax.bar(np.arange(12) + 0.16 * (i - 2), p, width=0.16, label=f"alpha = {alpha}")
    print(f"alpha = {alpha:4}: nonzero weights {np.count_nonzero(p):2} of 12, largest {p.max():.4f}")
ax.set(title="alpha-entmax of 12 sorted scores", xlabel="score rank", ylabel="weight")
ax.legend()
plt.show()

# %% [markdown]
# ## 4. The gradient: only the support moves
#
# Differentiating $p_i = [(\alpha-1)z_i - \tau]_+^{1/(\alpha-1)}$ with $\sum_i p_i = 1$ (Peters et al.
# 2019) gives, with $s_i = p_i^{2-\alpha}$ on the support and $s_i = 0$ off it,
#
# $$\frac{\partial L}{\partial z} = s \odot \Big(g - \frac{\langle s, g\rangle}{\sum_i s_i}\Big).$$
#
# For sparsemax $s$ is the support's indicator (the gradient is $g$ minus its mean over the support,
# and 0 elsewhere); for 1.5-entmax $s = \sqrt{p}$. Compare softmax's $p \odot (g - \langle p, g\rangle)$:
# the same shape, with $p$ in place of $s$. A score with zero weight gets **zero gradient**: nudging
# it slightly leaves it below the threshold.

# %%
g = np.array([1.0, -2.0, 0.5, 3.0, -1.0])
for name, f in maps.items():
    x = mta.tensor(z, requires_grad=True)
    f(x).backward(g)
    print(f"{name:10}: p = {f(mta.tensor(z)).data}   dL/dz = {x.grad}")
    assert mta.gradcheck(lambda t, f=f: f(t), [mta.tensor(z + 0.01 * rng.standard_normal(5), requires_grad=True)])
x = mta.tensor(z, requires_grad=True)
sparsemax(x).backward(g)
assert (x.grad[2:] == 0).all(), "off the support the gradient is exactly 0"
for alpha in (1.3, 1.7):
    assert mta.gradcheck(lambda t, a=alpha: entmax(t, a), [mta.tensor(z, requires_grad=True)])
print("gradcheck (float64 central differences): sparsemax, 1.5-entmax, 1.3- and 1.7-entmax passed")

# %% [markdown]
# Masked keys are scores of $-\infty$: they get weight exactly 0 and gradient exactly 0. A row where
# *every* key is masked has no distribution at all; as for softmax (lesson 02), its output is NaN and
# its gradient 0.

# %%
xm = mta.tensor(np.array([[0.5, -np.inf, 1.2, -np.inf], [-np.inf] * 4]), requires_grad=True)
entmax15(xm).backward(np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]]))
print("1.5-entmax:\n", entmax15(mta.tensor(xm.data)).data, "\ngradient:\n", xm.grad)
assert (xm.grad[:, [1, 3]] == 0).all() and (xm.grad[1] == 0).all() and (xm.grad[0, [0, 2]] != 0).all()

# %% [markdown]
# ## 5. Sharp at any length
#
# Now the point of the lesson. One key scores $g$ above the others, which all score 0, and the row has
# $n$ keys. Softmax gives the top key $e^{g} / (e^{g} + n - 1)$, which falls like $1/n$. α-entmax gives
# it **exactly 1** as soon as the gap is at least $1/(\alpha - 1)$, whatever $n$: with
# $\tau = (\alpha-1)\max_i z_i - 1$ the top entry gets $1^{1/(\alpha-1)} = 1$ and every other entry
# $[(\alpha-1)(z_j - \max_i z_i) + 1]_+ = [1 - (\alpha - 1)\,g]_+ = 0$. So sparsemax needs $g \ge 1$,
# 1.5-entmax $g \ge 2$.

# %%
ns = 2 ** np.arange(1, 17)  # 2 ... 65,536
curves = {}
for gap in (1.0, 2.0):
    for name, f in maps.items():
        top = []
        for n in ns:
            row = np.zeros(n)
            row[0] = gap
            top.append(f(mta.tensor(row)).data[0])
        curves[name, gap] = np.array(top)
fig, ax = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
for j, gap in enumerate((1.0, 2.0)):
    for name, ls in zip(maps, ("-", "-", "--")):  # dashed sparsemax: 1.5-entmax may lie under it
        ax[j].loglog(ns, curves[name, gap], marker=".", ls=ls, label=name)
    ax[j].set(title=f"gap = {gap}", xlabel="n (keys)")
ax[0].set(ylabel="weight of the top key")
ax[1].legend()
plt.show()
for gap in (1.0, 2.0):
    print(f"gap {gap}: top weight at n = 65,536:  "
          + "   ".join(f"{name} {curves[name, gap][-1]:.3g}" for name in maps))

# %% [markdown]
# The claims, asserted: with gap 2, both sparse maps give the top key weight **exactly 1.0** at every
# length from 2 to 65,536, while softmax is below $10^{-3}$ at 65,536. With gap 1 sparsemax still gives
# exactly 1.0 (its condition $g \ge 1$ holds) but 1.5-entmax does not ($1 < 2$): the condition is sharp.

# %%
assert (curves["sparsemax", 2.0] == 1.0).all() and (curves["1.5-entmax", 2.0] == 1.0).all()
assert (curves["sparsemax", 1.0] == 1.0).all() and (curves["1.5-entmax", 1.0][1:] < 1.0).all()
assert curves["softmax", 2.0][-1] <= 1e-3
for alpha in (1.25, 1.5, 2.0, 3.0):  # the same for any alpha, by bisection
    row = np.zeros(65536)
    row[0] = 1 / (alpha - 1)
    assert entmax(mta.tensor(row), alpha, exact=False).data[0] == 1.0
print("exact 1.0 up to n = 65,536 for gap >= 1/(alpha - 1); softmax's top weight there:",
      f"{curves['softmax', 2.0][-1]:.2e}")

# %% [markdown]
# ## 6. Long context: scaling the scores with length
#
# The experiment above had perfectly flat distractors. Real distractor scores are noisy, and the
# largest of $n$ noisy scores grows with $n$ (about $\sqrt{2 \ln n}$ standard deviations for Gaussian
# noise), so at a fixed score the true key's *gap* to the strongest distractor shrinks as the context
# grows: 1.5-entmax is no longer exactly 1 once the gap drops under 2. Vasylenko et al. 2025 call the
# softmax version of this *attention dispersion* and propose **ASEntmax** (adaptive-scalable entmax):
# α-entmax applied to scores multiplied by a length-dependent factor, so that gaps grow with the context
# as fast as the distractors do. We could read only the paper's abstract, not its equation; the form
# used here is the one in the authors' code (`deep-spin/asentmax`,
# `synthetic/src/models/architectures/sparse_gemma.py`, `_apply_length_scaling`): each query is
# multiplied by
#
# $$\delta + \beta \,(\log n_i)^{\gamma},$$
#
# with $n_i$ the query's position plus 2 (the number of keys it sees under causal masking, plus one),
# $\delta = 1$ by default, and $\beta = \mathrm{softplus}(W_\beta h_i)$, $\gamma = \gamma_{\max}\tanh(W_\gamma h_i)$
# **learned** per head from the token's hidden state $h_i$. Below, an **illustration only**: fixed
# $\beta = 0.5$, $\gamma = 1$, $\delta = 1$ (our choice, not learned, not from the paper), on one query
# whose true key scores 6 against $n - 1$ standard-normal distractors. The softmax column with the same
# factor is the dense analogue (Scalable-Softmax, Nakanishi 2025, scales by $\beta \log n$).

# %%
def length_scale(n, beta=0.5, gamma=1.0, delta=1.0):
    """delta + beta * (log n) ** gamma: the form of the ASEntmax scale (fixed beta, gamma: illustration)."""
    return delta + beta * np.log(n) ** gamma


rows = []
for n in ns[3:]:  # 16 ... 65,536
    row = np.random.default_rng(int(n)).standard_normal(n)
    row[0] = 6.0
    s = length_scale(n)
    rows.append((n, row[1:].max(), F.softmax(mta.tensor(row)).data[0], F.softmax(mta.tensor(s * row)).data[0],
                 entmax15(mta.tensor(row)).data[0], entmax15(mta.tensor(s * row)).data[0],
                 np.count_nonzero(entmax15(mta.tensor(row)).data),
                 np.count_nonzero(entmax15(mta.tensor(s * row)).data)))
print("     n   max distractor   softmax   scaled softmax   1.5-entmax (support)   scaled 1.5-entmax (support)")
for n, mx, sm, ssm, em, sem, k, ks in rows:
    print(f"{n:6}   {mx:14.3f}   {sm:7.4f}   {ssm:14.6f}   {em:10.4f} ({k:5})   {sem:17.4f} ({ks:5})")
rows = np.array(rows)
fig, ax = plt.subplots(1, 2, figsize=(11, 3.6))
ax[0].semilogx(rows[:, 0], rows[:, 2], marker=".", label="softmax")
ax[0].semilogx(rows[:, 0], rows[:, 3], marker=".", label="softmax, scores x (1 + 0.5 log n)")
ax[0].semilogx(rows[:, 0], rows[:, 4], marker=".", label="1.5-entmax")
ax[0].semilogx(rows[:, 0], rows[:, 5], marker=".", ls="--", label="1.5-entmax, scores x (1 + 0.5 log n)")
ax[0].set(title="true key 6.0 vs n - 1 N(0, 1) distractors", xlabel="n", ylabel="weight of the true key")
ax[0].legend()
ax[1].semilogx(rows[:, 0], rows[:, 6], marker=".", c="C2", label="1.5-entmax")
ax[1].semilogx(rows[:, 0], rows[:, 7], marker=".", c="C3", ls="--", label="1.5-entmax, scaled")
ax[1].set(title="keys with nonzero weight (softmax: all n)", xlabel="n", ylabel="support size")
ax[1].legend()
plt.show()

# %%
assert rows[-1, 2] < 0.01, "softmax disperses"
assert rows[-1, 4] < 1.0 and rows[-1, 6] > 1, "unscaled 1.5-entmax: a distractor came within the gap"
assert (rows[:, 5] == 1.0).all() and (rows[:, 7] == 1).all(), "scaled 1.5-entmax keeps exactly one key"
assert (rows[:, 3] < 1.0).all(), "scaled softmax gets close to 1 but never reaches it"
print(f"n = 65,536: softmax {rows[-1, 2]:.4f}, scaled softmax {rows[-1, 3]:.6f}, "
      f"1.5-entmax {rows[-1, 4]:.4f}, scaled 1.5-entmax {rows[-1, 5]:.1f}")

# %% [markdown]
# What this does *not* show: that a trained model learns such scores, or the paper's length-extrapolation
# results (up to 1000× the training length on its synthetic tasks, as its abstract reports); those need
# training runs far beyond this notebook. It shows the mechanism: exact zeros make the weight of the
# right key independent of how many wrong keys there are, once the gap is large enough, and a
# length-dependent scale keeps the gap large enough as noise grows with $n$.
#
# ## Summary
#
# - α-entmax, $p = [(\alpha-1)z - \tau]_+^{1/(\alpha-1)}$, gives exactly 0 to scores below a threshold;
#   sparsemax ($\alpha = 2$) is the Euclidean projection onto the simplex.
# - τ: exact by sorting for α = 2 and α = 1.5, by bisection on $[-1, -(1/n)^{\alpha-1}]$ for any α.
# - Backward: $s \odot (g - \langle s, g\rangle / \sum s)$ with $s = p^{2-\alpha}$ on the support — zero
#   weight means zero gradient.
# - With a gap $\ge 1/(\alpha-1)$ the top key's weight is exactly 1 at any length (measured to 65,536),
#   where softmax's falls like $1/n$.
# - ASEntmax (Vasylenko et al. 2025) scales scores by $\delta + \beta(\log n)^\gamma$ (form from the
#   authors' code) so that gaps keep pace with the noise of long contexts.
#
# Now complete exercises 13.1–13.3 in `exercises/lesson13_sparse_attention.py` and run
# `pytest tests/exercises/test_lesson13_sparse_attention.py` (or `python -m minitorch_attn grade --lesson 13`).
