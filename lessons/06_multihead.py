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
# # Lesson 06 — Multi-head attention and positional encodings
#
# One attention head computes **one** weighted average of the values per query. Multi-head attention
# (Vaswani et al., 2017) runs $H$ of them side by side, each in its own $d/H$-dimensional projection of the
# queries, keys and values, and mixes their outputs:
#
# $$\mathrm{MHA}(Q, K, V) = \mathrm{concat}(\mathrm{head}_1, \dots, \mathrm{head}_H)\, W_O, \qquad
# \mathrm{head}_h = \mathrm{Attention}(Q W_Q^{(h)}, K W_K^{(h)}, V W_V^{(h)}).$$
#
# Then: attention cannot see order (permute the keys and values together and nothing changes), so
# positions have to be put in — sinusoidal tables, learned tables, or rotations of $q$ and $k$ (RoPE).
#
# Exercises (in `exercises/lesson06_multihead.py`, graded by `pytest tests/exercises/test_lesson06_multihead.py`):
#
# | exercise | what | points |
# |---|---|---|
# | 6.1 | `split_heads`: (B, N, E) → (B, H, N, E/H) | 1 |
# | 6.2 | `merge_heads`: (B, H, N, d) → (B, N, H·d) | 1 |
# | 6.3 | `sinusoidal_encoding`: the Transformer's position table | 2 |
# | 6.4 | `apply_rope`: rotary position embedding | 3 |
#
# To run this notebook on **your** implementations, uncomment the `use` line below.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
from tqdm import tqdm

import minitorch_attn as mta
from minitorch_attn import functional as F
from minitorch_attn import nn, optim, viz
from minitorch_attn.data import two_needle_retrieval
from minitorch_attn.functional import multihead, positional

# mta.course.use("exercises")   # run the lesson on your own code
np.set_printoptions(precision=4, suppress=True)
rng = np.random.default_rng(0)
T0 = time.perf_counter()

# %% [markdown]
# ## 1. Splitting into heads, and merging back
#
# All heads are computed at once: project to $E$ features as usual, then **reshape** the feature axis into
# (heads, features per head) and move the head axis in front of the sequence axis, so that attention's
# matmuls batch over (B, H). Head $h$ owns features $h\cdot E/H, \dots, (h+1)\cdot E/H - 1$ (PyTorch's layout).
# Reshaping straight to (B, H, N, E/H) has the right shape and the wrong contents — it hands other positions'
# features to a head, a bug that easy tasks do not reveal (section 2 catches it with a loop-over-heads reference).

# %%
x = mta.tensor(np.arange(2 * 3 * 6, dtype=np.float64).reshape(2, 3, 6))  # B=2, N=3, E=6
heads = multihead.split_heads(x, 2)  # (2, 2, 3, 3)
print("x[0]:\n", x.data[0])
print("head 0 of x[0] (features 0-2):\n", heads.data[0, 0])
print("head 1 of x[0] (features 3-5):\n", heads.data[0, 1])
wrong = x.data.reshape(2, 2, 3, 3)
print("a bare reshape's 'head 0':\n", wrong[0, 0], "  <- mixes positions 0 and 1")
assert np.array_equal(multihead.merge_heads(heads).data, x.data)

# %% [markdown]
# ## 2. `nn.MultiheadAttention`: PyTorch's module, parameter for parameter
#
# Same constructor, same parameter names and shapes (`in_proj_weight`, `in_proj_bias`, `out_proj`; or
# `q_proj_weight`/`k_proj_weight`/`v_proj_weight` when keys and values have their own sizes `kdim`, `vdim`),
# same initialisation, so a torch `state_dict()` loads with `load_state_dict`.
#
# **Masks follow torch's MultiheadAttention: True means NOT allowed** (`key_padding_mask` True = padding) —
# the opposite of `F.scaled_dot_product_attention`'s boolean `attn_mask`. The module converts them to additive
# $-\infty$ masks before calling SDPA.
#
# First, a check against a deliberately plain reference that loops over the heads, on non-square shapes
# (embed_dim ≠ kdim ≠ vdim, $N_q \ne N_k$), where a missing transpose cannot hide:

# %%
E, H, kdim, vdim = 12, 3, 5, 7
mha = nn.MultiheadAttention(E, H, kdim=kdim, vdim=vdim, rng=np.random.default_rng(1), dtype=np.float64)
qx, kx, vx = rng.standard_normal((2, 4, E)), rng.standard_normal((2, 9, kdim)), rng.standard_normal((2, 9, vdim))
out, w = mha(qx, kx, vx, average_attn_weights=False)


def loop_over_heads(m, query, key, value):
    d = m.embed_dim // m.num_heads
    b = m.in_proj_bias.data
    outs = []
    for h in range(m.num_heads):
        sl = slice(h * d, (h + 1) * d)
        q = query @ m.q_proj_weight.data[sl].T + b[sl]
        k = key @ m.k_proj_weight.data[sl].T + b[E:][sl]
        v = value @ m.v_proj_weight.data[sl].T + b[2 * E :][sl]
        p = F.softmax(mta.tensor(q @ k.swapaxes(-1, -2) / np.sqrt(d)), axis=-1).data
        outs.append(p @ v)
    return np.concatenate(outs, axis=-1) @ m.out_proj.weight.data.T + m.out_proj.bias.data


print("out", out.shape, " per-head weights", w.shape)
print("matches the loop over heads to 1e-12:", np.allclose(out.data, loop_over_heads(mha, qx, kx, vx), atol=1e-12))
assert np.allclose(out.data, loop_over_heads(mha, qx, kx, vx), atol=1e-12)

# %% [markdown]
# When PyTorch is installed (the course's tests use it as the oracle; the course itself does not need it),
# the same inputs through `torch.nn.MultiheadAttention` with our module's weights give the same numbers:

# %%
# NBVAL_IGNORE_OUTPUT
# (prints a different line when torch is not installed)
try:
    import torch
except ImportError:
    torch = None
if torch is None:
    print("torch is not installed: skipped (tests/test_multihead.py checks the parity)")
else:
    tm = torch.nn.MultiheadAttention(E, H, kdim=kdim, vdim=vdim, batch_first=True, dtype=torch.float64)
    tm.load_state_dict({k_: torch.tensor(v_) for k_, v_ in mha.state_dict().items()})
    t_out, t_w = tm(*(torch.tensor(a) for a in (qx, kx, vx)), average_attn_weights=False)
    diff = max(np.abs(out.data - t_out.detach().numpy()).max(), np.abs(w.data - t_w.detach().numpy()).max())
    print(f"max |ours - torch| over outputs and per-head weights: {diff:.1e}")
    assert diff < 1e-12

# %% [markdown]
# **The parameter count does not depend on the number of heads.** Splitting $E$ features into $H$ heads of
# $E/H$ cuts the same projection matrices into slices: $W_Q, W_K, W_V, W_O$ are $E \times E$ whatever $H$ is,
# so MHA has $4E^2$ weights (plus $4E$ biases). More heads cost nothing in parameters — each head just gets a
# narrower space to compare in.

# %%
for E_ in (64, 256):
    counts = {h: nn.MultiheadAttention(E_, h).num_parameters() for h in (1, 2, 4, 8)}
    print(f"E = {E_}: parameters by head count {counts}; 4E^2 + 4E = {4 * E_ * E_ + 4 * E_}")
    assert set(counts.values()) == {4 * E_ * E_ + 4 * E_}

# %% [markdown]
# ## 3. What two heads can do that one cannot: two-needle retrieval
#
# A sample is a little dictionary: 8 items, each a key (one of 16 symbols) and a value (a random 3-bit
# number, coded as ±1 bits) — **the values say nothing about their keys**. The query names two keys, in
# order, $(a, b)$; the answer is the pair (value of $a$, value of $b$). The model is as small as it gets: the
# query is embedded linearly, one `MultiheadAttention` layer reads the dictionary (`key` = the one-hot keys,
# `value` = the bits: kdim ≠ vdim ≠ embed_dim), and a linear read-out predicts the six answer bits.
#
# **Why one head cannot.** A head's output is $\sum_j p_j W v_j$ with weights $p_j$ computed from the query
# and the *keys* only. Around the two needles that is $\alpha W v_a + \beta W v_b$. Fix everything but bit $i$
# of both values: as $(a_i, b_i)$ runs over $(+,+), (+,-), (-,+), (-,-)$ the output moves along one line,
# through $\pm\alpha \pm \beta$ times a fixed vector. If $\alpha > \beta$ the four points are ordered so that
# $b_i$ reads $+, -, +, -$: an XOR, which no linear read-out separates (and if $\alpha < \beta$, $a_i$ is the
# one lost). So one head gets **one** of the two values right and guesses the other: about $2^{-3} = 1/8$
# exact answers. Two heads retrieve one needle each. Both models have exactly the same number of parameters.

# %%
K_SYMBOLS, N_ITEMS, BITS, EMBED = 16, 8, 3, 16


class Retriever(nn.Module):
    def __init__(self, num_heads, rng):
        super().__init__()
        self.embed = nn.Linear(2 * K_SYMBOLS, EMBED, rng=rng)
        self.attn = nn.MultiheadAttention(EMBED, num_heads, kdim=K_SYMBOLS, vdim=BITS, rng=rng)
        self.readout = nn.Linear(EMBED, 2 * BITS * 2, rng=rng)  # two logits per answer bit

    def forward(self, batch):
        query = self.embed(mta.tensor(batch.query))[:, None, :]  # (B, 1, EMBED): one query token
        out, weights = self.attn(query, mta.tensor(batch.keys), mta.tensor(batch.values), average_attn_weights=False)
        return self.readout(out[:, 0]).reshape(-1, 2 * BITS, 2), weights


def accuracy(model, data):
    with mta.no_grad():
        logits, _ = model(data)
    right = (logits.data.argmax(-1).reshape(-1, 2, BITS) == data.target_bits).all(-1)  # (n, 2): per value
    return right.all(-1).mean(), right.mean(0)


test_set = two_needle_retrieval(2000, N_ITEMS, K_SYMBOLS, BITS, seed=10_000)
print("parameters, 1 head:", Retriever(1, np.random.default_rng(0)).num_parameters(),
      "  2 heads:", Retriever(2, np.random.default_rng(0)).num_parameters())

# %%
# NBVAL_IGNORE_OUTPUT
# (float32 training: the losses' last digits and the progress bar's timings vary across CPUs)
STEPS, BATCH = 300, 64
models, losses, results = {}, {}, {}
for heads in (1, 2):
    model = Retriever(heads, np.random.default_rng(0))
    opt = optim.Adam(model.parameters(), lr=0.03)
    losses[heads] = []
    for step in tqdm(range(STEPS), desc=f"{heads} head{'s' if heads > 1 else ''}", mininterval=1.0):
        batch = two_needle_retrieval(BATCH, N_ITEMS, K_SYMBOLS, BITS, seed=step)
        logits, _ = model(batch)
        loss = F.cross_entropy(logits.reshape(-1, 2), batch.target_bits.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses[heads].append(loss.item())
    models[heads] = model
    results[heads] = accuracy(model, test_set)
    exact, per_value = results[heads]
    print(f"{heads} head(s): exact answers {exact:.3f}; value of a right {per_value[0]:.3f}, "
          f"value of b right {per_value[1]:.3f}")

# %%
exact1, per1 = results[1]
exact2, per2 = results[2]
assert exact2 >= 0.95, "two heads should retrieve both needles"
assert exact1 <= 0.35, "one head cannot retrieve both needles"
assert max(per1) >= 0.9 and min(per1) <= 0.35, "one head retrieves one value and guesses the other"
print("2 heads >= 0.95 exact; 1 head <= 0.35 exact, one value right and the other at chance: as predicted")

fig, axes = plt.subplots(1, 3, figsize=(15, 3.4))
viz.curves({"1 head": losses[1], "2 heads": losses[2]}, title="training loss (cross-entropy per bit)",
           ylabel="loss", ax=axes[0], logy=True)
sample = two_needle_retrieval(1, N_ITEMS, K_SYMBOLS, BITS, seed=123)
_, w2 = models[2](sample)
labels = [f"{'a' if i == sample.needles[0, 0] else 'b' if i == sample.needles[0, 1] else ''}{sample.key_ids[0, i]}"
          for i in range(N_ITEMS)]
viz.heatmap(w2.data[0, :, 0], xlabels=labels, ylabels=["head 0", "head 1"], ax=axes[1], annotate=True,
            title="2 heads: one needle each", xlabel="item (key symbol)")
_, w1 = models[1](sample)
viz.heatmap(w1.data[0, :, 0], xlabels=labels, ylabels=["head 0"], ax=axes[2], annotate=True,
            title="1 head: one needle only", xlabel="item (key symbol)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 4. Sinusoidal positions
#
# The Transformer adds to token $p$ the vector $PE(p)$ with $PE(p)_{2i} = \sin(p\,\omega_i)$,
# $PE(p)_{2i+1} = \cos(p\,\omega_i)$, $\omega_i = 10000^{-2i/d}$ (Exercise 6.3): one sine/cosine pair per
# frequency, from one turn per $2\pi$ positions down to one per $2\pi \cdot 10^4$.
#
# The paper's reason: "for any fixed offset $k$, $PE_{pos+k}$ can be represented as a linear function of
# $PE_{pos}$". Each (sin, cos) pair at $p + k$ is the pair at $p$ rotated by the angle $k\omega_i$, so
# $PE(p + k) = M_k\,PE(p)$ with one block-diagonal rotation $M_k$ for all $p$. Check it by least squares:
# fit one $M_k$ to 200 positions and look at the residual.

# %%
d_model = 32
pe = positional.sinusoidal_encoding(300, d_model, dtype=np.float64)
for k_shift in (1, 7, 50):
    X, Y = pe[:200], pe[k_shift : 200 + k_shift]
    M, *_ = np.linalg.lstsq(X, Y, rcond=None)
    residual = np.abs(X @ M - Y).max()
    print(f"k = {k_shift:3d}: max |PE(p + k) - M_k PE(p)| = {'< 1e-10' if residual < 1e-10 else residual}")
    assert residual < 1e-10

# The fitted M is not unique: the slowest pairs barely turn over 200 positions, so many matrices fit them.
# The rotation itself is: one 2x2 block per frequency, angle k * omega_i (acting on row vectors: X @ R).
omega = 1.0 / 10000 ** (np.arange(0, d_model, 2) / d_model)
R = np.zeros((d_model, d_model))
for i, w in enumerate(omega):
    c, s_ = np.cos(k_shift * w), np.sin(k_shift * w)
    R[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = [[c, -s_], [s_, c]]
assert np.abs(X @ R - Y).max() < 1e-10
print(f"the block-diagonal rotation for k = {k_shift}: max |PE(p) R - PE(p + k)| < 1e-10")
fig, axes = plt.subplots(1, 2, figsize=(12, 3.2))
viz.heatmap(pe[:100].T, title="PE(p): features (rows) by position (columns)", ax=axes[0], cmap="RdBu",
            xlabel="position p", ylabel="feature")
viz.heatmap(R, title=f"the rotation for k = {k_shift}: 2x2 blocks", ax=axes[1], cmap="RdBu")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 5. Rotary position embedding (RoPE)
#
# RoPE (Su et al., 2021) does not add anything to the tokens; it **rotates** each query and key by an angle
# proportional to its position, pair of features by pair of features, with the same frequencies
# $\theta_i = 10000^{-2i/d}$ (Exercise 6.4). Since rotations are orthogonal and compose,
# $\langle R_m q, R_n k\rangle = \langle q, R_{n-m} k\rangle$: the score sees only the **relative** position
# $n - m$. This library pairs feature $i$ with feature $i + d/2$ ("half-split", the layout of GPT-NeoX and of
# Hugging Face's LLaMA); the RoFormer paper pairs adjacent features — the same thing up to a fixed permutation.
#
# Check: the same $q$ at every position $m$ and the same $k$ at every position $n$; the score matrix must be
# constant along every diagonal $n - m = $ const (a Toeplitz matrix):

# %%
q0, k0 = rng.standard_normal(64), rng.standard_normal(64)
n_pos = 64
Qr = positional.apply_rope(mta.tensor(np.tile(q0, (n_pos, 1)))).data
Kr = positional.apply_rope(mta.tensor(np.tile(k0, (n_pos, 1)))).data
S = Qr @ Kr.T
spread = max(np.ptp(np.diagonal(S, offset=o)) for o in range(-n_pos + 1, n_pos))
print(f"largest spread along a diagonal n - m = const: {'< 1e-10' if spread < 1e-10 else spread}")
assert spread < 1e-10
rel = np.array([S[0, n] for n in range(n_pos)])
assert np.allclose(rel, [q0 @ positional.apply_rope(mta.tensor(k0[None]), offset=n).data[0] for n in range(n_pos)])
fig, axes = plt.subplots(1, 2, figsize=(12, 3.4))
viz.heatmap(S, title="q_m . k_n after RoPE: constant along diagonals", ax=axes[0], xlabel="key position n",
            ylabel="query position m", cmap="RdBu")
axes[1].plot(rel, marker=".")
axes[1].set(title="the score as a function of n - m alone", xlabel="n - m", ylabel="q . R_(n-m) k")
plt.tight_layout()
plt.show()

# %% [markdown]
# RoPE's `offset` is what generation with a KV cache needs: the new token at position $t$ is rotated with
# `offset=t`, and the cached keys keep the rotations they got at their own positions. The result is the same
# as recomputing everything:

# %%
rope = nn.RotaryEmbedding(16)
qs, ks, vs = rng.standard_normal((1, 10, 16)), rng.standard_normal((1, 10, 16)), rng.standard_normal((1, 10, 4))
full = F.scaled_dot_product_attention(*rope(mta.tensor(qs), mta.tensor(ks)), vs, is_causal=True).data
cache = rope(mta.tensor(ks[:, :9])).data
q_new, k_new = rope(mta.tensor(qs[:, 9:]), mta.tensor(ks[:, 9:]), offset=9)
step = F.scaled_dot_product_attention(q_new, np.concatenate([cache, k_new.data], axis=1), vs).data
print("cached step == full recomputation:", np.allclose(step[:, 0], full[:, 9], atol=1e-12))
assert np.allclose(step[:, 0], full[:, 9], atol=1e-12)

# %%
# NBVAL_IGNORE_OUTPUT
# (wall-clock time of this notebook, different on every machine)
print(f"lesson ran in {time.perf_counter() - T0:.1f} s")

# %% [markdown]
# ## Summary
#
# - Multi-head attention = split the projections into $H$ slices, attend in each, concatenate, mix with $W_O$;
#   the split is a reshape **and a transpose**. $4E^2$ weights for any $H$.
# - Our `nn.MultiheadAttention` is PyTorch's, down to parameter names, masks (True = not allowed!) and numbers.
# - One head computes one convex combination of values: on two-needle retrieval it gets one needle and
#   guesses the other (≈ 1/8 exact answers); two heads solve it.
# - Sinusoidal encodings: $PE(p + k) = M_k PE(p)$, exactly (residual < $10^{-10}$).
# - RoPE rotates $q$ and $k$ so their scores depend only on the relative position; `offset` makes caching exact.
#
# Now complete exercises 6.1–6.4 in `exercises/lesson06_multihead.py` and run
# `pytest tests/exercises/test_lesson06_multihead.py` (or `python -m minitorch_attn grade --lesson 06`).
