"""The catalog of graded exercises: which library definition each one is, its lesson, points and hint.

An exercise is a top-level function or class of the library whose body holds one or more blocks between
the lines `### BEGIN SOLUTION` and `### END SOLUTION`. `exercises/` and `solutions/` are generated from
those definitions (`python -m minitorch_attn course generate`); the graded tests in `tests/exercises/`
carry `@pytest.mark.exercise(id, points=...)`, and each exercise's test points add up to `points` here.

`hint` is what a stub's `NotImplementedError` says; `part_hints` gives a more specific hint for the
block inside a given method (keyed by the method's name, e.g. "forward" / "backward").

A CUDA C exercise (lesson 11) sets `file`: the definition is the function `name` of that .cu file, in the
folder of the package `module`, and its blocks lie between `// BEGIN SOLUTION` / `// END SOLUTION` lines
(see source.py). With several blocks in one function, `part_hints` must name them, in order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Exercise:
    id: str  # "1.2": lesson number, then the exercise's number in that lesson
    lesson: str  # "01_autograd": the lesson id; its files are exercises/lesson01_autograd.py, ...
    title: str
    points: float
    module: str  # the library module that defines it, e.g. "minitorch_attn.autograd.ops"
    name: str  # the top-level function or class in that module, e.g. "Mul"
    hint: str
    part_hints: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)
    file: str | None = None  # CUDA C: the .cu file (in the folder of package `module`) defining `name`

    @property
    def language(self) -> str:
        """"cuda" for an exercise written in CUDA C (a .cu definition), else "python"."""
        return "cuda" if self.file else "python"

    @property
    def stem(self) -> str:
        """The lesson's file stem: exercises/<stem>.py, solutions/<stem>.py."""
        return lesson_stem(self.lesson)

    def hint_for(self, part: str) -> str:
        """The hint for the block inside method/function `part` (falls back to `hint`)."""
        return self.part_hints.get(part, self.hint)


LESSONS: dict[str, str] = {
    "01_autograd": "An autograd engine on NumPy",
    "02_softmax": "Softmax, temperature, log-sum-exp, the online normaliser",
    "03_bahdanau": "Additive attention (Bahdanau) on a GRU encoder-decoder",
    "04_luong": "Luong attention: dot, general, concat, local-p",
    "05_scaled_dot_product": "Scaled dot-product attention, why 1/sqrt(d), masks",
    "06_multihead": "Multi-head attention and positional encodings",
    "07_hopfield": "Modern Hopfield networks: update rule, energy, retrieval, capacity",
    "08_hopfield_layers": "Hopfield layers: Hopfield, HopfieldPooling, HopfieldLayer",
    "09_transformer": "The transformer, and a character-level language model on a CPU",
    "10_flash_cpu": "Flash attention on the CPU: tiled online softmax in NumPy and Numba",
    "11_flash_cuda": "Flash attention in CUDA C: from the naive port to the tiled kernel",
    "12_softmax_limits": "Softmax is not enough: how sharp attention can be, and adaptive temperature",
    "13_sparse_attention": "Sparse attention: sparsemax and α-entmax",
    "14_linear_attention": "Attention without softmax: linear, Galerkin and Fourier attention; μP's 1/d",
    "15_graphs_and_sets": "Attention over graphs and sets: graph attention networks, attentive neural processes",
    "16_long_context": "Long-context evaluation, and the anatomy of attention",
    "17_pretrained_encoder": "A real pretrained transformer on your engine: all-MiniLM-L6-v2",
}


def lesson_stem(lesson: str) -> str:
    return f"lesson{lesson}"


EXERCISES: list[Exercise] = [
    # ---- lesson 01: autograd --------------------------------------------------------------------------
    Exercise(
        "1.1", "01_autograd", "unbroadcast: sum a gradient back to an input's shape", 2,
        "minitorch_attn.autograd.function", "unbroadcast",
        hint="sum grad over its extra leading axes, then (with keepdims=True) over every axis where "
        "`shape` has size 1 but grad does not; the result must have exactly `shape`",
    ),
    Exercise(
        "1.2", "01_autograd", "Mul: forward and backward", 1,
        "minitorch_attn.autograd.ops", "Mul",
        hint="out = a * b; d(a*b)/da = b and d(a*b)/db = a",
        part_hints={
            "forward": "save both inputs with ctx.save(a, b) (backward needs them), then return a * b",
            "backward": "a, b = ctx.saved; return (grad * b, grad * a) -- one gradient per input, in the "
            "broadcast shape is fine (Function.apply un-broadcasts)",
        },
    ),
    Exercise(
        "1.3", "01_autograd", "Tanh: forward and backward", 1,
        "minitorch_attn.autograd.ops", "Tanh",
        hint="out = np.tanh(a); d tanh(a)/da = 1 - tanh(a)**2",
        part_hints={
            "forward": "compute out = np.tanh(a) and save the OUTPUT (the derivative is 1 - out**2)",
            "backward": "(out,) = ctx.saved; return grad * (1 - out * out)",
        },
    ),
    Exercise(
        "1.4", "01_autograd", "MatMul: forward and backward, with batch broadcasting", 3,
        "minitorch_attn.autograd.ops", "MatMul",
        hint="out = a @ b; dA = grad @ B^T, dB = A^T @ grad, transposing only the last two axes",
        part_hints={
            "forward": "check a.shape[-1] == b.shape[-2] (raise ValueError naming both shapes), "
            "save a and b, return a @ b",
            "backward": "dA = grad @ np.swapaxes(b, -1, -2), dB = np.swapaxes(a, -1, -2) @ grad "
            "(not .T: on 3-D arrays .T reverses every axis)",
        },
    ),
    Exercise(
        "1.5", "01_autograd", "topological_order: every tensor after its parents", 2,
        "minitorch_attn.autograd.tensor", "topological_order",
        hint="depth-first search with an explicit stack of (tensor, parents_done) pairs: push (t, True) "
        "then each unseen parent in t._node.parents; append t when popped with parents_done; remember "
        "visited ids so shared subgraphs are listed once; no recursion (graphs can be 10,000 deep)",
    ),
    Exercise(
        "1.6", "01_autograd", "SGD.step: momentum, Nesterov and weight decay, as torch", 2,
        "minitorch_attn.optim", "SGD",
        hint="under no_grad(), for each (i, p) with p.grad not None: g = p.grad (+ weight_decay * p.data); "
        "with momentum, buf = g.copy() on the first step else momentum * buf + g, kept in "
        "self.state[i]['momentum_buffer']; g = g + momentum * buf if nesterov else buf; "
        "then p.data -= lr * g (in place)",
    ),
    # ---- lesson 02: softmax ---------------------------------------------------------------------------
    Exercise(
        "2.1", "02_softmax", "Softmax: stable forward, Jacobian-free backward", 2,
        "minitorch_attn.autograd.fused", "Softmax",
        hint="p = exp(x - max) / sum(exp(x - max)) along axis; backward dx = p * (grad - sum(grad * p))",
        part_hints={
            "forward": "subtract the row max (keepdims=True) before exp, or logits of 1e4 overflow to "
            "inf/inf = NaN; then divide by the row sum and ctx.save(p, axis)",
            "backward": "p, axis = ctx.saved; return p * (grad - (grad * p).sum(axis=axis, keepdims=True))",
        },
    ),
    Exercise(
        "2.2", "02_softmax", "LogSumExp: stable forward, softmax backward", 2,
        "minitorch_attn.autograd.fused", "LogSumExp",
        hint="lse = m + log(sum(exp(x - m))) with m the row max; its gradient is softmax(x)",
        part_hints={
            "forward": "m = max along axis (keepdims); replace a -inf max by 0 so that an all -inf row "
            "gives log(0) = -inf instead of NaN; e = exp(x - m), s = sum(e), lse = m + log(s); save e and s "
            "for backward; squeeze the axis unless keepdims",
            "backward": "the gradient is softmax(x) = e / s with e = exp(x - m) and s = sum(e) saved in "
            "forward; expand grad's reduced axis first when keepdims=False; an all -inf row has s = 0: "
            "divide by 1 there so its gradient is 0, not NaN",
        },
    ),
    Exercise(
        "2.3", "02_softmax", "merge_normalisers: combine two (max, normaliser) pairs", 3,
        "minitorch_attn.kernels.online", "merge_normalisers",
        hint="m = max(m_a, m_b); l = l_a * exp(m_a - m) + l_b * exp(m_b - m), but where m is -inf "
        "(both parts empty) subtract 0 instead: -inf - -inf is NaN",
    ),
    Exercise(
        "2.4", "02_softmax", "online_normaliser: stream a row a block at a time", 3,
        "minitorch_attn.kernels.online", "online_normaliser",
        hint="start from m = -inf, l = 0 (shape x.shape[:-1]); for each block x[..., s:s + block_size]: "
        "m_b = block max, l_b = sum(exp(block - m_b)) (with a -inf m_b replaced by 0), then "
        "m, l = merge_normalisers(m, l, m_b, l_b); the last block may be shorter",
    ),
    # ---- lesson 03: Bahdanau (add entries below this line) -----------------------------------------
    Exercise(
        "3.1", "03_bahdanau", "additive_attention: scores, masked softmax, context", 3,
        "minitorch_attn.nn.bahdanau", "additive_attention",
        hint="hidden = tanh(projected_query[:, :, None, :] + projected_keys[:, None, :, :]) has shape "
        "(B, Nq, Nk, H); scores = matmul(hidden, v) (B, Nq, Nk); with a mask, masked_fill(scores, "
        "key_padding_mask[:, None, :], -np.inf) before F.softmax(..., axis=-1), and where every key of a row "
        "is padding set its weights to 0 with where(...) (softmax of all -inf is NaN); context = "
        "matmul(weights, values). Use the library's Tensor ops (tanh, matmul, masked_fill, where), not NumPy, "
        "so gradients flow",
    ),
    Exercise(
        "3.2", "03_bahdanau", "bahdanau_step: attend with the previous state, then step the GRU", 2,
        "minitorch_attn.nn.seq2seq", "bahdanau_step",
        hint="context, weights = attend(state) -- the query is the PREVIOUS state s_{i-1}; the GRU's input "
        "gates are gi_emb + matmul(context, w_ctx_t); then state = gru_step(gates, state, w_hh_t, b_hh); "
        "return (new state, context, weights)",
    ),
    # ---- lesson 04: Luong (add entries below this line) --------------------------------------------
    Exercise(
        "4.1", "04_luong", "luong_score: dot, general and concat scores", 3,
        "minitorch_attn.nn.luong", "luong_score",
        hint="dot: matmul(query, keys.transpose(-2, -1)); general: matmul(matmul(query, W), keys.transpose(-2, "
        "-1)) (W is (q, k), so q W has the keys' width); concat: with q = query.shape[-1], pq = matmul(query, "
        "W[:, :q].transpose(0, 1)) (B, Nq, H) and pk = matmul(keys, W[:, q:].transpose(0, 1)) (B, Nk, H), "
        "then matmul(tanh(pq[:, :, None, :] + pk[:, None, :, :]), v); return (B, Nq, Nk) scores",
    ),
    Exercise(
        "4.2", "04_luong", "local_p_weights: a Gaussian window around the predicted position", 3,
        "minitorch_attn.nn.luong", "local_p_weights",
        hint="s = np.arange(Nk); outside = np.abs(s - positions.data[..., None]) > D (a constant bool array, "
        "or-ed with key_padding_mask[:, None, :] when given); align = F.softmax(masked_fill(scores, outside, "
        "-np.inf), axis=-1), with rows that are entirely outside set to 0 via where(...); then multiply by "
        "exp(-(s - positions[..., None])**2 / (2 sigma**2)) with sigma = D / 2, built from the Tensor "
        "`positions` so the gradient reaches it; do not renormalise",
    ),
    # ---- lesson 05: scaled dot-product (add entries below this line) -------------------------------
    Exercise(
        "5.1", "05_scaled_dot_product", "_attend: scores, mask, softmax, weighted sum", 4,
        "minitorch_attn.sdpa", "_attend",
        hint="scores = ops.matmul(q, k.transpose(-2, -1)) * scale; a boolean mask: "
        "ops.where(mask, scores, -np.inf) (True = may attend); a float mask (a Tensor): scores + mask; "
        "dead = np.all(scores.data == -np.inf, axis=-1, keepdims=True) marks rows that see no key: set "
        "their scores to 0 before F.softmax(scores, axis=-1) and their weights to 0 after (ops.where), so "
        "nothing is NaN; out = ops.matmul(weights, v); return out, weights",
    ),
    Exercise(
        "5.2", "05_scaled_dot_product", "causal_mask: who may attend to whom", 2,
        "minitorch_attn.sdpa", "causal_mask",
        hint="compare a column of query indices np.arange(n_q)[:, None] with a row of key indices "
        "np.arange(n_k)[None, :]: mask = keys <= queries + offset, a boolean (n_q, n_k) array",
    ),
    # ---- lesson 06: multi-head and positions (add entries below this line) -------------------------
    Exercise(
        "6.1", "06_multihead", "split_heads: (B, N, E) -> (B, H, N, E/H)", 1,
        "minitorch_attn.nn.multihead", "split_heads",
        hint="reshape to (*lead, n, num_heads, e // num_heads) so each head gets a contiguous slice of the "
        "features, then swap the N and H axes with .transpose(-3, -2); reshaping straight to (B, H, N, E/H) "
        "has the right shape but mixes positions into heads",
    ),
    Exercise(
        "6.2", "06_multihead", "merge_heads: (B, H, N, d) -> (B, N, H*d)", 1,
        "minitorch_attn.nn.multihead", "merge_heads",
        hint="the inverse of split_heads: first .transpose(-3, -2) to (..., N, H, d), then "
        ".reshape(*lead, n, h * d); reshaping without the transpose keeps the shape right and the "
        "values wrong",
    ),
    Exercise(
        "6.3", "06_multihead", "sinusoidal_encoding: the Transformer's position table", 2,
        "minitorch_attn.nn.positional", "sinusoidal_encoding",
        hint="pos = offset + np.arange(n_positions) as a column (float64); 2i = np.arange(0, dim, 2); "
        "angles = pos * base ** (-2i / dim); pe = zeros (n_positions, dim); pe[:, 0::2] = sin(angles); "
        "pe[:, 1::2] = cos(angles[:, :dim // 2]) (an odd dim has one more sine than cosine)",
    ),
    Exercise(
        "6.4", "06_multihead", "apply_rope: rotary position embedding (half-split pairs)", 3,
        "minitorch_attn.nn.positional", "apply_rope",
        hint="angles = rope_angles(n, d, base, offset) (shape (n, d/2)); cos, sin = np.cos(angles), "
        "np.sin(angles) cast to x.dtype; x1, x2 = x[..., :d // 2], x[..., d // 2:]; "
        "return ops.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1) (feature i pairs with i + d/2, "
        "not with i + 1)",
    ),
    # ---- lesson 07: modern Hopfield networks (add entries below this line) -------------------------
    Exercise(
        "7.1", "07_hopfield", "hopfield_update: xi <- softmax(beta xi X^T) X", 3,
        "minitorch_attn.hopfield", "hopfield_update",
        hint="rows of X are the stored patterns: Xt = X.transpose(-2, -1); repeat `steps` times: p = "
        "F.softmax(ops.matmul(xi, Xt) * beta, axis=-1) (one distribution over the N patterns per state), new = "
        "ops.matmul(p, X); with tol, stop after the update whose largest change np.max(np.abs(new.data - "
        "xi.data)) is below tol; keep the last p (it is returned with return_weights=True)",
    ),
    Exercise(
        "7.2", "07_hopfield", "hopfield_energy: -lse + 1/2 xi.xi + log(N)/beta + M^2/2", 2,
        "minitorch_attn.hopfield", "hopfield_energy",
        hint="scores = ops.matmul(xi, X.transpose(-2, -1)); lse = F.logsumexp(scores * beta, axis=-1) / beta "
        "(the paper's lse includes the 1/beta); M2 = (X * X).sum(axis=-1).max(axis=-1, keepdims=True) (the "
        "largest squared norm of a stored pattern); energy = -lse + 0.5 * (xi * xi).sum(axis=-1) + math.log(n) "
        "/ beta + 0.5 * M2",
    ),
    Exercise(
        "7.3", "07_hopfield", "ClassicalHopfield: Hebbian storage and the sign update", 2,
        "minitorch_attn.hopfield", "ClassicalHopfield",
        hint="store W = X^T X / d with a zero diagonal; update xi <- sign(W xi) synchronously, keeping the old "
        "value where W xi is exactly 0",
        part_hints={
            "__init__": "d = X.shape[1]; W = X.T @ X / d (the sum of the outer products x_i x_i^T, over d); "
            "np.fill_diagonal(W, 0.0) (no unit drives itself)",
            "update": "repeat `steps` times: h = xi @ self.W (rows are states; W is symmetric); xi = +1 where "
            "h > 0, -1 where h < 0 and unchanged where h == 0 (nested np.where)",
        },
    ),
    Exercise(
        "7.4", "07_hopfield", "effective_patterns: 1 / sum p^2", 1,
        "minitorch_attn.hopfield", "effective_patterns",
        hint="out = 1.0 / (p * p).sum(axis=axis): k for a uniform distribution over k patterns, 1 for a "
        "one-hot one; written with * and .sum it works on arrays and Tensors alike",
    ),
    # ---- lesson 08: Hopfield layers (add entries below this line) ----------------------------------
    Exercise(
        "8.1", "08_hopfield_layers", "hopfield_association: update steps, then read out the values", 3,
        "minitorch_attn.nn.hopfield", "hopfield_association",
        hint="xi = q; repeat steps - 1 times: new = F.scaled_dot_product_attention(xi, k, k, attn_mask=attn_mask, "
        "scale=beta) (an update in the association space: k are both keys and values), stop after it when tol "
        "is given and np.max(np.abs(new.data - xi.data)) < tol; then out, weights = "
        "F.scaled_dot_product_attention(xi, k, v, attn_mask=attn_mask, scale=beta, dropout_p=dropout_p, "
        "rng=rng, return_weights=True)",
    ),
    Exercise(
        "8.2", "08_hopfield_layers", "HopfieldPooling.forward: trainable queries pool a set", 2,
        "minitorch_attn.nn.hopfield", "HopfieldPooling",
        hint="B = x.shape[0]; state = self.pooling_weights * np.ones((B, 1, 1), dtype=x.dtype) (the same "
        "queries for every bag, gradients summed back); out = self.hopfield((x, state, x), "
        "stored_pattern_padding_mask=stored_pattern_padding_mask) is (B, quantity, output_size); return "
        "out.reshape(B, self.quantity * out.shape[-1])",
    ),
    # ---- lesson 09: the transformer (add entries below this line) ----------------------------------
    Exercise(
        "9.1", "09_transformer", "residual: one sublayer, pre-LN or post-LN", 2,
        "minitorch_attn.nn.transformer", "residual",
        hint="pre-LN (norm_first=True): out = x + sublayer(norm(x)) -- the stream x itself is never normalised; "
        "post-LN (norm_first=False): out = norm(x + sublayer(x)) -- normalise AFTER adding; call sublayer "
        "exactly once",
    ),
    Exercise(
        "9.2", "09_transformer", "cached_attention: new queries against cached keys and values", 3,
        "minitorch_attn.nn.gpt", "cached_attention",
        hint="with past = (k_past, v_past): k = cat([k_past, k], axis=-2), v likewise (the position axis); "
        "t_new, t = q.shape[-2], k.shape[-2]; mask = causal_mask(t_new, t, offset=t - t_new) (bottom-right: the "
        "new queries are the LAST positions; offset 0 would hide the cache from them); out = "
        "F.scaled_dot_product_attention(q, k, v, attn_mask=mask); return out, (k, v)",
    ),
    Exercise(
        "9.3", "09_transformer", "next_token_probs: temperature, top-k, softmax", 2,
        "minitorch_attn.nn.gpt", "next_token_probs",
        hint="temperature == 0: one-hot on z.argmax(axis=-1) (greedy); else z = z / temperature; with top_k: "
        "kth = np.sort(z, axis=-1)[:, -k][:, None] with k = min(top_k, V), z = np.where(z < kth, -np.inf, z) "
        "(ties with the k-th value survive); then a stable softmax: e = np.exp(z - z.max(axis=-1, "
        "keepdims=True)), probs = e / e.sum(axis=-1, keepdims=True)",
    ),
    # ---- lesson 10: flash attention on the CPU (add entries below this line) -----------------------
    Exercise(
        "10.1", "10_flash_cpu", "online_softmax_tile_step: fold one key tile into (m, l, acc)", 3,
        "minitorch_attn.kernels.tiled", "online_softmax_tile_step",
        hint="S = (q_tile @ np.swapaxes(k_tile, -1, -2)) * scale, then np.where(mask, S, -np.inf) if a mask "
        "is given; m_new = np.maximum(m, S.max(axis=-1)); m_safe = np.where(np.isfinite(m_new), m_new, 0) "
        "(a row with no key yet: -inf - -inf is NaN); P = exp(S - m_safe[..., None]); alpha = exp(m - "
        "m_safe) rescales the OLD sums (0 when m = -inf): l = l * alpha + P.sum(-1), acc = acc * "
        "alpha[..., None] + P @ v_tile; do not normalise here (that happens once, at the end); "
        "return (m_new, l, acc)",
    ),
    Exercise(
        "10.2", "10_flash_cpu", "flash_forward_tiled: the FlashAttention-2 forward in NumPy", 3,
        "minitorch_attn.kernels.tiled", "flash_forward_tiled",
        hint="for i0 in range(0, Nq, Br): q_tile = q[:, :, i0:i0 + Br], br = its length (the last tile may be "
        "shorter); m = full((B, H, br), -inf), l = zeros, acc = zeros((B, H, br, dv)); for j0 in range(0, Nk, "
        "Bc): if causal and j0 > i0 + br - 1, break (the tile is above the diagonal); bc = min(Bc, Nk - j0); "
        "mask = allowed_mask(br, bc, causal, key_padding_mask, q0=i0, k0=j0); m, l, acc = "
        "online_softmax_tile_step(...); after the key loop normalise ONCE: o = acc / l[..., None] and "
        "lse = m + log(l), but where l == 0 (the row saw no key) o = 0 and lse = -inf (use np.where with a "
        "safe l of 1 so nothing divides by 0); keep q's dtype",
    ),
    Exercise(
        "10.3", "10_flash_cpu", "flash_backward_tiled: the backward by recomputation", 4,
        "minitorch_attn.kernels.tiled", "flash_backward_tiled",
        hint="for each key tile j0 (outer loop): dk_tile = dv_tile = 0; for each query tile i0 (inner loop; "
        "causal: start at (j0 // Br) * Br, earlier query tiles see none of these keys): S = q_tile k_tileᵀ · "
        "scale with masked pairs -inf (allowed_mask(br, bc, causal, key_padding_mask, q0=i0, k0=j0)); "
        "P = exp(S - lse_safe[:, :, i0:i0 + br, None]) (no max, no sum: lse already normalises); "
        "dv_tile += Pᵀ do_tile; dP = do_tile v_tileᵀ; dS = P * (dP - D[:, :, i0:i0 + br, None]) with "
        "D = rowsum(dO ∘ O) (computed above, not rowsum(P ∘ dP) over one tile only); dq[i0:i0 + br] += dS k_tile · "
        "scale; dk_tile += dSᵀ q_tile · scale; after the query loop write dk[j0:j0 + bc], dv[j0:j0 + bc]; "
        "the last tiles may be shorter than Br, Bc",
    ),
    Exercise(
        "10.4", "10_flash_cpu", "forward_tile_numba: a Numba kernel for one query tile", 3,
        "minitorch_attn.kernels.numba_teaching", "forward_tile_numba",
        hint="br = min(Br, Nq - i0); per row keep m = np.full(br, -np.inf), l = np.zeros(br), acc = "
        "np.zeros((br, dv)) and a score buffer s = np.empty(Bc) (allocate before the loops); for j0 in "
        "range(0, j_end, Bc) with j_end = min(Nk, i0 + br) if causal else Nk, bc = min(Bc, j_end - j0): for "
        "each row i, s[j] = scale * sum_c q[i0 + i, c] * k[j0 + j, c] (-inf where causal and j0 + j > "
        "i0 + i), m_new = max(m[i], max s); skip the row if m_new is still -inf; alpha = math.exp(m[i] - "
        "m_new); l[i] *= alpha; acc[i] *= alpha; then p = math.exp(s[j] - m_new): l[i] += p, acc[i, c] += "
        "p * v[j0 + j, c]; m[i] = m_new. At the end o[i0 + i] = acc[i] / l[i], lse[i0 + i] = m[i] + "
        "math.log(l[i]), or 0 and -inf where l[i] == 0. Only scalars, loops, math and np.empty/zeros/full "
        "inside @njit (no np.where, no fancy indexing)",
    ),
    # ---- lesson 11: flash attention in CUDA C (add entries below this line) ------------------------
    Exercise(
        "11.1", "11_flash_cuda", "softmax_rows: a warp per row of scores, with butterfly reductions", 2,
        "minitorch_attn.kernels.cuda.progression", "softmax_rows", file="01_naive.cu",
        hint="lane t visits the columns j = t, t + 32, t + 64, ... < N of s_row: m = the largest of them, then "
        "m = warp_max(m) (now every lane has the row max); m_safe = m, or 0.0f when m == neg_inf(); l = the "
        "sum of __expf(s_row[j] - m_safe) over the lane's columns, then l = warp_sum(l); write s_row[j] = "
        "__expf(s_row[j] - m_safe) * (1 / l) (0 when l == 0); lane 0 alone writes lse[row] = m + __logf(l) "
        "(neg_inf() when l == 0). Every lane must call warp_max and warp_sum, even a lane with no column",
    ),
    Exercise(
        "11.2", "11_flash_cuda", "online_row: fold one key into (m, l, acc), in registers", 3,
        "minitorch_attn.kernels.cuda.progression", "online_row", file="02_online_row.cu",
        hint="m_new = fmaxf(m, s); alpha = __expf(m - m_new) rescales the old sums (it is 0 on the first key, "
        "where m = -inf); p = __expf(s - m_new); l = l * alpha + p; then under #pragma unroll, for u = 0 .. "
        "DV_CHUNK - 1: acc[u] = acc[u] * alpha + p * v_j[c0 + u] where c0 + u < dv (add nothing and read no "
        "v_j past dv: a constant loop bound with a test inside keeps acc in registers); finally m = m_new",
    ),
    Exercise(
        "11.3", "11_flash_cuda", "shared_tiles: stage K/V tiles in shared memory, fold a masked tile", 4,
        "minitorch_attn.kernels.cuda.progression", "shared_tiles", file="03_shared_tiles.cu",
        hint="stage the tile between two __syncthreads(), then fold its keys one by one into (m, l, acc)",
        part_hints={
            "stage": "__syncthreads() first (the previous tile may still be read); for (t = threadIdx.x; t < "
            "BLOCK_N * d; t += blockDim.x): k_s[t] = k_bh[(j0 + t / d) * d + t % d], or 0.0f when j0 + t / d >= "
            "Nk; the same for v_s with DV_CHUNK columns: v_s[t] = V[j0 + t / DV_CHUNK, c0 + t % DV_CHUNK], 0.0f "
            "past Nk or past dv; then __syncthreads() again, so nobody reads a half-written tile",
            "fold": "as in 02_online_row.cu, but s may be -inf (a masked key): m_new = fmaxf(m, s); m_safe = "
            "m_new, or 0.0f when m_new == neg_inf() (no key seen yet: never -inf - -inf); alpha = __expf(m - "
            "m_safe); p = __expf(s - m_safe) (0 for a masked key); l = l * alpha + p; for every u < DV_CHUNK: "
            "acc[u] = acc[u] * alpha + p * v_s[jj * DV_CHUNK + u]; m = m_new",
        },
    ),
    Exercise(
        "11.4", "11_flash_cuda", "shared_tiles_launch_config: grid, block and shared memory of step 03", 2,
        "minitorch_attn.kernels.cuda.progression", "shared_tiles_launch_config",
        hint="grid = (ceil(Nq / Br), BH, ceil(dv / DV_CHUNK)) with _cdiv (x: query tiles, y: heads, z: column "
        "chunks; integers, not floats); block = (Br,) (one thread per query row); shared_mem = (BLOCK_N * d + "
        "BLOCK_N * DV_CHUNK) * 4 bytes (k_s holds BLOCK_N keys of width d, v_s BLOCK_N rows of DV_CHUNK "
        "columns, float32 = 4 bytes); return (grid, block, shared_mem)",
    ),
    # ---- lesson 12: softmax limits (add entries below this line) ---------------------------------------
    Exercise(
        "12.1", "12_softmax_limits", "max_weight_bound: the largest weight a softmax can give", 2,
        "minitorch_attn.softmax_limits", "max_weight_bound",
        hint="bound = e^Δ / (e^Δ + n - 1), written as 1 / (1 + (n - 1) * np.exp(-d)) with the float64 arrays "
        "d and k already made for you (so Δ = 1e4 or inf gives 1, not inf / inf = NaN); assign it to `bound`",
    ),
    Exercise(
        "12.2", "12_softmax_limits", "entropy: Shannon entropy in nats, with 0 log 0 = 0", 2,
        "minitorch_attn.softmax_limits", "entropy",
        hint="h = -(p * log p).sum(axis=axis), but take the log of np.where(p > 0, p, 1.0) so that a zero "
        "weight (a masked item) adds 0 instead of 0 * -inf = NaN; assign it to `h`",
    ),
    Exercise(
        "12.3", "12_softmax_limits", "adaptive_temperature: entropy -> beta -> softmax(beta * logits)", 4,
        "minitorch_attn.softmax_limits", "adaptive_temperature",
        hint="h = entropy(softmax_array(z, axis), axis=axis); poly = np.polyval(POLY_COEFFS, h) (highest degree "
        "first); beta = 1 where h <= ENTROPY_THRESHOLD, else max(poly, 1), cast to z.dtype; probs = "
        "softmax_array(z * np.expand_dims(beta, axis), axis): beta MULTIPLIES the logits (it is 1 / temperature)",
    ),
    # ---- lesson 13: sparse attention (add entries below this line) -------------------------------------
    Exercise(
        "13.1", "13_sparse_attention", "Sparsemax: sort, cumulative sum, support size, threshold; backward", 3,
        "minitorch_attn.autograd.entmax", "Sparsemax",
        hint="p = max(z - tau, 0) with tau from the sorted scores; backward: grad minus its mean over the "
        "support, 0 off the support",
        part_hints={
            "forward": "z, empty = _shifted(x, axis) (axis moved last, row max subtracted, fully -inf rows "
            "flagged); sort descending; csum = cumsum of the sorted scores with -inf replaced by 0; "
            "k* = count of k (1-based) with 1 + k * z_(k) > csum_k; tau = (csum at k* - 1) / k*; "
            "p = max(z - tau, 0), NaN on `empty` rows; move the axis back, ctx.save(p, axis)",
            "backward": "s = (p > 0) (the support; NaN > 0 is False); "
            "return s * (grad - sum(s * grad) / sum(s)), sums along axis with keepdims, and 0 where sum(s) = 0",
        },
    ),
    Exercise(
        "13.2", "13_sparse_attention", "Entmax15: the exact sort-based threshold for alpha = 1.5; backward", 3,
        "minitorch_attn.autograd.entmax", "Entmax15",
        hint="p = max(z/2 - tau, 0) ** 2; tau_k = mean_k - sqrt(delta_k) over the top k of u = z/2; "
        "backward with s = sqrt(p)",
        part_hints={
            "forward": "z, empty = _shifted(x, axis); u = z / 2 sorted descending; with -inf replaced by 0 "
            "in the sums, mean_k = cumsum(u)/k, mean_sq_k = cumsum(u**2)/k, delta_k = (1 - k * (mean_sq_k - "
            "mean_k**2)) / k, tau_k = mean_k - sqrt(max(delta_k, 0)); k* = length of the prefix where "
            "tau_k < u_(k) (np.cumprod of the test, summed); p = max(u - tau_k*, 0) ** 2; NaN on `empty` rows",
            "backward": "s = sqrt(p) on the support (p > 0), 0 elsewhere; "
            "return s * (grad - sum(s * grad) / sum(s)) along axis (0 where sum(s) = 0)",
        },
    ),
    Exercise(
        "13.3", "13_sparse_attention", "bisect_threshold: tau for any alpha by bisection", 2,
        "minitorch_attn.autograd.entmax", "bisect_threshold",
        hint="start at lo = -1 with width 1 - (1/n) ** (alpha - 1); n_iter times: width /= 2, mid = lo + "
        "width, f = sum(max((alpha - 1) * z - mid, 0) ** (1 / (alpha - 1))) along the last axis (keepdims); "
        "where f >= 1 move lo to mid; return lo (shape z.shape[:-1] + (1,))",
    ),
    # ---- lesson 14: linear attention (add entries below this line) -------------------------------------
    Exercise(
        "14.1", "14_linear_attention", "linear_attention_regrouped: φ(Q)(φ(K)ᵀV) with its normaliser", 3,
        "minitorch_attn.linear_attention", "linear_attention_regrouped",
        hint="kv = matmul(fk.transpose(-2, -1), v) (a d×dv matrix); z = fk.sum(axis=-2, keepdims=True) (one "
        "d-vector of key features); numerator = matmul(fq, kv); denominator = (fq * z).sum(axis=-1, "
        "keepdims=True) + eps (one number per query); return numerator / denominator. Never form fq @ fkᵀ",
    ),
    Exercise(
        "14.2", "14_linear_attention", "causal_linear_attention_prefix: causal linear attention as prefix sums", 3,
        "minitorch_attn.linear_attention", "causal_linear_attention_prefix",
        hint="with *batch, n, d = fk.shape and dv = v.shape[-1]: outer = fk.reshape(*batch, n, d, 1) * "
        "v.reshape(*batch, n, 1, dv); S = cumsum(outer, axis=-3) (state after each position); z = cumsum(fk, "
        "axis=-2); numerator = matmul(fq.reshape(*batch, n, 1, d), S).reshape(*batch, n, dv); denominator = "
        "(fq * z).sum(axis=-1, keepdims=True) + eps. Row i must not see keys j > i",
    ),
    Exercise(
        "14.3", "14_linear_attention", "galerkin_attention: Q(LN(K)ᵀLN(V))/N", 2,
        "minitorch_attn.linear_attention", "galerkin_attention",
        hint="normalise K and V (not Q) over the feature axis: F.layer_norm(k, k.shape[-1], eps=eps), the same "
        "for v; order == 'kv': matmul(q, matmul(k_nᵀ, v_n)) / n; order == 'qk': matmul(matmul(q, k_nᵀ), v_n) / n, "
        "with ᵀ = .transpose(-2, -1) and n the number of keys. No softmax",
    ),
    # ---- lesson 15: graphs and sets (add entries below this line) -------------------------------------
    Exercise(
        "15.1", "15_graphs_and_sets", "gat_attention: graph-attention weights over each node's neighbours", 3,
        "minitorch_attn.nn.graph", "gat_attention",
        hint="with k, n, f = wh.shape: s_dst = matmul(wh, a_dst.reshape(k, f, 1)) (K, N, 1), s_src = matmul(wh, "
        "a_src.reshape(k, f, 1)).reshape(k, 1, n); e = leaky_relu(s_dst + s_src, negative_slope) (K, N, N); "
        "weights = F.softmax(where(mask, e, -inf), axis=-1) with mask = adj broadcast to e.shape; rows of adj "
        "with no True entry get weights 0 (where(...) again), not NaN",
    ),
    Exercise(
        "15.2", "15_graphs_and_sets", "gcn_norm: the symmetric normalisation D^-1/2 (A + I) D^-1/2", 2,
        "minitorch_attn.nn.graph", "gcn_norm",
        hint="a_hat = adj as float64 + np.eye(N); d = a_hat.sum(axis=1) (every degree >= 1); return "
        "a_hat / sqrt(d_i) / sqrt(d_j), i.e. (1/sqrt(d))[:, None] * a_hat * (1/sqrt(d))[None, :]",
    ),
    Exercise(
        "15.3", "15_graphs_and_sets", "cross_attention_aggregate: the attentive neural process's deterministic path",
        3, "minitorch_attn.nn.neural_process", "cross_attention_aggregate",
        hint="scores = matmul(query, keys.transpose(-2, -1)) / sqrt(d) with d = query.shape[-1] (B, Nt, Nc); "
        "return matmul(F.softmax(scores, axis=-1), values): a softmax over the context points, one row per target",
    ),
    # ---- lesson 16: long context (add entries below this line) ------------------------------------------
    Exercise(
        "16.1", "16_long_context", "fact_task: literal and two-hop needles among distractor facts", 3,
        "minitorch_attn.data.two_hop", "fact_task",
        hint="draw A (the queried subject); literal: the answer fact's subject is A, distractor subjects any "
        "entity but A; two-hop: B != A, the bridge A→B at a random position other than answer_pos, distractor "
        "subjects neither A nor B; draw the answers v and the distractors' objects; write fact_token(subject, "
        "object, E) at every fact position, the answer fact at answer_pos, then append query_token(A, E)",
    ),
    Exercise(
        "16.2", "16_long_context", "compose_attention: combine(normaliser(score(q, k), mask), v)", 2,
        "minitorch_attn.anatomy", "compose_attention",
        hint="return combine(normaliser(score(q, k), mask), v): the score sees q and k, the normaliser the "
        "scores and the mask, the combine the weights and v",
    ),
    Exercise(
        "16.3", "16_long_context", "additive_score: Bahdanau's score vᵀ tanh(W q_i + U k_j)", 3,
        "minitorch_attn.anatomy", "additive_score",
        hint="hidden = (W(q)[:, :, None, :] + U(k)[:, None, :, :]).tanh(), shape (B, Nq, Nk, H); return "
        "matmul(hidden, v), shape (B, Nq, Nk) (in this order, to match additive_attention bit for bit)",
    ),
    # ---- lesson 17: a pretrained encoder (add entries below this line) ----------------------------------
    Exercise(
        "17.1", "17_pretrained_encoder", "layer_names: BERT's weight names for one encoder layer", 2,
        "minitorch_attn.pretrained", "layer_names",
        hint="table = {our name: (checkpoint names...)}: self_attn.q/k/v_proj_weight <- attention.self.query/key/"
        "value.weight; self_attn.in_proj_bias <- (query.bias, key.bias, value.bias) in that order; "
        "self_attn.out_proj <- attention.output.dense; norm1 <- attention.output.LayerNorm; linear1 <- "
        "intermediate.dense; linear2 <- output.dense; norm2 <- output.LayerNorm (weight and bias each)",
    ),
    Exercise(
        "17.2", "17_pretrained_encoder", "mean_pool: the mean over the real tokens of each sentence", 2,
        "minitorch_attn.pretrained", "mean_pool",
        hint="m = mask as hidden's dtype, shape (B, N, 1); pooled = (hidden * m).sum(axis=1) / "
        "np.maximum(m.sum(axis=1), 1e-9): the padded positions count neither in the sum nor in the count",
    ),
]

_BY_ID = {e.id: e for e in EXERCISES}


def get(exercise_id: str) -> Exercise:
    """The exercise with this id ("1.2"); KeyError listing the known ids otherwise."""
    try:
        return _BY_ID[str(exercise_id)]
    except KeyError:
        raise KeyError(f"unknown exercise id {exercise_id!r}; the catalog has {', '.join(_BY_ID)}") from None


def lessons() -> list[str]:
    """Lesson ids that have exercises, in catalog order."""
    return list(dict.fromkeys(e.lesson for e in EXERCISES))


def for_lesson(lesson: str) -> list[Exercise]:
    return [e for e in EXERCISES if e.lesson == lesson]


def resolve_lesson(spec: str) -> str:
    """A lesson id from "01", "1", "01_autograd" or "lesson01_autograd"."""
    spec = str(spec)
    if spec.startswith("lesson"):
        spec = spec[len("lesson"):]
    matches = [lesson for lesson in lessons() if lesson == spec or lesson.split("_")[0] == spec.zfill(2)]
    if len(matches) != 1:
        raise ValueError(f"unknown lesson {spec!r}; lessons with exercises: {', '.join(lessons())}")
    return matches[0]


def select(only=None) -> list[Exercise]:
    """The exercises named by `only`: None (all), or ids ("1.2"), lessons ("01", "01_autograd") or a mix."""
    if only is None:
        return list(EXERCISES)
    if isinstance(only, str):
        only = [only]
    chosen: set[str] = set()
    for spec in only:
        spec = str(spec)
        if spec in _BY_ID:
            chosen.add(spec)
        else:
            try:
                lesson = resolve_lesson(spec)
            except ValueError:
                raise ValueError(
                    f"use(only=...): {spec!r} is neither an exercise id ({', '.join(_BY_ID)}) nor a lesson "
                    f"({', '.join(lessons())})"
                ) from None
            chosen.update(e.id for e in for_lesson(lesson))
    return [e for e in EXERCISES if e.id in chosen]
