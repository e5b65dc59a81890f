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
# # Lesson 12 — Softmax is not enough: how sharp attention can be, and adaptive temperature
#
# Attention is often described as a *lookup*: the query picks out the one key it wants. Veličković,
# Perivolaropoulos, Barbero & Pascanu ("softmax is not enough (for sharp out-of-distribution)", 2025)
# show that a softmax cannot keep doing that as the number of items grows. This lesson
#
# 1. proves the bound behind their result: with logits spread over an interval of width $\Delta$, no
#    weight can exceed $e^\Delta / (e^\Delta + n - 1)$;
# 2. trains a one-head "find the maximum" model on sets of 16 items and watches its attention on the
#    maximum fade on sets of 64 … 16384 items;
# 3. implements the paper's fix, **adaptive temperature**, measures what it buys, and shows where it
#    stops working (rows flatter than about 5.9 nats).
#
# Exercises (in `exercises/lesson12_softmax_limits.py`, graded by
# `pytest tests/exercises/test_lesson12_softmax_limits.py`):
#
# | exercise | what | points |
# |---|---|---|
# | 12.1 | `max_weight_bound`: the largest weight a softmax can give | 2 |
# | 12.2 | `entropy`: Shannon entropy with $0 \log 0 = 0$ | 2 |
# | 12.3 | `adaptive_temperature`: entropy → β → softmax(β · logits) | 4 |
#
# To run this notebook on **your** implementations, uncomment the `use` line below.

# %%
import matplotlib.pyplot as plt
import numpy as np

import minitorch_attn as mta
from minitorch_attn import functional as F
from minitorch_attn import optim
from minitorch_attn.data.max_retrieval import max_retrieval
from minitorch_attn.functional import softmax_limits as sl
from minitorch_attn.functional.softmax_limits import ENTROPY_THRESHOLD, POLY_COEFFS
from minitorch_attn.nn import MaxRetrievalHead

# mta.course.use("exercises")   # run the lesson on your own code (it calls them as sl.entropy, ...)
np.set_printoptions(precision=4, suppress=True)
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. The bound
#
# Take a row of $n$ logits $z_1, \dots, z_n$, all inside an interval $[m, m + \Delta]$. The weight of item
# $i$ is
#
# $$p_i = \frac{e^{z_i}}{e^{z_i} + \sum_{j \ne i} e^{z_j}} \le \frac{e^{m+\Delta}}{e^{m+\Delta} + (n-1)\, e^{m}}
#      = \frac{e^\Delta}{e^\Delta + n - 1},$$
#
# because $p_i$ grows with $z_i$ and shrinks with every other $z_j$: the best case for item $i$ is $z_i$
# at the top of the interval and everything else at the bottom. For any fixed $\Delta$ the bound goes to
# 0 as $n \to \infty$. And $\Delta$ *is* fixed for a trained network applied to inputs from a bounded set:
# its logits are continuous functions of the inputs, so they have a bounded range. Out of distribution —
# more items than in training — every softmax head must eventually **disperse**.
#
# `max_weight_bound(delta, n)` (Exercise 12.1) computes it as $1 / (1 + (n-1) e^{-\Delta})$, which stays
# finite for $\Delta = 10^4$. The bound is attained, and random rows stay below it:

# %%
for delta, n in [(2.0, 16), (5.0, 1000), (10.0, 10**5)]:
    z = np.zeros(n)
    z[0] = delta  # one logit at the top, the rest at the bottom
    attained = F.softmax(mta.tensor(z)).data.max()
    print(f"Δ = {delta:4}, n = {n:6}: bound {sl.max_weight_bound(delta, n):.6f}, one-top row reaches {attained:.6f}")
    assert abs(attained - sl.max_weight_bound(delta, n)) < 1e-12

worst = 0.0
for _ in range(2000):
    n = int(rng.integers(1, 500))
    z = rng.uniform(0, rng.uniform(0, 20), n)
    ratio = F.softmax(mta.tensor(z)).data.max() / sl.max_weight_bound(z.max() - z.min(), n)
    worst = max(worst, ratio)
print(f"2000 random rows: largest (max weight) / bound = {worst:.4f}  (never above 1)")
assert worst <= 1 + 1e-12

# %%
ns = np.logspace(0, 8, 200)
fig, ax = plt.subplots(figsize=(7, 3.5))
for delta in (1, 3, 5, 10, 15):
    ax.semilogx(ns, sl.max_weight_bound(delta, ns), label=f"Δ = {delta}")
ax.set(xlabel="number of items n", ylabel="largest possible weight", title="e^Δ / (e^Δ + n − 1)")
ax.legend()
plt.show()

# %% [markdown]
# The curves drop to 1/2 at $n - 1 = e^\Delta$: each extra unit of logit range buys a factor of $e$ more
# items. That is the whole story of the theorem — and, as we are about to see, a trained model can have
# a large $\Delta$ and still disperse long before $n \approx e^\Delta$.
#
# ## 2. A head trained to find the maximum
#
# The paper's probe task, reduced to one attention head. A sample is a set of $n$ values drawn uniformly
# from $[0, 1)$; the answer is the largest. The head (`MaxRetrievalHead`) turns every value $x_j$ into a
# key with a small MLP, $k_j = W_2 \tanh(W_1 x_j + b_1) + b_2$, scores it against a learned query,
# $s_j = q \cdot k_j / \sqrt{d}$, and answers $\sum_j \mathrm{softmax}(s)_j\, x_j$. To answer exactly
# it must put all its weight on the largest item. We train it with the library's autograd and Adam on
# sets of **16** items (mean squared error), then test it on larger sets.

# %%
model = MaxRetrievalHead(hidden=32, dim=16, rng=np.random.default_rng(0))
opt = optim.Adam(model.parameters(), lr=0.01)
losses = []
for step in range(2000):
    batch = max_retrieval(128, 16, seed=1000 + step)
    answer, weights, _ = model(batch.values)
    loss = ((answer - mta.tensor(batch.target)) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())

# %%
# NBVAL_IGNORE_OUTPUT  (float32 training: the last digits depend on the CPU's BLAS)
print(f"training loss: first step {losses[0]:.4f}, mean of the last 100 steps {np.mean(losses[-100:]):.2e}")
assert np.mean(losses[-100:]) < 1e-3
delta = model.logit_range()
print(f"logit range of the trained head over values in [0, 1]: Δ = {delta:.1f}")

# %% [markdown]
# Now the test: sets of 16 items (as in training) up to 16384. For each set we read the attention
# weight on the true maximum, the entropy of the attention row, and the bound for the head's $\Delta$.

# %%
sizes = [16, 64, 256, 1024, 4096, 16384]
results = {}
for n in sizes:
    test = max_retrieval(max(64, 2**18 // n), n, seed=7)
    rows = np.arange(len(test.argmax))
    with mta.no_grad():
        _, weights, logits = model(test.values)
    results[n] = dict(weights=weights.data, logits=logits.data, rows=rows, argmax=test.argmax,
                      on_max=weights.data[rows, test.argmax])

# %%
# NBVAL_IGNORE_OUTPUT  (numbers from the float32 training above)
print(f"{'n':>6} {'weight on max':>14} {'entropy (nats)':>15} {'log n':>6} {'1 - bound(Δ, n)':>16}")
for n in sizes:
    r = results[n]
    print(f"{n:6d} {r['on_max'].mean():14.3f} {sl.entropy(r['weights']).mean():15.2f} {np.log(n):6.2f} "
          f"{(n - 1) * np.exp(-delta) / (1 + (n - 1) * np.exp(-delta)):16.1e}")  # 1 - bound, without round-off
print(f"the bound for Δ = {delta:.1f} reaches 1/2 only at n = e^Δ + 1 = {np.exp(delta) + 1:.1e} items")
on_max = np.array([results[n]["on_max"].mean() for n in sizes])
assert on_max[0] > 0.75, "trained on 16 items, the head should be sharp on 16 items"
assert np.all(np.diff(on_max) < 0), "attention on the max should fall as n grows"
assert on_max[sizes.index(1024)] < 0.12 and on_max[-1] < 0.02

# %% [markdown]
# The head is sharp on the sets it was trained on and disperses steadily on larger ones: the weight on the
# true maximum falls roughly in proportion to $1/n$ once $n$ is large, and the entropy of the attention
# row climbs towards $\log n$.
#
# The bound holds for every row (it must), but look at its column: for this head it is essentially 1.
# The key MLP learned a large logit range $\Delta$, so the theorem's guarantee only starts to bite at
# $n \approx e^\Delta$ — far beyond any set here. Something else disperses the head much sooner: the
# logit is a **smooth** function of the value. If it rises with slope $L$ near the top of the range, an
# item whose value is $u$ below the maximum gets a logit about $L u$ below it. With uniform values, each of
# the other $n - 1$ items lies in a given stretch $du$ below the maximum with probability about $du$, so
#
# $$\sum_{j \ne \max} e^{s_j - s_{\max}} \approx \int_0^\infty (n - 1)\, e^{-L u}\, du = \frac{n - 1}{L},
# \qquad p_{\max} \approx \frac{1}{1 + (n - 1) / L} = \frac{L}{L + n - 1}.$$
#
# Training on 16 items pushed $L$ up only as far as 16-item sets need. Let us measure $L$ and compare.

# %%
# NBVAL_IGNORE_OUTPUT  (numbers from the float32 training above)
with mta.no_grad():
    grid = np.linspace(0.98, 1.0, 201)
    top = model.scores(grid[None, :]).data[0]
slope = (top[-1] - top[0]) / (grid[-1] - grid[0])
estimate = slope / (slope + np.array(sizes) - 1)
print(f"slope of the logit near x = 1: L = {slope:.1f}")
for n, measured, est in zip(sizes, on_max, estimate):
    print(f"n = {n:5d}: measured {measured:.3f}   L / (L + n - 1) = {est:.3f}")
assert np.all(np.abs(estimate[1:] / on_max[1:] - 1) < 0.25), "the slope estimate should track the measurement"

for n in sizes:  # and the theorem, row by row, with each row's own spread of logits
    r = results[n]
    spread = r["logits"].max(axis=1) - r["logits"].min(axis=1)
    assert np.all(r["weights"].max(axis=1) <= sl.max_weight_bound(spread, n) + 1e-6)

# %% [markdown]
# ## 3. Adaptive temperature
#
# Multiplying the logits by $\beta > 1$ (a temperature $1/\beta < 1$) sharpens a softmax; but a single
# $\beta$ chosen for large sets would over-sharpen the heads that are *meant* to be spread out. The paper's
# patch picks $\beta$ per row, at inference time, from the row's own entropy $H$ (nats):
#
# $$\beta = \begin{cases} \max\big(\mathrm{poly}(H),\ 1\big) & H > 0.5 \\ 1 & H \le 0.5 \end{cases}
# \qquad \mathrm{poly}(H) = -0.037 H^4 + 0.481 H^3 - 2.3 H^2 + 4.917 H - 1.791,$$
#
# then recomputes $\mathrm{softmax}(\beta \cdot z)$. This is the paper's JAX listing (coefficients
# `[-0.037, 0.481, -2.3, 4.917, -1.791]`, highest degree first, as `jnp.polyval`/`np.polyval`; `entropy > 0.5`
# "don't overcorrect low-entropy heads"; `maximum(..., 1.0)` "never increase entropy"; `softmax(logits *
# beta)`). The polynomial is their fit of the temperature that best sharpened max-retrieval rows as a
# function of entropy. $\beta$ is a number computed from data, not a parameter: it is applied at
# inference only and nothing is differentiated through it (our function works on NumPy arrays, outside
# autograd). `entropy` is Exercise 12.2, `adaptive_temperature` 12.3.
#
# The catch is in the polynomial's shape:

# %%
cutoff = sl.beta_cutoff_entropy()
print(f"poly(H) falls below 1 for good at H = {cutoff:.3f} nats, i.e. a uniform row of e^H = "
      f"{np.exp(cutoff):.0f} items")
h = np.linspace(0, 10, 4001)
peak = h[np.argmax(sl.beta_curve(h))]
print(f"largest β = {sl.beta_curve(h).max():.2f}, at H = {peak:.2f} nats")
assert 5.9 < cutoff < 6.0 and 2.3 < sl.beta_curve(h).max() < 2.5
rises_at = h[np.argmax(np.polyval(POLY_COEFFS, h) > 1)]
print(f"poly(H) > 1 only on ({rises_at:.2f}, {cutoff:.2f}): below H = 0.5 it is already < 1 (poly(0.5) = "
      f"{np.polyval(POLY_COEFFS, 0.5):.3f}), so the H > 0.5 test changes nothing with these coefficients")
assert ENTROPY_THRESHOLD < rises_at < 1.0
fig, ax = plt.subplots(figsize=(8, 3.8))
ax.plot(h, np.polyval(POLY_COEFFS, h), c="gray", ls=":", label="poly(H)")  # POLY_COEFFS: highest degree first
ax.plot(h, sl.beta_curve(h), c="C0", lw=2, label="β(H) = max(poly(H), 1) if H > 0.5 else 1")
ax.axvline(ENTROPY_THRESHOLD, c="C2", ls="--", lw=1, label="H = 0.5 threshold")
ax.axvline(cutoff, c="C3", ls="--", lw=1, label=f"cut-off H = {cutoff:.2f}")
for n in sizes:
    ax.axvline(np.log(n), c="k", alpha=0.15)
    ax.text(np.log(n), 0.15, f"log {n}", rotation=90, fontsize=8, va="bottom")
for i, n in enumerate(sizes):
    r = results[n]
    ax.scatter(sl.entropy(r["weights"][:32]), sl.adaptive_temperature(r["logits"][:32])[1], s=8, c=f"C{i + 4}",
               label=f"rows at n = {n}" if i in (0, len(sizes) - 1) else None)
ax.set(xlabel="entropy H of the attention row (nats)", ylabel="β", ylim=(0, 3), title="adaptive temperature")
ax.legend(fontsize=8, loc="upper right")
plt.show()

# %% [markdown]
# β rises to its largest value (printed above, about 2.4) in the middle of the range and is back at 1 at the
# cut-off, $H \approx 5.9$. (The $H > 0.5$ rule states the intent — leave sharp heads alone — but with
# these coefficients the clamp at 1 already does it: the polynomial is below 1 until $H \approx 0.85$.)
# A uniform row over $n$ items has $H = \log n$, so once the head is unsure over more than a few hundred
# items its rows sit right of the cut-off and adaptive temperature does nothing at all. Here is what it
# does for our head:

# %%
# NBVAL_IGNORE_OUTPUT  (numbers from the float32 training above)
print(f"{'n':>6} {'softmax':>8} {'adaptive':>9} {'gain':>6} {'mean β':>7} {'rows with β = 1':>16}")
adaptive_on_max, all_clamped = [], []
for n in sizes:
    r = results[n]
    probs, beta = sl.adaptive_temperature(r["logits"])
    adaptive_on_max.append(probs[r["rows"], r["argmax"]].mean())
    all_clamped.append(bool(np.all(beta == 1.0)))
    print(f"{n:6d} {r['on_max'].mean():8.3f} {adaptive_on_max[-1]:9.3f} {adaptive_on_max[-1] / r['on_max'].mean():6.2f}"
          f" {beta.mean():7.2f} {np.mean(beta == 1.0):16.0%}")
adaptive_on_max = np.array(adaptive_on_max)
i1024 = sizes.index(1024)
assert np.all(adaptive_on_max[:-1] >= on_max[:-1] - 1e-6), "β >= 1 can only sharpen the row"
assert adaptive_on_max[i1024] > 1.7 * on_max[i1024], "adaptive temperature should help clearly at n = 1024"
assert all_clamped[-1] and abs(adaptive_on_max[-1] - on_max[-1]) < 1e-6, "past the cut-off β is 1: no help"

# %%
fig, ax = plt.subplots(figsize=(7, 4))
ax.semilogx(sizes, on_max, "o-", label="softmax (trained at n = 16)")
ax.semilogx(sizes, adaptive_on_max, "s-", label="adaptive temperature")
ax.semilogx(sizes, estimate, "k:", label="L / (L + n − 1), slope estimate")
n_grid = np.logspace(np.log10(16), np.log10(16384), 100)
ax.semilogx(n_grid, sl.max_weight_bound(delta, n_grid), "C3--", label=f"bound e^Δ/(e^Δ+n−1), Δ = {delta:.0f}")
ax.axvline(np.exp(cutoff), c="gray", lw=1, ls="--")
ax.text(np.exp(cutoff) * 1.1, 0.86, f"a uniform row\npasses the cut-off\n(n = {np.exp(cutoff):.0f})", fontsize=8,
        color="gray")
ax.set(xlabel="number of items n", ylabel="attention weight on the max", ylim=(0, 1.05),
       title="a head trained on 16 items, tested on more")
ax.legend(fontsize=8, loc="lower left")
plt.show()

# %% [markdown]
# Adaptive temperature roughly doubles the weight on the maximum in the middle of the range, where rows
# are moderately spread, but it cannot stop the dispersion: β is capped near 2.4, which multiplies the
# slope $L$ by at most that much, and on the largest sets the rows are so flat that their entropy is past
# the cut-off and β is clamped to 1. Our head is still partly sharp, so its rows' entropy stays well below
# $\log n$ (the first table) and crosses the cut-off only between 4096 and 16384 items. A head that is
# *unsure* — nearly uniform rows, $H \approx \log n$ — is past the cut-off as soon as $n$ exceeds a few
# hundred. The untrained head (the same initialisation, before any step) is such a head:

# %%
unsure = MaxRetrievalHead(hidden=32, dim=16, rng=np.random.default_rng(0))
test = max_retrieval(256, 1024, seed=7)
with mta.no_grad():
    _, weights, logits = unsure(test.values)
probs, beta = sl.adaptive_temperature(logits.data)
rows = np.arange(256)
h_unsure = sl.entropy(weights.data)
print(f"untrained head, n = 1024: entropy {h_unsure.min():.3f}..{h_unsure.max():.3f} nats (log n = {np.log(1024):.3f}),"
      f" rows with β = 1: {np.mean(beta == 1):.0%}")
print(f"weight on max: softmax {weights.data[rows, test.argmax].mean():.5f}, adaptive "
      f"{probs[rows, test.argmax].mean():.5f}, uniform 1/n = {1 / 1024:.5f}")
assert h_unsure.min() > cutoff and np.all(beta == 1.0) and np.array_equal(probs, weights.data)

# %% [markdown]
# Every row is past the cut-off, β = 1, and adaptive temperature returns the softmax unchanged.
#
# The paper itself calls adaptive temperature an ad-hoc technique: it delays the dispersion, it does not
# remove it, because the theorem holds for any fixed β. Staying sharp at every $n$ needs a different
# normaliser — lesson 13's sparse attention (sparsemax, α-entmax) can give a weight of exactly 1.
#
# ## Summary
#
# - With logits in an interval of width $\Delta$, no softmax weight exceeds $e^\Delta / (e^\Delta + n - 1)$;
#   for bounded inputs a trained network has bounded $\Delta$, so its attention must disperse as $n$ grows.
# - In practice it disperses much earlier than $n \approx e^\Delta$: near-ties get near-equal logits, and
#   the weight on the max falls like $L / (L + n - 1)$ with $L$ the logit's slope near the top.
# - Adaptive temperature (β from the row's entropy, inference only) sharpens moderately spread rows, but
#   β never exceeds about 2.4 and β = 1 past $H \approx 5.9$ nats: it cannot help near-uniform rows over
#   hundreds of items.
#
# Now complete exercises 12.1–12.3 in `exercises/lesson12_softmax_limits.py` and run
# `pytest tests/exercises/test_lesson12_softmax_limits.py` (or `python -m minitorch_attn grade --lesson 12`).
