"""Hopfield layers (Ramsauer et al. 2020), after the API of ml-jku/hopfield-layers: `Hopfield`,
`HopfieldPooling` and `HopfieldLayer`, built on `hopfield_association` (functional/hopfield.py); and the
classical binary network of lesson 07, `ClassicalHopfield` (Hopfield 1982).

A Hopfield layer associates *state* patterns R (the queries) with *stored* patterns Y (the keys) and returns a
combination of *pattern projections* V (the values):

    Y, R, V = LN(Y), LN(R), LN(V)                       optional layer norms on the raw inputs
    K, Q, V = Y W_K, R W_Q, V W_V                       per head (a pattern that is "static" is used as is)
    ξ = Q;  repeat (update_steps_max - 1) times:  ξ ← softmax(β ξ Kᵀ) K      the Hopfield update, in the
                                                        association space; stops early once no entry moves by
                                                        more than update_steps_eps (if given)
    out = softmax(β ξ Kᵀ) V  ->  heads merged  ->  W_O   (unless disable_out_projection)

With one update step this is exactly multi-head attention with β as the scale (default 1/√head_dim, the
transformer's choice). Shapes (batch_first): stored (B, N, stored_pattern_size), state (B, S, input_size),
projection (B, N, pattern_projection_size) -> out (B, S, output_size). Calling with one tensor x uses it as
all three, (x, x, x) (self-association). Unbatched (N, features) inputs work too.

Masks follow the reference library (and torch's MultiheadAttention): **True = not allowed**.
`stored_pattern_padding_mask` (B, N) marks padding among the stored patterns; `association_mask` (S, N)
or (B, S, N) forbids pairs.

**Static retrieval** (store images, restore a corrupted one), the example the reference library's users could
not get working (its issues #12, #13, #17): use `Hopfield.static(scaling=β)` — no projections, no layer
norms, no output projection, so one forward IS one update ξ ← softmax(β ξ Yᵀ) Y — and give it CENTRED
patterns (±1 pixels, or subtract the mean): with raw 0...255 pixels every dot product favours the image
with the most ink, and the brightest stored image wins whatever the query.
"""

from __future__ import annotations

import math

import numpy as np

from ..autograd.tensor import no_grad, to_tensor
from ..functional.hopfield import hopfield_association
from ..functional.multihead import merge_heads, split_heads
from ..random import default_rng
from ..shapes import shape_of
from .layers import LayerNorm, Linear
from .module import Module, Parameter


class Hopfield(Module):
    """A Hopfield association layer (see the module docstring), with the reference library's arguments.

    input_size                 features of the state patterns R (and the default for the other two)
    hidden_size                features per head in the association space (default input_size // num_heads)
    output_size                features of the output (default input_size)
    pattern_size               features per head of the projected values (default hidden_size)
    stored_pattern_size, pattern_projection_size   raw features of Y and V (default input_size)
    num_heads                  heads, each with its own projections of hidden_size / pattern_size features
    scaling                    β (default 1/√hidden_size: one step is then scaled dot-product attention)
    update_steps_max           how many associations in all (1 = one update = attention); None = until
                               convergence (then update_steps_eps is required; at most 10,000)
    update_steps_eps           stop updating once no entry of the state moves by more than this
    normalize_*_pattern(_affine), normalize_pattern_projection(_affine)   layer norms on the raw inputs
    *_as_static                use that input as it is, without a projection (then num_heads must be 1)
    disable_out_projection     return the merged heads without W_O
    input_bias                 biases in the input projections; dropout: on the final association weights

    After a forward, `association_matrix` holds the weights of its last association, (B, H, S, N), as a NumPy
    array; `get_association_matrix(input)` computes them for an input without building a graph.
    """

    def __init__(self, input_size: int | None = None, hidden_size: int | None = None,
                 output_size: int | None = None, pattern_size: int | None = None, num_heads: int = 1,
                 scaling: float | None = None, update_steps_max: int | None = 1,
                 update_steps_eps: float | None = None,
                 normalize_stored_pattern: bool = True, normalize_stored_pattern_affine: bool = True,
                 normalize_state_pattern: bool = True, normalize_state_pattern_affine: bool = True,
                 normalize_pattern_projection: bool = True, normalize_pattern_projection_affine: bool = True,
                 stored_pattern_as_static: bool = False, state_pattern_as_static: bool = False,
                 pattern_projection_as_static: bool = False, stored_pattern_size: int | None = None,
                 pattern_projection_size: int | None = None, disable_out_projection: bool = False,
                 input_bias: bool = True, dropout: float = 0.0, batch_first: bool = True,
                 rng: np.random.Generator | None = None, dtype=np.float32):
        super().__init__()
        if num_heads < 1:
            raise ValueError(f"Hopfield: num_heads must be positive; got {num_heads}")
        if update_steps_max is None and update_steps_eps is None:
            raise ValueError("Hopfield: update_steps_max=None (update until convergence) needs update_steps_eps")
        if update_steps_max is not None and update_steps_max < 1:
            raise ValueError(f"Hopfield: update_steps_max counts associations and must be at least 1; got "
                             f"{update_steps_max}")
        if scaling is not None and scaling <= 0:
            raise ValueError(f"Hopfield: scaling (beta) must be positive; got {scaling}")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"Hopfield: dropout must be in [0, 1]; got {dropout}")
        static = stored_pattern_as_static or state_pattern_as_static or pattern_projection_as_static
        if static and num_heads != 1:
            raise ValueError(f"Hopfield: a static (unprojected) pattern needs num_heads=1; got num_heads={num_heads}")
        all_static = stored_pattern_as_static and state_pattern_as_static and pattern_projection_as_static
        if input_size is None and not all_static:
            raise ValueError("Hopfield: input_size is required unless the stored, state and projection patterns "
                             "are all static (Hopfield.static(...))")
        rng = rng if rng is not None else default_rng()
        stored_size = stored_pattern_size if stored_pattern_size is not None else input_size
        proj_size = pattern_projection_size if pattern_projection_size is not None else stored_size
        if hidden_size is None and input_size is not None:
            if state_pattern_as_static or stored_pattern_as_static:
                hidden_size = input_size if state_pattern_as_static else stored_size
            elif input_size % num_heads:
                raise ValueError(f"Hopfield: input_size={input_size} is not divisible by num_heads={num_heads}; "
                                 "give hidden_size (features per head) explicitly")
            else:
                hidden_size = input_size // num_heads
        if pattern_size is None:
            pattern_size = proj_size if pattern_projection_as_static else hidden_size
        for name, size, is_static in (("state", input_size, state_pattern_as_static),
                                      ("stored", stored_size, stored_pattern_as_static)):
            if is_static and size is not None and hidden_size is not None and size != hidden_size:
                raise ValueError(f"Hopfield: a static {name} pattern of {size} features must match the association "
                                 f"space's hidden_size={hidden_size}")
        if pattern_projection_as_static and proj_size is not None and pattern_size != proj_size:
            raise ValueError(f"Hopfield: a static pattern projection of {proj_size} features needs "
                             f"pattern_size={proj_size}; got {pattern_size}")
        merged = None if pattern_size is None else num_heads * pattern_size
        if disable_out_projection and output_size is not None and output_size != merged:
            raise ValueError(f"Hopfield: with disable_out_projection the output has num_heads * pattern_size = "
                             f"{merged} features; got output_size={output_size}")
        if output_size is None:
            output_size = merged if disable_out_projection else input_size

        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size
        self.pattern_size, self.num_heads = pattern_size, num_heads
        self.stored_pattern_size, self.pattern_projection_size = stored_size, proj_size
        self.scaling = scaling
        self.update_steps_max, self.update_steps_eps = update_steps_max, update_steps_eps
        self.static = (stored_pattern_as_static, state_pattern_as_static, pattern_projection_as_static)
        self.disable_out_projection, self.batch_first, self.dropout = disable_out_projection, batch_first, dropout
        self.rng = rng
        self.association_matrix: np.ndarray | None = None

        def norm(flag, affine, size, what):
            if not flag:
                return None
            if size is None:
                raise ValueError(f"Hopfield: normalizing the {what} patterns needs their size")
            return LayerNorm(size, elementwise_affine=affine, dtype=dtype)

        self.norm_stored_pattern = norm(normalize_stored_pattern, normalize_stored_pattern_affine, stored_size,
                                        "stored")
        self.norm_state_pattern = norm(normalize_state_pattern, normalize_state_pattern_affine, input_size, "state")
        self.norm_pattern_projection = norm(normalize_pattern_projection, normalize_pattern_projection_affine,
                                            proj_size, "projection")
        H = num_heads
        self.q_proj = None if state_pattern_as_static else Linear(input_size, H * hidden_size, bias=input_bias,
                                                                   rng=rng, dtype=dtype)
        self.k_proj = None if stored_pattern_as_static else Linear(stored_size, H * hidden_size, bias=input_bias,
                                                                    rng=rng, dtype=dtype)
        self.v_proj = None if pattern_projection_as_static else Linear(proj_size, H * pattern_size,
                                                                        bias=input_bias, rng=rng, dtype=dtype)
        self.out_proj = None if disable_out_projection else Linear(H * pattern_size, output_size, rng=rng,
                                                                    dtype=dtype)
        self._dtype = np.dtype(dtype)

    @classmethod
    def static(cls, scaling: float, update_steps_max: int | None = 1, update_steps_eps: float | None = None,
               dtype=np.float32) -> Hopfield:
        """A parameter-free Hopfield network for retrieval: forward((Y, ξ, Y)) = ξ after `update_steps_max`
        updates ξ ← softmax(β ξ Yᵀ) Y (β = `scaling`). Store centred patterns (e.g. ±1 pixels)."""
        return cls(scaling=scaling, update_steps_max=update_steps_max, update_steps_eps=update_steps_eps,
                   stored_pattern_as_static=True, state_pattern_as_static=True, pattern_projection_as_static=True,
                   normalize_stored_pattern=False, normalize_stored_pattern_affine=False,
                   normalize_state_pattern=False, normalize_state_pattern_affine=False,
                   normalize_pattern_projection=False, normalize_pattern_projection_affine=False,
                   disable_out_projection=True, dtype=dtype)

    # ---- helpers --------------------------------------------------------------------------------------
    def _unpack(self, input):
        if isinstance(input, (tuple, list)):
            if len(input) != 3:
                raise ValueError(f"Hopfield: pass one tensor (used as stored, state and projection patterns) or a "
                                 f"tuple (stored, state, projection); got a {type(input).__name__} of {len(input)}")
            stored, state, proj = input
        else:
            stored = state = proj = input
        dtype = self._dtype
        return tuple(to_tensor(x, dtype) for x in (stored, state, proj))

    def _check(self, stored, state, proj):
        shapes = f"stored {shape_of(stored)}, state {shape_of(state)}, projection {shape_of(proj)}"
        if not (stored.ndim == state.ndim == proj.ndim) or stored.ndim not in (2, 3):
            raise ValueError(f"Hopfield: the stored, state and projection patterns must all be (B, N, features) "
                             f"(or unbatched (N, features)); got {shapes}")
        if stored.shape[:-1] != proj.shape[:-1]:
            raise ValueError(f"Hopfield: stored patterns and pattern projections must match in batch and count; "
                             f"got {shapes}")
        if stored.shape[0] != state.shape[0]:
            raise ValueError(f"Hopfield: the stored and state patterns have different batch sizes; got {shapes}")
        for name, t, want in (("stored", stored, self.stored_pattern_size), ("state", state, self.input_size),
                              ("projection", proj, self.pattern_projection_size)):
            if want is not None and t.shape[-1] != want:
                raise ValueError(f"Hopfield: the {name} patterns have {t.shape[-1]} features ({shapes}); this layer "
                                 f"expects {want}")
        if self.static[0] and self.static[1] and stored.shape[-1] != state.shape[-1]:
            raise ValueError(f"Hopfield: static stored and state patterns must have the same size; got {shapes}")

    def _mask(self, stored_pattern_padding_mask, association_mask, B, S, N):
        """A boolean SDPA mask (True = may attend) of shape (B or 1, 1, S or 1, N), or None."""
        allowed = None
        if association_mask is not None:
            am = np.asarray(getattr(association_mask, "data", association_mask))
            if am.dtype != bool:
                raise TypeError(f"Hopfield: association_mask must be boolean (True = not allowed); got {am.dtype}")
            if am.shape == (S, N):
                am = am[None]
            if am.shape != (B, S, N):
                raise ValueError(f"Hopfield: association_mask must have shape (S, N) = {(S, N)} or (B, S, N) = "
                                 f"{(B, S, N)}; got {am.shape}")
            allowed = ~am[:, None]
        if stored_pattern_padding_mask is not None:
            pm = np.asarray(getattr(stored_pattern_padding_mask, "data", stored_pattern_padding_mask))
            if pm.dtype != bool or pm.shape != (B, N):
                raise ValueError(f"Hopfield: stored_pattern_padding_mask must be boolean of shape (B, N) = {(B, N)} "
                                 f"(True = padding); got {pm.dtype} {pm.shape}")
            keep = ~pm[:, None, None, :]
            allowed = keep if allowed is None else allowed & keep
        return allowed

    def _project(self, x, norm, proj):
        if norm is not None:
            x = norm(x)
        if proj is None:
            return x[:, None]  # (B, 1, N, features): one head, unprojected
        return split_heads(proj(x), self.num_heads)

    # ---- forward --------------------------------------------------------------------------------------
    def forward(self, input, stored_pattern_padding_mask=None, association_mask=None,
                return_association: bool = False):
        """out (B, S, output_size); with `return_association=True`, (out, weights): the weights (B, H, S, N) of
        the last association as a Tensor in the graph (differentiable), as MultiheadAttention returns them."""
        stored, state, proj = self._unpack(input)
        batched = stored.ndim == 3
        if batched and not self.batch_first:
            stored, state, proj = (t.transpose(0, 1) for t in (stored, state, proj))
        if not batched:
            stored, state, proj = (t.reshape(1, *t.shape) for t in (stored, state, proj))
            if stored_pattern_padding_mask is not None:
                stored_pattern_padding_mask = np.asarray(getattr(stored_pattern_padding_mask, "data",
                                                                 stored_pattern_padding_mask))[None]
        self._check(stored, state, proj)
        B, N, S = stored.shape[0], stored.shape[1], state.shape[1]
        k = self._project(stored, self.norm_stored_pattern, self.k_proj)  # (B, H, N, c)
        q = self._project(state, self.norm_state_pattern, self.q_proj)  # (B, H, S, c)
        v = self._project(proj, self.norm_pattern_projection, self.v_proj)  # (B, H, N, dv)
        beta = self.scaling if self.scaling is not None else 1.0 / math.sqrt(q.shape[-1])
        steps = self.update_steps_max if self.update_steps_max is not None else 10_000
        mask = self._mask(stored_pattern_padding_mask, association_mask, B, S, N)
        p = self.dropout if self.training else 0.0
        out, weights = hopfield_association(q, k, v, beta, steps=steps, tol=self.update_steps_eps, attn_mask=mask,
                                            dropout_p=p, rng=self.rng)
        self.association_matrix = weights.data
        out = merge_heads(out)  # (B, S, H * pattern_size)
        if self.out_proj is not None:
            out = self.out_proj(out)
        if not batched:
            out = out.reshape(out.shape[1:])
            weights = weights.reshape(weights.shape[1:])
            self.association_matrix = self.association_matrix[0]
        elif not self.batch_first:
            out = out.transpose(0, 1)
        return (out, weights) if return_association else out

    def get_association_matrix(self, input, stored_pattern_padding_mask=None, association_mask=None) -> np.ndarray:
        """The association weights (B, H, S, N) of the last update for `input`, without recording a graph."""
        with no_grad():
            self.forward(input, stored_pattern_padding_mask, association_mask)
        return self.association_matrix

    def extra_repr(self) -> str:
        beta = f"{self.scaling:g}" if self.scaling is not None else "1/sqrt(hidden_size)"
        static = [n for n, s in zip(("stored", "state", "projection"), self.static) if s]
        return (f"input_size={self.input_size}, hidden_size={self.hidden_size}, output_size={self.output_size}, "
                f"num_heads={self.num_heads}, scaling={beta}, update_steps_max={self.update_steps_max}"
                + (f", static={static}" if static else ""))


class HopfieldPooling(Module):
    """Pool a set into `quantity` vectors: trainable state patterns (`pooling_weights`, (quantity, input_size))
    query the input, which serves as stored patterns and pattern projections.

    input (B, N, input_size) -> (B, quantity * output_size) (the quantity pooled vectors, flattened, as in the
    reference library). `stored_pattern_padding_mask` (B, N), True = padding. Other keyword arguments go to
    the inner `Hopfield` (`self.hopfield`), whose `association_matrix` is (B, H, quantity, N) after a call.
    """

    def __init__(self, input_size: int, hidden_size: int | None = None, output_size: int | None = None,
                 pattern_size: int | None = None, num_heads: int = 1, scaling: float | None = None,
                 quantity: int = 1, trainable: bool = True, rng: np.random.Generator | None = None,
                 dtype=np.float32, **hopfield_kwargs):
        super().__init__()
        if quantity < 1:
            raise ValueError(f"HopfieldPooling: quantity must be at least 1; got {quantity}")
        rng = rng if rng is not None else default_rng()
        self.quantity = quantity
        self.hopfield = Hopfield(input_size, hidden_size, output_size, pattern_size, num_heads, scaling, rng=rng,
                                 dtype=dtype, **hopfield_kwargs)
        bound = 1.0 / math.sqrt(input_size)
        self.pooling_weights = Parameter(rng.uniform(-bound, bound, (1, quantity, input_size)).astype(dtype),
                                         requires_grad=trainable)
        self.output_size = self.hopfield.output_size

    def forward(self, input, stored_pattern_padding_mask=None):
        """input (B, N, input_size) -> (B, quantity * output_size) (Exercise 8.2).

        The state patterns are `pooling_weights` (1, quantity, input_size), repeated for each of the B bags;
        the input is both the stored patterns and the pattern projections: self.hopfield((input, state, input),
        stored_pattern_padding_mask=...) gives (B, quantity, output_size); flatten the last two axes."""
        x = to_tensor(input, self.pooling_weights.dtype)
        if x.ndim != 3:
            raise ValueError(f"HopfieldPooling: input must be (B, N, input_size); got {shape_of(x)}")
        ### BEGIN SOLUTION
        B = x.shape[0]
        state = self.pooling_weights * np.ones((B, 1, 1), dtype=x.dtype)  # (B, quantity, input_size)
        out = self.hopfield((x, state, x), stored_pattern_padding_mask=stored_pattern_padding_mask)
        out = out.reshape(B, self.quantity * out.shape[-1])
        ### END SOLUTION
        return out

    def get_association_matrix(self, input, stored_pattern_padding_mask=None) -> np.ndarray:
        """(B, H, quantity, N): how much each pooling query attends to each instance."""
        with no_grad():
            self.forward(input, stored_pattern_padding_mask)
        return self.hopfield.association_matrix


class HopfieldLayer(Module):
    """A lookup into `quantity` trainable stored patterns (`lookup_weights`) with trainable targets
    (`target_weights`, the pattern projections; with `lookup_targets_as_trainable=False` the lookup weights are
    their own targets): the stored patterns do not depend on the input, which is only the state.

    input (B, S, input_size) -> (B, S, output_size). `association_mask` (S, quantity), True = not allowed.
    """

    def __init__(self, input_size: int, hidden_size: int | None = None, output_size: int | None = None,
                 pattern_size: int | None = None, num_heads: int = 1, scaling: float | None = None,
                 quantity: int = 1, lookup_targets_as_trainable: bool = True,
                 rng: np.random.Generator | None = None, dtype=np.float32, **hopfield_kwargs):
        super().__init__()
        if quantity < 1:
            raise ValueError(f"HopfieldLayer: quantity must be at least 1; got {quantity}")
        rng = rng if rng is not None else default_rng()
        self.quantity = quantity
        self.hopfield = Hopfield(input_size, hidden_size, output_size, pattern_size, num_heads, scaling, rng=rng,
                                 dtype=dtype, **hopfield_kwargs)
        bound = 1.0 / math.sqrt(input_size)
        self.lookup_weights = Parameter(rng.uniform(-bound, bound, (1, quantity, input_size)).astype(dtype))
        self.target_weights = (Parameter(rng.uniform(-bound, bound, (1, quantity, input_size)).astype(dtype))
                               if lookup_targets_as_trainable else None)
        self.output_size = self.hopfield.output_size

    def forward(self, input, association_mask=None):
        x = to_tensor(input, self.lookup_weights.dtype)
        if x.ndim != 3:
            raise ValueError(f"HopfieldLayer: input must be (B, S, input_size); got {shape_of(x)}")
        ones = np.ones((x.shape[0], 1, 1), dtype=x.dtype)
        stored = self.lookup_weights * ones
        targets = stored if self.target_weights is None else self.target_weights * ones
        return self.hopfield((stored, x, targets), association_mask=association_mask)

    def get_association_matrix(self, input, association_mask=None) -> np.ndarray:
        """(B, H, S, quantity): how much each input attends to each stored pattern."""
        with no_grad():
            self.forward(input, association_mask)
        return self.hopfield.association_matrix


class ClassicalHopfield:
    """The classical binary Hopfield network (Hopfield 1982) with the Hebbian rule (Exercise 7.3).

    store: W = (1/d) Σ_i x_i x_iᵀ with a zero diagonal, for ±1 patterns x_i (rows of X, shape (N, d));
    update (synchronous): ξ ← sign(W ξ) for every state at once, keeping a unit's value where W ξ is exactly 0.
    Its capacity is about 0.14·d patterns (fewer when the probes are noisy); beyond it, retrieval fails.
    """

    def __init__(self, patterns):
        X = np.asarray(getattr(patterns, "data", patterns), dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"ClassicalHopfield: patterns need shape (N, d) (rows are patterns); got {X.shape}")
        if not np.all(np.abs(X) == 1):
            raise ValueError(f"ClassicalHopfield stores ±1 patterns; X of shape {X.shape} has other values")
        self.patterns = X
        ### BEGIN SOLUTION
        d = X.shape[1]
        W = X.T @ X / d
        np.fill_diagonal(W, 0.0)
        ### END SOLUTION
        self.W = W

    def update(self, xi, steps: int = 1) -> np.ndarray:
        """`steps` synchronous sign updates of ξ (d,) or (S, d) (rows are states); returns ±1 states."""
        xi = np.asarray(getattr(xi, "data", xi), dtype=np.float64)
        if xi.shape[-1] != self.W.shape[0]:
            raise ValueError(f"ClassicalHopfield.update: states of shape {xi.shape} must end in d = "
                             f"{self.W.shape[0]}, the size of the stored patterns {self.patterns.shape}")
        ### BEGIN SOLUTION
        for _ in range(steps):
            h = xi @ self.W  # W is symmetric: row states times W = (W ξ)ᵀ
            xi = np.where(h > 0, 1.0, np.where(h < 0, -1.0, xi))
        ### END SOLUTION
        return xi
