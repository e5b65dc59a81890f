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
# # Lesson 01 — An autograd engine on NumPy
#
# Everything in this course — Bahdanau's alignments, multi-head attention, Hopfield layers, a
# Shakespeare-writing transformer, flash attention's backward pass — is trained by gradient descent,
# and the gradients come from the engine this lesson builds: **reverse-mode automatic
# differentiation** over NumPy arrays.
#
# The idea in one paragraph. A `Tensor` holds an array (`.data`). Every operation on tensors records
# a `Function` — the op — together with its inputs. The result is a graph. `loss.backward()` walks the
# graph from the loss back to the leaves, in **reverse topological order**, and at each op applies the
# chain rule: given $\partial L / \partial \text{out}$, the op's `backward` returns
# $\partial L / \partial \text{input}$ for each input. Leaves accumulate what arrives in `.grad`.
#
# Exercises (in `exercises/lesson01_autograd.py`, graded by `pytest tests/exercises/test_lesson01_autograd.py`):
#
# | exercise | what | points |
# |---|---|---|
# | 1.1 | `unbroadcast`: sum a gradient back to an input's shape | 2 |
# | 1.2 | `Mul` forward and backward | 1 |
# | 1.3 | `Tanh` forward and backward | 1 |
# | 1.4 | `MatMul` forward and backward, with batch broadcasting | 3 |
# | 1.5 | `topological_order` of the graph | 2 |
# | 1.6 | `SGD.step` with momentum | 2 |

# %%
import matplotlib.pyplot as plt
import numpy as np

import minitorch_attn as mta
from minitorch_attn import functional as F
from minitorch_attn import nn, optim
from minitorch_attn.autograd.ops import Div
from minitorch_attn.data import spirals
from minitorch_attn.viz import curves, decision_boundary

# mta.course.use("exercises")   # run the lesson on your own code
np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## 1. A graph, by hand and by machine
#
# Take $L = \tanh(a \cdot b + c)$ with scalars. By the chain rule, with $u = ab + c$:
# $\partial L/\partial a = (1 - \tanh^2 u)\, b$, $\partial L/\partial b = (1 - \tanh^2 u)\, a$,
# $\partial L/\partial c = 1 - \tanh^2 u$.

# %%
a = mta.tensor(2.0, requires_grad=True)
b = mta.tensor(-0.5, requires_grad=True)
c = mta.tensor(0.3, requires_grad=True)
L = (a * b + c).tanh()
L.backward()

u = 2.0 * -0.5 + 0.3
local = 1 - np.tanh(u) ** 2
print(f"engine : dL/da = {a.grad:.6f}, dL/db = {b.grad:.6f}, dL/dc = {c.grad:.6f}")
print(f"by hand: dL/da = {local * -0.5:.6f}, dL/db = {local * 2.0:.6f}, dL/dc = {local:.6f}")

# %% [markdown]
# Every op is a `Function` with its `backward` right beside its `forward`. Here is `Div`: forward saves
# both inputs because each one's gradient needs the other, and backward skips the work for an input
# that does not need a gradient. `Mul` (Exercise 1.2) has the same shape, with a simpler rule.

# %%
import inspect

print(inspect.getsource(Div))

# %% [markdown]
# ## 2. The order of the walk
#
# A tensor's gradient is complete only when every op that used it has sent its share back. Visiting
# tensors in **reverse topological order** (every tensor before the tensors it was made from)
# guarantees that. Exercise 1.5 builds this order with a depth-first search. When a value is used
# twice — `x` below — the two contributions **add up**:

# %%
x = mta.tensor(3.0, requires_grad=True)
y = x * x + x  # dy/dx = 2x + 1 = 7
order = mta.autograd.topological_order(y)
print("graph, parents first:", [f"{t.data.item():g}" for t in order])
y.backward()
print("dy/dx =", x.grad)

# %% [markdown]
# ## 3. Broadcasting runs backwards as a sum
#
# NumPy broadcasting silently copies an array along new or size-1 axes. Adding a bias of shape `(3,)`
# to a batch of shape `(4, 3)` uses each bias entry four times, so its gradient is the **sum** of the
# four row gradients. `unbroadcast` (Exercise 1.1) undoes broadcasting for every op at once: each
# `backward` may return a gradient in the broadcast shape, and the engine sums it down.

# %%
batch = mta.tensor(np.arange(12.0).reshape(4, 3), requires_grad=True)
bias = mta.tensor(np.zeros(3), requires_grad=True)
(batch + bias).sum().backward()
print("bias.grad  =", bias.grad, " (each entry used 4 times)")
print("unbroadcast(ones(4, 2, 3) -> (2, 1)):\n", mta.autograd.unbroadcast(np.ones((4, 2, 3)), (2, 1)))

# %% [markdown]
# ## 4. Trust, but verify: gradcheck
#
# A backward rule can be wrong in ways no error message reveals. `mta.gradcheck` compares it with
# **central finite differences**, $\frac{f(x + \epsilon) - f(x - \epsilon)}{2\epsilon}$, coordinate by
# coordinate. It insists on float64: the truncation error of central differences is $O(\epsilon^2)$ but
# the round-off error is $O(\text{machine eps}/\epsilon)$, and in float32 the two cannot both be small.

# %%
# NBVAL_IGNORE_OUTPUT
# (the output is ignored by the notebook tests: float32 round-off differs between CPUs)
rng = np.random.default_rng(0)


def f(x):
    return (x * x).tanh().sum(axis=0)


for dtype, eps in [(np.float64, 1e-6), (np.float32, 1e-6), (np.float32, 1e-3)]:
    x0 = rng.standard_normal((3, 4)).astype(dtype)
    xt = mta.tensor(x0, requires_grad=True)
    f(xt).sum().backward()
    numeric = np.zeros_like(x0)
    for i in np.ndindex(x0.shape):
        xp, xm = x0.copy(), x0.copy()
        xp[i] += eps
        xm[i] -= eps
        numeric[i] = (f(mta.tensor(xp)).sum().item() - f(mta.tensor(xm)).sum().item()) / (2 * eps)
    print(f"{np.dtype(dtype).name:8} eps={eps:g}: max |backward - finite difference| = {np.abs(xt.grad - numeric).max():.1e}")

print("gradcheck in float64:", mta.gradcheck(f, [mta.tensor(rng.standard_normal((3, 4)), requires_grad=True)]))

# %% [markdown]
# ## 5. Matmul backward: shapes tell you the formula
#
# For $C = AB$ with $A: (n, k)$ and $B: (k, m)$, the incoming gradient $G = \partial L / \partial C$
# has $C$'s shape $(n, m)$. The only products of $G$ with $A$ or $B$ that have the right shapes are
# $\partial L/\partial A = G B^\top$ $(n, k)$ and $\partial L/\partial B = A^\top G$ $(k, m)$.
# With batches (`(..., n, k) @ (..., k, m)`) the same holds for the last two axes, and a matrix shared
# across the batch gets the sum over the batch — unbroadcast again (Exercise 1.4).

# %%
A = mta.tensor(rng.standard_normal((5, 2, 3)), requires_grad=True)  # a batch of 5 matrices
W = mta.tensor(rng.standard_normal((3, 4)), requires_grad=True)  # one matrix shared by the batch
print("gradcheck batched A @ W:", mta.gradcheck(lambda A, W: A @ W, [A, W]))
(A @ W).sum().backward()
print("W.grad has W's shape:", W.grad.shape)

# %% [markdown]
# ## 6. Train a tiny MLP
#
# Two interleaved spirals cannot be separated by a line. A two-layer MLP with `tanh` can. We train it
# with SGD with momentum (Exercise 1.6): the velocity $v \leftarrow \mu v + g$ and step
# $\theta \leftarrow \theta - \eta v$ smooth the noisy gradient.

# %%
# NBVAL_IGNORE_OUTPUT
# (output ignored by the notebook tests: a float32 loss differs in its last digits between CPUs;
#  the accuracy is asserted instead)
X, y = spirals(n_per_class=150, noise=0.15, seed=0)
mta.manual_seed(0)
model = nn.Sequential(nn.Linear(2, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 2))
opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
data_rng = np.random.default_rng(1)
losses = []
for _ in range(3000):
    idx = data_rng.choice(len(X), size=64, replace=False)
    loss = F.cross_entropy(model(mta.tensor(X[idx])), y[idx])
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())


def predict(points):
    with mta.no_grad():
        return model(mta.tensor(points)).data.argmax(axis=1)


accuracy = (predict(X) == y).mean()
print(f"final loss {np.mean(losses[-100:]):.3f}, training accuracy {accuracy:.3f}")
assert accuracy >= 0.95, "the MLP should separate the spirals"

fig, axes = plt.subplots(1, 2, figsize=(10, 4))
curves({"loss": losses}, title="cross-entropy during training", ax=axes[0], logy=True)
decision_boundary(predict, X, y, title=f"decision regions (accuracy {accuracy:.2f})", ax=axes[1])
plt.show()

# %% [markdown]
# ## Summary
#
# - A `Tensor` records the `Function` that made it; `backward()` visits the graph in reverse
#   topological order and each op turns $\partial L/\partial\text{out}$ into $\partial L/\partial\text{in}$.
# - Gradients of values used more than once add up; broadcasting in the forward pass becomes a sum in
#   the backward pass (`unbroadcast`).
# - Check every backward with float64 central differences (`gradcheck`).
# - The same few pieces — matmul, tanh, cross-entropy, SGD — already train a classifier.
#
# Now complete exercises 1.1–1.6 in `exercises/lesson01_autograd.py` and run
# `pytest tests/exercises/test_lesson01_autograd.py` (or `python -m minitorch_attn grade --lesson 01`).
