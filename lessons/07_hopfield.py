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
# # Lesson 07 — Modern Hopfield networks: update rule, energy, retrieval, capacity
#
# A Hopfield network is an associative memory: it stores patterns and, given a corrupted or partial one,
# returns the stored pattern it resembles. The classical network (Hopfield 1982) stores binary patterns in
# a weight matrix and holds about $0.14\,d$ of them in $d$ units. The **modern** Hopfield network of
# Ramsauer et al. (2020, "Hopfield Networks is All You Need") holds exponentially many, retrieves in **one**
# update — and that update is attention.
#
# **Layout.** In this library the stored patterns are the **rows** of $X$, shape $(N, d)$ (like attention's
# keys). The paper writes them as the columns of a $(d, N)$ matrix; translated to rows, its update
# $\xi \leftarrow X\,\mathrm{softmax}(\beta X^\top \xi)$ and energy read
#
# $$\xi^{\text{new}} = \mathrm{softmax}(\beta\, \xi X^\top)\, X, \qquad
# E(\xi) = -\mathrm{lse}(\beta, X\xi) + \tfrac12 \xi\cdot\xi + \beta^{-1}\log N + \tfrac12 M^2,$$
#
# with $\mathrm{lse}(\beta, z) = \beta^{-1} \log \sum_i e^{\beta z_i}$ and $M = \max_i \lVert x_i\rVert$.
#
# Exercises (in `exercises/lesson07_hopfield.py`, graded by `pytest tests/exercises/test_lesson07_hopfield.py`):
#
# | exercise | what | points |
# |---|---|---|
# | 7.1 | `hopfield_update`: $\xi \leftarrow \mathrm{softmax}(\beta \xi X^\top) X$ | 3 |
# | 7.2 | `hopfield_energy` | 2 |
# | 7.3 | `ClassicalHopfield`: Hebbian storage and the sign update | 2 |
# | 7.4 | `effective_patterns`: $1/\sum_i p_i^2$ | 1 |
#
# To run this notebook on **your** implementations, uncomment the `use` line below.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

import minitorch_attn as mta  # noqa: F401 (for the `use` line below)
from minitorch_attn import functional as F
from minitorch_attn.data import clustered_patterns, flip_bits, random_patterns
from minitorch_attn.functional.hopfield import (
    effective_patterns,
    hopfield_energy,
    hopfield_update,
    retrieval_bound,
)
from minitorch_attn.nn import ClassicalHopfield

# mta.course.use("exercises")   # run the lesson on your own code
np.set_printoptions(precision=4, suppress=True)
rng = np.random.default_rng(0)
T0 = time.perf_counter()


def exact(states, X):
    """The fraction of states whose signs equal their stored pattern in every bit."""
    return np.all(np.sign(states) == X, axis=-1).mean()


# %% [markdown]
# ## 1. The update is attention
#
# Read the update as attention: the state $\xi$ is the **query**, the stored patterns are both the **keys**
# and the **values**: scores $x_i \cdot \xi$, softmax with inverse temperature $\beta$, weighted average of
# the patterns (Exercise 7.1). So with $\beta = 1/\sqrt d$, one update *is* `F.scaled_dot_product_attention`.
# In a transformer the queries, keys and values are projections $Q = R W_Q$, $K = Y W_K$, $V = Y W_K W_V$:
# a Hopfield update of the projected states $Q$ with stored patterns $K$, read out through $W_V$, is
# exactly attention with those projections.

# %%
d = 8
R, Y = rng.standard_normal((2, 5, 6)), rng.standard_normal((2, 9, 7))  # 5 states and 9 stored patterns
WQ, WK, WV = rng.standard_normal((6, d)), rng.standard_normal((7, d)), rng.standard_normal((d, 3))
Q, K = R @ WQ, Y @ WK
new, p = hopfield_update(K, Q, beta=1 / np.sqrt(d), return_weights=True)
att, w = F.scaled_dot_product_attention(Q, K, K, return_weights=True)
readout = F.scaled_dot_product_attention(Q, K, K @ WV)
diff = max(np.abs(new - att.data).max(), np.abs(p - w.data).max(), np.abs(p @ (K @ WV) - readout.data).max())
print(f"max |Hopfield update - scaled dot-product attention| = {diff:.1e}")
assert diff < 1e-12

# %% [markdown]
# ## 2. The energy never goes up
#
# The update is the concave-convex procedure on $E$ (the paper's Theorem 1): $-\mathrm{lse}$ is concave,
# $\frac12\xi\cdot\xi$ convex, and minimising the convex part against the linearised concave part gives exactly
# $\xi^{\text{new}} = \mathrm{softmax}(\beta \xi X^\top) X$. So $E(\xi^{\text{new}}) \le E(\xi)$, for any patterns
# and any $\beta$ (Exercise 7.2 computes $E$). Check it on 200 random problems (float64), 10 updates each:

# %%
worst_rise, n_checks = -np.inf, 0
for seed in range(200):
    r = np.random.default_rng(seed)
    n, dim = r.integers(2, 50), r.integers(2, 24)
    X = r.standard_normal((n, dim)) * r.uniform(0.2, 3)
    beta = float(10 ** r.uniform(-2, 1.5))
    xi = r.standard_normal((4, dim)) * 2
    E = [hopfield_energy(X, xi, beta)]
    for _ in range(10):
        xi = hopfield_update(X, xi, beta)
        E.append(hopfield_energy(X, xi, beta))
    rise = np.diff(np.array(E), axis=0) / (1 + np.abs(E[0]))
    worst_rise, n_checks = max(worst_rise, rise.max()), n_checks + rise.size
print(f"{n_checks} updates: E never rose by more than rounding (largest relative change "
      f"{'<= 1e-12' if worst_rise <= 1e-12 else worst_rise})")
assert worst_rise <= 1e-12

X = random_patterns(64, 32, seed=1)
fig, ax = plt.subplots(figsize=(6, 3.4))
for b in (0.05, 0.2, 1.0):
    xi = rng.standard_normal(32) * 3
    ax.plot([hopfield_energy(X, hopfield_update(X, xi, b, steps=s) if s else xi, b) for s in range(8)],
            marker="o", label=f"beta = {b}")
ax.set(title="energy along the updates (64 patterns, d = 32)", xlabel="update", ylabel="E(xi)")
ax.legend()
plt.show()

# %% [markdown]
# ## 3. Retrieval: one update, ten thousand patterns
#
# Store $N$ random $\pm1$ patterns of $d = 64$ bits; probe with a stored pattern whose 8 bits are flipped;
# retrieval is *exact* when the signs of the result equal the stored pattern in all 64 bits. Compare the
# classical network (Exercise 7.3): Hebbian weights $W = \frac1d \sum_i x_i x_i^\top$ (zero diagonal) and
# the sign update $\xi \leftarrow \mathrm{sign}(W\xi)$.
#
# Why the modern one wins: the probe scores $64 - 2\cdot 8 = 48$ against its own pattern, while a random
# pattern scores $\sim \mathcal N(0, 64)$ — the best of 10,000 of them about $8 \cdot 3.9 \approx 31$. With
# $\beta = 1$ every rival gets a weight $e^{-(48 - s_j)}$, a sum of about $10^{-5}$. The classical network
# adds every pattern into one matrix: each stored pattern adds crosstalk noise of variance about $1/d$ to every
# unit, and 16 patterns already swamp a probe with 8 wrong bits.

# %%
rows = []
for n in (16, 1024, 10_000):
    X = random_patterns(n, 64, seed=1)
    idx = np.random.default_rng(0).choice(n, size=min(n, 1000), replace=False)
    probes = flip_bits(X[idx], 8, seed=2)
    t = time.perf_counter()
    modern = hopfield_update(X, probes, beta=1.0)
    seconds = time.perf_counter() - t
    classical = ClassicalHopfield(X)
    one, many = exact(classical.update(probes), X[idx]), exact(classical.update(probes, steps=20), X[idx])
    rows.append((n, exact(modern, X[idx]), np.abs(modern - X[idx]).max(), one, many))
    print(f"N = {n:6d}: modern, one update: exact {rows[-1][1]:.3f} (largest error of any entry "
          f"{rows[-1][2]:.1e}); classical: one update {one:.3f}, 20 updates {many:.3f}")
assert rows[1][1] == 1.0 and rows[2][1] == 1.0, "one update retrieves exactly at N = 1024 and 10,000"
assert rows[0][3] <= 0.25 and rows[0][4] <= 0.25, "the classical network fails already at N = 16"

# %%
# NBVAL_IGNORE_OUTPUT
# (a timing: different on every machine)
print(f"one update of 1000 probes against 10,000 stored patterns took {seconds * 1e3:.0f} ms: two matrix products")

# %% [markdown]
# ## 4. When retrieval fails: separation and β
#
# Flip more bits and the probe drifts towards the crowd. For a probe $\xi$ of pattern $i$, what matters is the
# **gap** between its own score and the best rival's, $\Delta = x_i\cdot\xi - \max_{j\ne i} x_j\cdot\xi$: the
# rivals' total weight is at most $(N-1)e^{-\beta\Delta}$. With $f$ flips the own score is $64 - 2f$, while the
# best of 1,023 random rivals scores about $8 \cdot 3.2 \approx 26$: retrieval holds while $64 - 2f$ stays well
# above that, and collapses around $f \approx 19$. The paper's
# Theorem 3 gives a *sufficient* separation, $\Delta \ge \frac{2}{\beta N} + \frac1\beta \log(2(N-1)N\beta M^2)$;
# in practice retrieval works far below it, and fails exactly when a rival scores as high as the own pattern.

# %%
X = random_patterns(1024, 64, seed=1)
flip_counts = list(range(0, 33, 2))
acc, gaps, wins = [], [], []
for f in flip_counts:
    probes = flip_bits(X, f, seed=3)
    out = hopfield_update(X, probes, beta=1.0)
    ok = np.all(np.sign(out) == X, axis=1)
    s = probes @ X.T
    own = s[np.arange(1024), np.arange(1024)].copy()
    s[np.arange(1024), np.arange(1024)] = -np.inf
    acc.append(ok.mean())
    gaps.append(own - s.max(1))
    wins.append(ok)
gaps, wins = np.concatenate(gaps), np.concatenate(wins)
for f, a in zip(flip_counts, acc):
    print(f"{f:2d} flipped bits: exact retrieval {a:.3f}")
print(f"probes with a gap >= 8: {wins[gaps >= 8].mean():.3f} retrieved; with a gap <= 0: {wins[gaps <= 0].mean():.3f}")
print(f"Theorem 3's sufficient gap for N = 1024, beta = 1, M = 8: {retrieval_bound(1024, 1.0, 8.0):.1f}")
assert acc[flip_counts.index(8)] == 1.0 and acc[flip_counts.index(24)] <= 0.05
assert wins[gaps >= 8].all() and not wins[gaps <= 0].any()

fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
axes[0].plot(flip_counts, acc, marker="o")
axes[0].set(title="N = 1024, d = 64, beta = 1", xlabel="flipped bits", ylabel="exact retrieval")
bins = np.arange(-20, 50, 2)
axes[1].hist([gaps[wins], gaps[~wins]], bins=bins, stacked=True, label=["retrieved", "failed"])
axes[1].axvline(retrieval_bound(1024, 1.0, 8.0), color="k", ls="--", label="Theorem 3 (sufficient)")
axes[1].set(title="the gap own score - best rival decides", xlabel="gap", ylabel="probes")
axes[1].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 5. Three regimes by β
#
# $\beta$ sets how sharply the update chooses. Store 32 unit-norm patterns in 4 clusters of 8 and run the update
# to its fixed point from each pattern; measure how many patterns the fixed point averages by the **effective
# number** $1/\sum_i p_i^2$ of its weights (Exercise 7.4: $k$ for a uniform average of $k$, 1 for one pattern):
#
# - small β: the fixed point is the **global average**, all 32 patterns;
# - middle β: **metastable states**, averages over one cluster (8 patterns);
# - large β: **single patterns**: the memory the transformer's attention rarely uses but Hopfield retrieval needs.

# %%
X, cluster = clustered_patterns(4, 8, 64, seed=0)
betas = np.concatenate([[0.01, 0.03], 2.0 ** np.arange(-4, 11)])  # includes 8 and 256
counts = []
for b in betas:
    _, p = hopfield_update(X, X, b, steps=None, tol=1e-10, return_weights=True)
    counts.append(effective_patterns(p))
counts = np.array(counts)  # (betas, 32 starting patterns)
at = {b: counts[list(betas).index(b)] for b in (0.01, 8.0, 256.0)}
for b, c in at.items():
    print(f"beta = {b:6g}: effective number of patterns at the fixed point {c.mean():6.2f} "
          f"(min {c.min():.2f}, max {c.max():.2f})")
assert 31 <= at[0.01].min() and at[0.01].max() <= 32
assert 7 <= at[8.0].min() and at[8.0].max() <= 9
assert at[256.0].max() <= 1.05

fig, ax = plt.subplots(figsize=(6.5, 3.6))
ax.plot(betas, counts.mean(1), marker=".")
ax.fill_between(betas, counts.min(1), counts.max(1), alpha=0.3)
for level, name in ((32, "global average"), (8, "cluster averages"), (1, "single patterns")):
    ax.axhline(level, color="gray", ls=":")
    ax.text(0.012, level * 1.1, name, fontsize=8)
ax.set(xscale="log", yscale="log", xlabel="beta", ylabel="effective number of patterns",
       title="32 patterns in 4 clusters: fixed points by beta")
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
# (wall-clock time of this notebook, different on every machine)
print(f"lesson ran in {time.perf_counter() - T0:.1f} s")

# %% [markdown]
# ## Summary
#
# - The modern Hopfield update $\xi \leftarrow \mathrm{softmax}(\beta\,\xi X^\top) X$ (rows of $X$ are the
#   patterns) is attention with the state as query and the patterns as keys and values; with $\beta = 1/\sqrt d$
#   and projections it is exactly scaled dot-product attention.
# - It never increases the energy $E = -\mathrm{lse}(\beta, X\xi) + \frac12\xi\cdot\xi + \beta^{-1}\log N + \frac12M^2$.
# - One update retrieves $\pm1$ patterns ($d = 64$, 8 flipped bits) exactly among 1,024 and 10,000 stored
#   ones; the classical Hebbian network fails at 16.
# - Retrieval fails when a rival scores as high as the own pattern: the gap and β decide.
# - β picks the regime: global average, metastable cluster averages, single patterns.
#
# Now complete exercises 7.1–7.4 in `exercises/lesson07_hopfield.py` and run
# `pytest tests/exercises/test_lesson07_hopfield.py` (or `python -m minitorch_attn grade --lesson 07`).
