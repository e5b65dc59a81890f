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
# # Lesson 14 — Attention without softmax: linear, Galerkin and Fourier attention; μP's 1/d
#
# Softmax attention builds an $N \times N$ matrix: $O(N^2 d)$ time and $O(N^2)$ memory (lesson 10's flash
# attention saves the memory, not the time). Drop the softmax and the matrix product becomes
# *associative*: $(QK^\top)V = Q(K^\top V)$, and the right-hand side costs $O(N d\, d_v)$. This lesson
# follows that idea three ways:
#
# 1. **Linear attention** (Katharopoulos et al. 2020, *Transformers are RNNs*): a positive feature map in
#    place of the exponential; causal attention becomes a running sum — an RNN with a $d \times d_v$ state.
# 2. **Galerkin and Fourier attention** (Cao 2021, *Choose a Transformer: Fourier or Galerkin*): no softmax
#    and no feature map, just layer norm and a $1/N$ — a discretised integral, so it converges as the grid
#    is refined.
# 3. **μP's $1/d$ scale** (Yang et al. 2022, *Tensor Programs V*): why $1/\sqrt d$ is right for independent
#    queries and keys, and $1/d$ once they are correlated.
#
# Library: `minitorch_attn/functional/linear_attention.py`. Exercises (in `exercises/lesson14_linear_attention.py`,
# graded by `pytest tests/exercises/test_lesson14_linear_attention.py`):
#
# | exercise | what | points |
# |---|---|---|
# | 14.1 | `linear_attention_regrouped`: $\varphi(Q)\,(\varphi(K)^\top V)$ with its normaliser | 3 |
# | 14.2 | `causal_linear_attention_prefix`: the causal version as prefix sums | 3 |
# | 14.3 | `galerkin_attention`: $Q\,(\mathrm{LN}(K)^\top \mathrm{LN}(V))/N$ | 2 |
#
# To run this notebook on **your** implementations, uncomment the `use` line below.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

import minitorch_attn as mta
from minitorch_attn.functional import linear_attention as LA
from minitorch_attn.functional import softmax_limits as SL

# mta.course.use("exercises")   # run the lesson on your own code
np.set_printoptions(precision=4, suppress=True)
rng = np.random.default_rng(14)

# %% [markdown]
# ## 1. Linear attention: the kernel trick and the regrouping
#
# Write softmax attention as a weighted average with a similarity $\mathrm{sim}(q, k) = e^{q\cdot k/\sqrt d}$:
#
# $$\mathrm{out}_i = \frac{\sum_j \mathrm{sim}(q_i, k_j)\, v_j}{\sum_j \mathrm{sim}(q_i, k_j)}.$$
#
# Any positive similarity gives a weighted average. Take one that factorises,
# $\mathrm{sim}(q, k) = \varphi(q)^\top \varphi(k)$ with $\varphi(x) = \mathrm{elu}(x) + 1 > 0$, and the
# sums over $j$ no longer depend on $i$:
#
# $$\mathrm{out}_i = \frac{\varphi(q_i)^\top \big(\sum_j \varphi(k_j) v_j^\top\big)}
#                        {\varphi(q_i)^\top \sum_j \varphi(k_j)}.$$
#
# The $d \times d_v$ matrix $\sum_j \varphi(k_j) v_j^\top = \varphi(K)^\top V$ is computed **once**; each query
# then costs $O(d\, d_v)$. Same numbers as the quadratic form $(\varphi(Q)\varphi(K)^\top)V$, summed in a
# different order. (An `eps` of $10^{-6}$ in the denominator, as in the authors' code, keeps it from 0 when
# every $\varphi(k)$ underflows; both forms use it.)

# %%
phi_x = np.linspace(-4, 3, 200)
plt.figure(figsize=(4.5, 2.8))
plt.plot(phi_x, LA.elu_plus_one(phi_x).data, label="elu(x) + 1")
plt.plot(phi_x, np.exp(phi_x), "--", label="exp(x)")
plt.ylim(0, 5)
plt.title("the feature map: positive, like exp, but linear for x > 0")
plt.legend()
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
# (rounding-level errors depend on the BLAS build; the asserts check them)
B, H, N, d, dv = 2, 3, 300, 16, 8
q, k, v = (rng.standard_normal((B, H, N, dim)) for dim in (d, d, dv))
fast = LA.linear_attention(q, k, v).data  # φ(Q) (φ(K)ᵀ V): never builds the N×N matrix
slow = LA.linear_attention_quadratic(q, k, v).data  # (φ(Q) φ(K)ᵀ) V
regroup_err = np.abs(fast - slow).max()
print(f"shapes q {q.shape}, v {v.shape} -> out {fast.shape}")
print(f"max |regrouped - quadratic| (float64) = {regroup_err:.2e}")
assert regroup_err < 1e-12, "regrouping the products must not change the result beyond rounding"

# %% [markdown]
# ## 2. Causal linear attention is an RNN
#
# With a causal mask, query $i$ sums over $j \le i$ only. The two sums become **prefix sums**,
#
# $$S_i = \sum_{j \le i} \varphi(k_j) v_j^\top, \qquad z_i = \sum_{j\le i} \varphi(k_j), \qquad
#   \mathrm{out}_i = \frac{\varphi(q_i)^\top S_i}{\varphi(q_i)^\top z_i},$$
#
# which is a recurrence: $S_i = S_{i-1} + \varphi(k_i) v_i^\top$. The state $(S, z)$ has $d\,d_v + d$ numbers
# whatever the length — generating token $i$ costs $O(d\, d_v)$, not $O(i\, d)$ as with a softmax KV cache.
# `linear_attention(causal=True)` computes all $S_i$ at once with a cumulative sum (Exercise 14.2);
# `linear_attention_recurrent` is the RNN, one step at a time. Both must equal the masked quadratic form.

# %%
# NBVAL_IGNORE_OUTPUT
# (rounding-level errors depend on the BLAS build; the asserts check them)
causal_fast = LA.linear_attention(q, k, v, causal=True).data
causal_slow = LA.linear_attention_quadratic(q, k, v, causal=True).data
causal_rnn = LA.linear_attention_recurrent(q, k, v)
prefix_err, rnn_err = np.abs(causal_fast - causal_slow).max(), np.abs(causal_rnn - causal_slow).max()
print(f"max |prefix sums - masked quadratic| = {prefix_err:.2e}")
print(f"max |RNN steps   - masked quadratic| = {rnn_err:.2e}")
print(f"RNN state per head: d*dv + d = {d * dv + d} numbers; a softmax KV cache at N = {N}: N*(d+dv) = "
      f"{N * (d + dv)}")
assert prefix_err < 1e-12 and rnn_err < 1e-12
# the first output sees only the first key: it must be v_0 (up to eps)
assert np.allclose(causal_fast[..., 0, :], v[..., 0, :], atol=1e-5)

# %% [markdown]
# Everything is built from `Tensor` ops (`matmul`, a differentiable `cumsum`, `elu_plus_one`), so a model
# can train through it. The backward is checked against float64 finite differences. For huge inputs the
# feature map never overflows (it is $x + 1$ for $x > 0$); for very negative ones $e^x$ underflows to exactly 0
# (below about $-745$ in float64), and then `eps` keeps the denominator away from 0:

# %%
qs, ks, vs = (mta.tensor(rng.standard_normal((2, 5, 4)), requires_grad=True) for _ in range(3))
for causal in (False, True):
    assert mta.gradcheck(lambda a, b, c, causal=causal: LA.linear_attention(a, b, c, causal=causal), [qs, ks, vs])
print("gradcheck (float64): non-causal and causal pass")
huge = LA.linear_attention(q * 1e4, k * 1e4, v, causal=True).data
print("feature map at -1e4, -30, 0, 1e4:", LA.elu_plus_one(np.array([-1e4, -30.0, 0.0, 1e4])).data)
print("outputs with q, k scaled by 1e4 are finite:", bool(np.isfinite(huge).all()))
assert np.isfinite(huge).all()

# %% [markdown]
# ### Where does the regrouping pay?
#
# Multiply-adds: the quadratic form costs about $N^2 (d + d_v)$, the regrouped one $2 N d\, d_v$, so the linear
# form wins once $N$ exceeds about $2 d\, d_v / (d + d_v)$. Counting is exact; wall-clock time on your
# machine is measured below (its numbers vary from run to run, so the lesson prints them and asserts
# nothing about them).

# %%
d_t, dv_t = 32, 32
ns = [64, 128, 256, 512, 1024, 2048]
flops = {n: (n * n * (d_t + dv_t), 2 * n * d_t * dv_t) for n in ns}
for n in ns:
    print(f"N = {n:5d}: quadratic {flops[n][0]:>12,d}  linear {flops[n][1]:>10,d}  ratio {flops[n][0] / flops[n][1]:6.1f}")

# %%
# NBVAL_IGNORE_OUTPUT
# (wall-clock timings differ between machines and runs)
def best_time(fn, *args, repeats=3):
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best


times = {"quadratic": [], "linear": []}
with mta.no_grad():
    for n in ns:
        qt, kt, vt = (rng.standard_normal((1, n, d_t)) for _ in range(3))
        times["quadratic"].append(best_time(LA.linear_attention_quadratic, qt, kt, vt))
        times["linear"].append(best_time(LA.linear_attention, qt, kt, vt))
for n, tq, tl in zip(ns, times["quadratic"], times["linear"]):
    print(f"N = {n:5d}: quadratic {tq * 1e3:7.2f} ms   linear {tl * 1e3:7.2f} ms   ratio {tq / tl:5.1f}")
plt.figure(figsize=(5, 3.2))
for name, ts in times.items():
    plt.loglog(ns, ts, marker="o", label=name)
plt.xlabel("sequence length N")
plt.ylabel("seconds (best of 3)")
plt.title(f"(φQ φKᵀ)V vs φQ(φKᵀV), d = dv = {d_t}")
plt.legend()
plt.show()

# %% [markdown]
# The price: $\varphi(q)^\top\varphi(k)$ is a weaker similarity than $e^{q \cdot k}$ — it cannot be as sharp
# (lesson 12 showed that even softmax struggles to be sharp), and the state is a fixed-size summary of the
# past. That trade-off is why later work (RetNet, Mamba, gated linear attention) adds decay and gating.
#
# ## 3. Galerkin and Fourier attention: attention as an integral
#
# Cao (2021) learns operators between functions sampled on a grid of $N$ points. Drop the softmax, put
# layer normalisation (over the feature axis) on the two tensors that are multiplied first, and divide by $N$:
#
# $$\text{Galerkin: } z = Q\,\big(\mathrm{LN}(K)^\top \mathrm{LN}(V)\big)/N, \qquad
#   \text{Fourier: } z = \big(\mathrm{LN}(Q)\,\mathrm{LN}(K)^\top\big)\,V/N.$$
#
# (Which tensors are normalised is from the author's README: *"Q, K get layer normalized in the local
# attention [Fourier], as for K, V in the global attention [Galerkin]"*.) The Galerkin form is linear attention
# without a feature map or normaliser, cost $O(N d^2)$; the Fourier form keeps the $N \times N$ kernel
# matrix. Without a softmax, both groupings are available to both — and agree to rounding:

# %%
# NBVAL_IGNORE_OUTPUT
# (rounding-level errors depend on the BLAS build; the asserts check them)
x_grid = np.arange(4096) / 4096
u = LA.grid_function(x_grid)
w = np.random.default_rng(0).standard_normal((3, 3, 16))
Qg, Kg, Vg = (mta.tensor(u @ w[i]) for i in range(3))
for fn in (LA.galerkin_attention, LA.fourier_attention):
    by_kv, by_qk = fn(Qg, Kg, Vg, order="kv").data, fn(Qg, Kg, Vg, order="qk").data
    err = np.abs(by_kv - by_qk).max()
    print(f"{fn.__name__:19s} N = 4096: max |Q(KᵀV) - (QKᵀ)V| = {err:.1e}   (outputs up to {np.abs(by_kv).max():.1f})")
    assert err < 1e-10

# %% [markdown]
# **The grid-refinement property.** Row $i$ of the Galerkin output is
# $q(x_i)^\top \frac1N\sum_j \tilde k(x_j)\tilde v(x_j)^\top$, and
# $\frac1N \sum_j f(x_j) \to \int_0^1 f(x)\,dx$ as the grid is refined: the output at a fixed physical point
# barely depends on the resolution. We sample a smooth function on grids of 256 and 4096 points
# ($x_j = j/N$), project it with **the same** random $W_Q, W_K, W_V$, and compare the outputs at the 256
# shared points. How close they are depends on the integrand: for a smooth periodic function the rectangle
# rule is spectrally accurate; for a non-periodic one its error is $O(1/N)$ — halving with each doubling.

# %%
# NBVAL_IGNORE_OUTPUT
# (rounding-level errors depend on the BLAS build; the asserts check them)
results = {}
for periodic in (True, False):
    for kind in ("galerkin", "fourier"):
        _, z_ref = LA.grid_attention(8192, kind, periodic=periodic)
        errs = [np.abs(LA.grid_attention(n, kind, periodic=periodic)[1] - z_ref[:: 8192 // n]).max()
                for n in (256, 512, 1024, 2048)]
        x256, z256 = LA.grid_attention(256, kind, periodic=periodic)
        x4096, z4096 = LA.grid_attention(4096, kind, periodic=periodic)
        diff = np.abs(z256 - z4096[::16]).max()
        results[periodic, kind] = (diff, errs, (x256, z256), (x4096, z4096))
        label = "periodic    " if periodic else "non-periodic"
        print(f"{label} {kind:8s}: max |z_256 - z_4096| at shared points = {diff:.1e};  "
              f"error vs 8192 at N = 256..2048: {', '.join(f'{e:.1e}' for e in errs)}")

# %%
for kind in ("galerkin", "fourier"):
    assert results[True, kind][0] < 1e-3, "smooth periodic input: the two grids must agree to < 1e-3"
    errs = results[False, kind][1]
    rates = [errs[i] / errs[i + 1] for i in range(2)]  # 256->512, 512->1024 (vs 8192, before the reference's error)
    assert all(1.7 < r < 2.5 for r in rates), f"non-periodic input: the rectangle rule should be O(1/N), got {rates}"
print("periodic: grids agree far below 1e-3; non-periodic: first-order convergence (error halves per doubling)")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
for ax, periodic in zip(axes, (True, False)):
    diff, _, (x256, z256), (x4096, z4096) = results[periodic, "galerkin"]
    ax.plot(x4096, z4096[:, 0], lw=3, alpha=0.4, label="N = 4096")
    ax.plot(x256, z256[:, 0], "k.", ms=3, label="N = 256")
    ax.set(title=f"Galerkin output, channel 0 ({'periodic' if periodic else 'non-periodic'} input)", xlabel="x")
    ax.legend()
plt.show()

# %% [markdown]
# ## 4. μP: why $1/d$ and not $1/\sqrt{d}$
#
# Lesson 05 scaled scores by $1/\sqrt d$ because for **independent** $q, k$ with unit-variance entries,
# $q\cdot k$ is a sum of $d$ independent terms with mean 0: its size is $\sqrt d$. After training, queries and
# keys are **correlated** — a query is meant to match its key — and then $q \cdot k$ is a sum of $d$ terms with a
# non-zero mean: its size is $\propto d$. Maximal-update parametrisation (μP, Yang et al. 2022) therefore
# scales attention logits by $1/d$, so that their size does not depend on the width.
#
# `correlated_qk(d, alignments)` samples $q = (s + a)/\sqrt2$ and $k = (c\,s + \sqrt{2-c^2}\,b)/\sqrt2$ with
# $s, a, b \sim N(0, I_d)$: unit-variance entries, and $\mathbb E[q\cdot k] = c\,d/2$.

# %%
ds = [64, 128, 256, 512, 1024, 2048, 4096]
corr = LA.qk_scale_stats(ds, alignment=1.0, trials=200, seed=0)
indep = LA.qk_scale_stats(ds, alignment=0.0, trials=200, seed=1)
print("    d   corr |q·k|/√d  corr |q·k|/d   indep |q·k|/√d  indep |q·k|/d")
for i, dd in enumerate(ds):
    print(f"{dd:5d}   {corr['sqrt_d'][i]:12.2f}  {corr['d_scaled'][i]:12.3f}   {indep['sqrt_d'][i]:14.3f}  "
          f"{indep['d_scaled'][i]:13.4f}")
assert 3.5 < corr["sqrt_d"][0] < 4.5 and 28 < corr["sqrt_d"][-1] < 36, "correlated: |q·k|/√d grows like √d / 2"
assert np.all(np.abs(corr["d_scaled"] - 0.5) < 0.05), "correlated: |q·k|/d stays at 1/2"
assert np.all((indep["sqrt_d"] > 0.6) & (indep["sqrt_d"] < 1.0)), "independent: |q·k|/√d stays O(1) (≈ √(2/π))"

# %% [markdown]
# Now the softmax over 64 keys whose alignments $c_j$ are spread over $[-1, 1]$ (some keys match the query,
# some do not). Under $1/\sqrt d$ the logits spread like $\sqrt d$ and the attention collapses onto the best
# key as the width grows; under $1/d$ the logits, and the entropy, do not depend on $d$.

# %%
alignments = np.linspace(-1, 1, 64)
ent_rng = np.random.default_rng(2)
entropy = {"1/√d": [], "1/d": []}
for dd in ds:
    pairs = [LA.correlated_qk(dd, alignments, ent_rng) for _ in range(30)]
    entropy["1/√d"].append(np.mean([SL.softmax_entropy(kk @ qq / np.sqrt(dd)) for qq, kk in pairs]))
    entropy["1/d"].append(np.mean([SL.softmax_entropy(kk @ qq / dd) for qq, kk in pairs]))
for i, dd in enumerate(ds):
    print(f"d = {dd:5d}: entropy with 1/√d = {entropy['1/√d'][i]:.2f} nats, with 1/d = {entropy['1/d'][i]:.2f} "
          f"(uniform: log 64 = {np.log(64):.2f})")
assert entropy["1/√d"][-1] < entropy["1/√d"][0] - 1.0, "under 1/√d the entropy should collapse with d"
assert np.ptp(entropy["1/d"]) < 0.1, "under 1/d the entropy should not depend on d"

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.3))
axes[0].loglog(ds, corr["sqrt_d"], "o-", label="correlated, /√d")
axes[0].loglog(ds, corr["d_scaled"], "s-", label="correlated, /d")
axes[0].loglog(ds, indep["sqrt_d"], "o--", label="independent, /√d")
axes[0].loglog(ds, indep["d_scaled"], "s--", label="independent, /d")
axes[0].set(xlabel="d", ylabel="mean |q·k| / scale", title="the size of a logit")
axes[0].legend()
axes[1].semilogx(ds, entropy["1/√d"], "o-", label="1/√d")
axes[1].semilogx(ds, entropy["1/d"], "s-", label="1/d")
axes[1].axhline(np.log(64), ls="--", c="gray", label="uniform")
axes[1].set(xlabel="d", ylabel="entropy (nats)", title="softmax over 64 correlated keys")
axes[1].legend()
plt.show()

# %% [markdown]
# For independent $q, k$ the picture flips: $/\sqrt d$ keeps the logits $O(1)$, $/d$ shrinks them like
# $1/\sqrt d$ and makes attention uniform at initialisation. μP accepts that (it even initialises the query
# projection to zero): at init the logits are meant to be small, and after training, when $q$ and $k$ *are*
# correlated, $1/d$ is the scale at which the logits — and the learning rate that produces them — transfer
# from a narrow model to a wide one.
#
# ## Summary
#
# - Without a softmax, $(QK^\top)V = Q(K^\top V)$: linear attention costs $O(N d\, d_v)$; its causal form is a
#   prefix sum, an RNN with a $d \times d_v$ state. Measured above: regrouped vs quadratic, and prefix-sum vs
#   masked quadratic, agree to float64 rounding.
# - Galerkin/Fourier attention are Riemann sums: the output at a physical point converges as the grid is
#   refined (spectrally for periodic inputs, $O(1/N)$ otherwise).
# - Correlated $q, k$: $|q\cdot k|/\sqrt d$ grows like $\sqrt d$ and the softmax collapses; $|q\cdot k|/d$ stays
#   at $1/2$ — μP's $1/d$.
