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
# # Lesson 08 — Hopfield layers: `Hopfield`, `HopfieldPooling`, `HopfieldLayer`
#
# Lesson 07 showed that one modern Hopfield update is attention. The paper's authors turned that into layers
# (the library ml-jku/hopfield-layers); ours follow its API:
#
# - `nn.Hopfield`: associates **state** patterns (queries) with **stored** patterns (keys) and returns a
#   combination of **pattern projections** (values). Projections $W_Q, W_K, W_V$ and heads as in multi-head
#   attention, β (`scaling`, default $1/\sqrt{\text{head\_dim}}$), optional layer norms on the three inputs,
#   any number of update steps (or until the state moves less than a tolerance), and
#   `association_matrix` / `get_association_matrix(...)` to look at the weights.
# - `nn.HopfieldPooling`: the state patterns are **trained** (`quantity` of them): a learned query that pools a
#   set — e.g. a bag of instances — into a vector.
# - `nn.HopfieldLayer`: the stored patterns are trained: a learned memory that each input looks up.
#
# Exercises (in `exercises/lesson08_hopfield_layers.py`, graded by
# `pytest tests/exercises/test_lesson08_hopfield_layers.py`):
#
# | exercise | what | points |
# |---|---|---|
# | 8.1 | `hopfield_association`: update steps in the association space, then the read-out | 3 |
# | 8.2 | `HopfieldPooling.forward`: trainable queries pool a set | 2 |
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
from minitorch_attn.data import corrupt, glyphs, mask_half, mil_bags
from minitorch_attn.functional.hopfield import hopfield_update

# mta.course.use("exercises")   # run the lesson on your own code
np.set_printoptions(precision=4, suppress=True)
rng = np.random.default_rng(0)
T0 = time.perf_counter()

# %% [markdown]
# ## 1. `nn.Hopfield` with one update is multi-head attention
#
# Switch the layer norms off, give `nn.Hopfield` the weights of an `nn.MultiheadAttention`, and the two agree:
# $\beta = 1/\sqrt{\text{head\_dim}}$ is attention's scale, the stored patterns are the keys, the state patterns
# the queries, the pattern projections the values (Exercise 8.1 writes the association core). Calling the layer
# with one tensor `x` means `(x, x, x)`: self-attention.

# %%
E, H = 12, 3
mha = nn.MultiheadAttention(E, H, rng=np.random.default_rng(1), dtype=np.float64)
hop = nn.Hopfield(E, num_heads=H, normalize_stored_pattern=False, normalize_state_pattern=False,
                  normalize_pattern_projection=False, rng=np.random.default_rng(2), dtype=np.float64)
w = mha.in_proj_weight.data
for i, lin in enumerate((hop.q_proj, hop.k_proj, hop.v_proj)):  # torch's packing: Wq, Wk, Wv stacked
    lin.weight.data[...] = w[i * E : (i + 1) * E]
    lin.bias.data[...] = 0.0
hop.out_proj.load_state_dict(mha.out_proj.state_dict())
print(hop)
states, stored = rng.standard_normal((2, 4, E)), rng.standard_normal((2, 7, E))
ours = hop((stored, states, stored))
theirs, weights = mha(states, stored, stored, average_attn_weights=False)
diff = max(np.abs(ours.data - theirs.data).max(), np.abs(hop.association_matrix - weights.data).max())
print(f"output {ours.shape}, association matrix {hop.association_matrix.shape} (B, heads, states, stored)")
print(f"max |Hopfield - MultiheadAttention| over outputs and weights: {diff:.1e}")
assert diff < 1e-12

# %% [markdown]
# More update steps iterate $\xi \leftarrow \mathrm{softmax}(\beta\,\xi K^\top) K$ in the association space
# before the read-out; `update_steps_max=None` with `update_steps_eps` runs to a fixed point. Here (β = 1,
# random patterns) the fixed points are close to single stored patterns, so the weights end up concentrated on
# one or two of them.

# %%
x = rng.standard_normal((1, 16, E))
for steps in (1, 2, 5, None):
    layer = nn.Hopfield(E, scaling=1.0, update_steps_max=steps, update_steps_eps=1e-8 if steps is None else None,
                        rng=np.random.default_rng(3), dtype=np.float64)
    A = layer.get_association_matrix(x)[0, 0]
    print(f"update_steps_max = {str(steps):>4}: mean effective number of stored patterns per state "
          f"{np.mean(1 / (A ** 2).sum(-1)):.2f}")

# %% [markdown]
# ## 2. Static retrieval: restore images, the example that "did not work"
#
# Users of the reference library tried to store images in a `Hopfield` layer and retrieve them from corrupted
# copies — and got garbage or always the same image (its issues #12, #13, #17). Three things go wrong:
#
# 1. **Projections and layer norms.** A default layer projects its inputs with random matrices and normalises
#    them: that is a layer to *train*, not a memory. For retrieval use none of them —
#    `nn.Hopfield.static(scaling=β)` switches them all off, so one forward *is* one update
#    $\xi \leftarrow \mathrm{softmax}(\beta\,\xi Y^\top) Y$, with the images themselves as stored patterns and values.
# 2. **Uncentred pixels.** With pixels in $0 \dots 255$ the score $y_i\cdot\xi$ counts *ink in common*: an image
#    with more ink scores higher against everything, and the brightest stored image wins. Centre the data:
#    $\pm1$ pixels (ink $+1$, background $-1$) make $y_i\cdot\xi = d - 2\,\mathrm{hamming}(y_i, \xi)$, so the
#    closest image wins.
# 3. **β on the scale of the scores.** Here scores are differences of up to 256; β = 1 separates them sharply.
#
# 64 generated glyphs of 16×16 pixels ($d = 256$); probes with 25% of the pixels flipped, or with the bottom half
# unknown (set to 0, so it adds nothing to a score):

# %%
images = glyphs(64, seed=0)  # (64, 16, 16), +1 ink, -1 background
Y = images.reshape(64, -1)
memory = nn.Hopfield.static(scaling=1.0, dtype=np.float64)
print("parameters in the static memory:", memory.num_parameters())
noisy, half = corrupt(images, 0.25, seed=1), mask_half(images, "bottom")
restored = {name: memory((Y, probe.reshape(64, -1), Y)).data for name, probe in (("noisy", noisy), ("half", half))}
for name, out in restored.items():
    ok = np.all(np.sign(out) == Y, axis=1).mean()
    print(f"{name:5s} probes: {ok:.3f} of the 64 glyphs restored exactly (largest pixel error {np.abs(out - Y).max():.2f})")
    assert ok == 1.0 and np.abs(out - Y).max() < 0.1
assert np.allclose(restored["noisy"], hopfield_update(Y, noisy.reshape(64, -1), beta=1.0))  # the same update

raw, raw_probes = (images > 0) * 255.0, (noisy > 0) * 255.0  # the same images as 0 / 255 pixels
raw_out = nn.Hopfield.static(scaling=1.0, dtype=np.float64)((raw.reshape(64, -1), raw_probes.reshape(64, -1),
                                                             raw.reshape(64, -1))).data
raw_ok = np.all((raw_out > 127) == (raw.reshape(64, -1) > 127), axis=1)
print(f"the same noisy probes with 0/255 pixels: {raw_ok.mean():.3f} restored (the glyph with more ink wins)")
assert raw_ok.mean() < 0.7

show = [0, 1, 2, 3, 4, 5, 6, 7]
wrong = int(np.nonzero(~raw_ok)[0][0])
grid = [("stored", images[show]), ("25% flipped", noisy[show]), ("one update", restored["noisy"].reshape(64, 16, 16)[show]),
        ("bottom half unknown", half[show]), ("one update", restored["half"].reshape(64, 16, 16)[show])]
fig, axes = plt.subplots(len(grid) + 1, len(show), figsize=(1.3 * len(show), 1.4 * (len(grid) + 1)))
for r, (title, imgs) in enumerate(grid):
    for c, img in enumerate(imgs):
        axes[r, c].imshow(img, cmap="gray_r", vmin=-1, vmax=1)
        axes[r, c].set_xticks([])
        axes[r, c].set_yticks([])
    axes[r, 0].set_ylabel(title, fontsize=8)
for c, (img, title) in enumerate([(raw_probes[wrong], "0/255 probe"), (raw_out[wrong].reshape(16, 16), "retrieved"),
                                  (raw[wrong], "wanted")] + [(np.zeros((16, 16)), "")] * (len(show) - 3)):
    axes[-1, c].imshow(img, cmap="gray_r")
    axes[-1, c].set_title(title, fontsize=8)
    axes[-1, c].axis("off")
fig.suptitle("static retrieval with nn.Hopfield.static(scaling=1): +-1 pixels (rows 1-5) vs 0/255 pixels (last row)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 3. Multiple-instance learning with `HopfieldPooling`
#
# A **bag** holds 64 random 16-bit patterns ($\pm1$). A bag is positive when one particular pattern, the
# *signature*, is among them — and the model is never told which pattern that is, only the bags' labels.
# `HopfieldPooling` has one trainable state pattern (its query); it attends over the bag's instances (stored
# patterns) and returns their association-weighted combination (Exercise 8.2); a linear read-out classifies.
# To solve the task the query must learn to pick the signature out of the crowd.
#
# **Mean pooling cannot.** Averaging a bag moves it by $1/64$ of the planted pattern: projected on the signature,
# a positive bag's mean has expectation $16/64 = 0.25$ and both classes have spread $\approx 0.5$, so even the best
# read-out of the mean gets about $\Phi(0.25) \approx 0.60$.

# %%
def make_model(kind, seed=0):
    r = np.random.default_rng(seed)
    if kind == "hopfield":
        pool = nn.HopfieldPooling(16, hidden_size=16, output_size=16, rng=r)
        head = nn.Linear(16, 2, rng=r)
        return pool, head, (lambda x: head(pool(x))), list(pool.parameters()) + list(head.parameters())
    mlp = nn.Sequential(nn.Linear(16, 32, rng=r), nn.ReLU(), nn.Linear(32, 2, rng=r))
    return None, mlp, (lambda x: mlp(mta.tensor(x).mean(axis=1))), list(mlp.parameters())


test_bags = mil_bags(1000, seed=99)
models, losses, accs = {}, {}, {}

# %%
# NBVAL_IGNORE_OUTPUT
# (float32 training: the losses' last digits and the progress bar's timings vary across CPUs)
STEPS, BATCH = 200, 32
for kind in ("hopfield", "mean"):
    pool, head, forward, params = make_model(kind)
    opt = optim.Adam(params, lr=0.01)
    losses[kind] = []
    for step in tqdm(range(STEPS), desc=f"{kind} pooling", mininterval=1.0):
        bags = mil_bags(BATCH, seed=1000 + step)
        loss = F.cross_entropy(forward(bags.instances), bags.labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses[kind].append(loss.item())
    with mta.no_grad():
        accs[kind] = (forward(test_bags.instances).data.argmax(-1) == test_bags.labels).mean()
    models[kind] = pool
    print(f"{kind} pooling: test accuracy {accs[kind]:.3f}")

# %%
# NBVAL_IGNORE_OUTPUT
# (accuracies and attention after float32 training: the last digits may vary across CPUs)
A = models["hopfield"].get_association_matrix(test_bags.instances)[:, 0, 0]  # (bags, instances)
pos = np.nonzero(test_bags.labels == 1)[0]
on_signature = A[pos, test_bags.planted[pos]]
print(f"HopfieldPooling: accuracy {accs['hopfield']:.2f}; attention on the planted signature in positive bags: "
      f"{on_signature.mean():.2f} on average (uniform would be {1 / 64:.3f})")
print(f"mean pooling: accuracy {accs['mean']:.2f}")
assert accs["hopfield"] >= 0.95 and on_signature.mean() >= 0.6
assert accs["mean"] <= 0.7

fig, axes = plt.subplots(1, 2, figsize=(13, 3.4), gridspec_kw={"width_ratios": [1, 2]})
viz.curves({"HopfieldPooling": losses["hopfield"], "mean pooling": losses["mean"]}, title="training loss",
           ylabel="cross-entropy", ax=axes[0])
viz.heatmap(A[pos[:6]], ax=axes[1], xlabel="instance in the bag", ylabel="positive bag",
            title="HopfieldPooling's association weights (the signature sits at a different place in each bag)")
axes[1].scatter(test_bags.planted[pos[:6]], np.arange(6), marker="x", color="r", label="signature")
axes[1].legend(loc="upper right")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 4. `HopfieldLayer`: a trained memory
#
# In `HopfieldLayer` the stored patterns (`lookup_weights`) and what they return (`target_weights`) are
# parameters: the input is only the state, and every input looks up the same learned memory — a layer of
# prototypes. A small task: 16 random 16-bit codes, each its own class; inputs are codes with 2 bits flipped.
# A `HopfieldLayer` with 16 stored patterns and a linear read-out learns to recognise them, close to the
# accuracy of looking up the nearest code directly (which knows the codes; the layer has to learn them).

# %%
codes = np.where(np.random.default_rng(7).standard_normal((16, 16)) > 0, 1.0, -1.0).astype(np.float32)


def noisy_codes(n, seed):
    r = np.random.default_rng(seed)
    labels = r.integers(0, 16, size=n)
    x = codes[labels].copy()
    flips = np.argsort(r.random((n, 16)), axis=1)[:, :2]
    np.put_along_axis(x, flips, -np.take_along_axis(x, flips, axis=1), axis=1)
    return x[:, None, :], labels  # (n, 1, 16): one state per input


r = np.random.default_rng(0)
memory_layer = nn.HopfieldLayer(16, output_size=16, quantity=16, rng=r)
readout = nn.Linear(16, 16, rng=r)
opt = optim.Adam(list(memory_layer.parameters()) + list(readout.parameters()), lr=0.03)
for step in range(500):
    x, y = noisy_codes(64, seed=step)
    loss = F.cross_entropy(readout(memory_layer(x)[:, 0]), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
x, y = noisy_codes(1000, seed=10_000)
with mta.no_grad():
    layer_acc = (readout(memory_layer(x)[:, 0]).data.argmax(-1) == y).mean()
nearest = ((x[:, 0] @ codes.T).argmax(1) == y).mean()
assert layer_acc >= 0.9, layer_acc
print("HopfieldLayer recognises at least 0.90 of noisy codes:", bool(layer_acc >= 0.9))
print("association matrix:", memory_layer.get_association_matrix(x).shape, "(inputs, heads, states, stored patterns)")

# %%
# NBVAL_IGNORE_OUTPUT
# (the accuracies of a training run: float32 rounding differs between CPUs and BLAS builds, and one more or
# one fewer input out of 1000 moves the second digit; 0.95 on an AMD Zen 5, 0.96 on an Intel Xeon)
print(f"HopfieldLayer: {layer_acc:.3f} of noisy codes recognised (the nearest code itself: {nearest:.3f})")

# %%
# NBVAL_IGNORE_OUTPUT
# (wall-clock time of this notebook, different on every machine)
print(f"lesson ran in {time.perf_counter() - T0:.1f} s")

# %% [markdown]
# ## Summary
#
# - `nn.Hopfield` with one update and no layer norms is multi-head attention (β = 1/√head_dim); more updates
#   iterate in the association space and sharpen the weights; `association_matrix` shows them.
# - Static retrieval just works with `nn.Hopfield.static(scaling=β)` and **centred** patterns (±1 pixels): all 64
#   glyphs come back from 25% noise or from half an image; with 0/255 pixels the brightest image wins.
# - `HopfieldPooling` learns a query that finds a planted signature in bags of 64 patterns (accuracy ≥ 0.95, most
#   of its attention on the signature); mean pooling stays near 0.6.
# - `HopfieldLayer` stores trainable patterns: a learned memory of prototypes.
#
# Now complete exercises 8.1–8.2 in `exercises/lesson08_hopfield_layers.py` and run
# `pytest tests/exercises/test_lesson08_hopfield_layers.py` (or `python -m minitorch_attn grade --lesson 08`).
