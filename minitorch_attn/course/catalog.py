"""The catalog of graded exercises: which library definition each one is, its lesson, points and hint.

An exercise is a top-level function or class of the library whose body holds one or more blocks between
the lines `### BEGIN SOLUTION` and `### END SOLUTION`. `exercises/` and `solutions/` are generated from
those definitions (`python -m minitorch_attn course generate`); the graded tests in `tests/exercises/`
carry `@pytest.mark.exercise(id, points=...)`, and each exercise's test points add up to `points` here.

`hint` says in one line what the learner's block does (not how: the definition's docstring is the
contract); a stub's `NotImplementedError` says it, with about how many lines the solution block takes
and the names it must leave set (both read from the block: source.block_stub_message). `part_hints`
gives the line for the block inside a given method (keyed by the method's name, e.g. "forward" /
"backward"). Mistake-specific advice belongs in the graded tests, in the message of the check that
detects that mistake (checks.likely_mistake).

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
        hint="sum grad over the axes broadcasting added or stretched, so that it comes back with exactly `shape`",
    ),
    Exercise(
        "1.2", "01_autograd", "Mul: forward and backward", 1,
        "minitorch_attn.autograd.ops", "Mul",
        hint="the elementwise product and its gradient for each input",
        part_hints={
            "forward": "save what backward needs, then return the product",
            "backward": "return the gradient for a and for b, in that order",
        },
    ),
    Exercise(
        "1.3", "01_autograd", "Tanh: forward and backward", 1,
        "minitorch_attn.autograd.ops", "Tanh",
        hint="tanh and its derivative, from what forward saved",
        part_hints={
            "forward": "return tanh(a), saving what the derivative needs",
            "backward": "return grad times the derivative of tanh, from what forward saved",
        },
    ),
    Exercise(
        "1.4", "01_autograd", "MatMul: forward and backward, with batch broadcasting", 3,
        "minitorch_attn.autograd.ops", "MatMul",
        hint="the matrix product and its gradients, with batch axes broadcast",
        part_hints={
            "forward": "save both inputs, then return their matrix product",
            "backward": "return the gradients for a and b, transposing only the last two axes",
        },
    ),
    Exercise(
        "1.5", "01_autograd", "topological_order: every tensor after its parents", 2,
        "minitorch_attn.autograd.tensor", "topological_order",
        hint="list every tensor of the graph once, each after its parents, without recursion",
    ),
    Exercise(
        "1.6", "01_autograd", "SGD.step: momentum, Nesterov and weight decay, as torch", 2,
        "minitorch_attn.optim", "SGD",
        hint="update every parameter that has a gradient in place, as torch.optim.SGD does",
    ),
    # ---- lesson 02: softmax ---------------------------------------------------------------------------
    Exercise(
        "2.1", "02_softmax", "Softmax: stable forward, Jacobian-free backward", 2,
        "minitorch_attn.autograd.fused", "Softmax",
        hint="a softmax that survives huge logits, and its backward without the Jacobian",
        part_hints={
            "forward": "return the softmax along `axis`, stable for huge logits, and save what backward needs",
            "backward": "return the input's gradient from the saved probabilities, without forming the Jacobian",
        },
    ),
    Exercise(
        "2.2", "02_softmax", "LogSumExp: stable forward, softmax backward", 2,
        "minitorch_attn.autograd.fused", "LogSumExp",
        hint="a log-sum-exp that survives huge logits and rows of -inf, and its backward",
        part_hints={
            "forward": "return log(sum(exp(x))) along `axis`, stable, -inf for a row of all -inf",
            "backward": "return grad times softmax(x), grad's reduced axis put back (0 on a row of all -inf)",
        },
    ),
    Exercise(
        "2.3", "02_softmax", "merge_normalisers: combine two (max, normaliser) pairs", 3,
        "minitorch_attn.kernels.online", "merge_normalisers",
        hint="combine the (max, normaliser) pairs of two parts of a row into the pair of the whole row",
    ),
    Exercise(
        "2.4", "02_softmax", "online_normaliser: stream a row a block at a time", 3,
        "minitorch_attn.kernels.online", "online_normaliser",
        hint="fold the row in block by block with merge_normalisers, never holding all of it",
    ),
    # ---- lesson 03: Bahdanau (add entries below this line) -----------------------------------------
    Exercise(
        "3.1", "03_bahdanau", "additive_attention: scores, masked softmax, context", 3,
        "minitorch_attn.functional.additive", "additive_attention",
        hint="score every key against every query, softmax over the unpadded keys, and weight the values",
    ),
    Exercise(
        "3.2", "03_bahdanau", "bahdanau_step: attend with the previous state, then step the GRU", 2,
        "minitorch_attn.functional.rnn", "bahdanau_step",
        hint="attend with the previous state, then step the GRU on the embedding and the context",
    ),
    # ---- lesson 04: Luong (add entries below this line) --------------------------------------------
    Exercise(
        "4.1", "04_luong", "luong_score: dot, general and concat scores", 3,
        "minitorch_attn.functional.luong", "luong_score",
        hint="return the (B, Nq, Nk) scores for `score`: dot, general or concat",
    ),
    Exercise(
        "4.2", "04_luong", "local_p_weights: a Gaussian window around the predicted position", 3,
        "minitorch_attn.functional.luong", "local_p_weights",
        hint="softmax over the keys inside the window, times a Gaussian around each predicted position",
    ),
    # ---- lesson 05: scaled dot-product (add entries below this line) -------------------------------
    Exercise(
        "5.1", "05_scaled_dot_product", "attend: scores, mask, softmax, weighted sum", 4,
        "minitorch_attn.functional.sdpa", "attend",
        hint="score, mask, softmax over the keys and weight the values; a row that sees no key gets 0, never NaN",
    ),
    Exercise(
        "5.2", "05_scaled_dot_product", "causal_mask: who may attend to whom", 2,
        "minitorch_attn.functional.sdpa", "causal_mask",
        hint="build the boolean (n_q, n_k) mask of who may attend to whom, shifted by `offset`",
    ),
    # ---- lesson 06: multi-head and positions (add entries below this line) -------------------------
    Exercise(
        "6.1", "06_multihead", "split_heads: (B, N, E) -> (B, H, N, E/H)", 1,
        "minitorch_attn.functional.multihead", "split_heads",
        hint="give each head its own contiguous slice of the features, heads before positions",
    ),
    Exercise(
        "6.2", "06_multihead", "merge_heads: (B, H, N, d) -> (B, N, H*d)", 1,
        "minitorch_attn.functional.multihead", "merge_heads",
        hint="undo split_heads: positions before heads, heads side by side in the features",
    ),
    Exercise(
        "6.3", "06_multihead", "sinusoidal_encoding: the Transformer's position table", 2,
        "minitorch_attn.functional.positional", "sinusoidal_encoding",
        hint="fill the table of sines (even columns) and cosines (odd columns) of position times frequency",
    ),
    Exercise(
        "6.4", "06_multihead", "apply_rope: rotary position embedding (half-split pairs)", 3,
        "minitorch_attn.functional.positional", "apply_rope",
        hint="rotate each pair of features (i, i + d/2) by its position's angle",
    ),
    # ---- lesson 07: modern Hopfield networks (add entries below this line) -------------------------
    Exercise(
        "7.1", "07_hopfield", "hopfield_update: xi <- softmax(beta xi X^T) X", 3,
        "minitorch_attn.functional.hopfield", "hopfield_update",
        hint="repeat the update xi <- softmax(beta xi Xᵀ) X `steps` times, or until it moves less than tol",
    ),
    Exercise(
        "7.2", "07_hopfield", "hopfield_energy: -lse + 1/2 xi.xi + log(N)/beta + M^2/2", 2,
        "minitorch_attn.functional.hopfield", "hopfield_energy",
        hint="add up the energy's four terms, each along the right axis",
    ),
    Exercise(
        "7.3", "07_hopfield", "ClassicalHopfield: Hebbian storage and the sign update", 2,
        "minitorch_attn.nn.hopfield", "ClassicalHopfield",
        hint="store the patterns Hebbian-style, then update every unit to the sign of its field",
        part_hints={
            "__init__": "store W, the patterns' outer products summed and divided by d, with no self-connections",
            "update": "set every unit to the sign of its field `steps` times, keeping it where the field is 0",
        },
    ),
    Exercise(
        "7.4", "07_hopfield", "effective_patterns: 1 / sum p^2", 1,
        "minitorch_attn.functional.hopfield", "effective_patterns",
        hint="compute 1 / sum(p^2) along `axis`, with operations that work on arrays and Tensors alike",
    ),
    # ---- lesson 08: Hopfield layers (add entries below this line) ----------------------------------
    Exercise(
        "8.1", "08_hopfield_layers", "hopfield_association: update steps, then read out the values", 3,
        "minitorch_attn.functional.hopfield", "hopfield_association",
        hint="run steps - 1 updates in the association space, then read out the values with one more",
    ),
    Exercise(
        "8.2", "08_hopfield_layers", "HopfieldPooling.forward: trainable queries pool a set", 2,
        "minitorch_attn.nn.hopfield", "HopfieldPooling",
        hint="let the same trainable queries retrieve from every bag, then flatten their outputs",
    ),
    # ---- lesson 09: the transformer (add entries below this line) ----------------------------------
    Exercise(
        "9.1", "09_transformer", "residual: one sublayer, pre-LN or post-LN", 2,
        "minitorch_attn.functional.transformer", "residual",
        hint="apply the sublayer once, with the norm before it (pre-LN) or after the residual sum (post-LN)",
    ),
    Exercise(
        "9.2", "09_transformer", "cached_attention: new queries against cached keys and values", 3,
        "minitorch_attn.functional.sdpa", "cached_attention",
        hint="append the new keys and values to the cache, then attend causally from the newest positions",
    ),
    Exercise(
        "9.3", "09_transformer", "next_token_probs: temperature, top-k, softmax", 2,
        "minitorch_attn.functional.transformer", "next_token_probs",
        hint="greedy at temperature 0; else divide by the temperature, keep the top k, and softmax",
    ),
    # ---- lesson 10: flash attention on the CPU (add entries below this line) -----------------------
    Exercise(
        "10.1", "10_flash_cpu", "online_softmax_tile_step: fold one key tile into (m, l, acc)", 3,
        "minitorch_attn.kernels.tiled", "online_softmax_tile_step",
        hint="fold one tile of keys into the running (m, l, acc), without normalising",
    ),
    Exercise(
        "10.2", "10_flash_cpu", "flash_forward_tiled: the FlashAttention-2 forward in NumPy", 3,
        "minitorch_attn.kernels.tiled", "flash_forward_tiled",
        hint="loop over query tiles and key tiles with online_softmax_tile_step, then normalise once",
    ),
    Exercise(
        "10.3", "10_flash_cpu", "flash_backward_tiled: the backward by recomputation", 4,
        "minitorch_attn.kernels.tiled", "flash_backward_tiled",
        hint="recompute each tile's probabilities from lse, and accumulate dq, dk and dv tile by tile",
    ),
    Exercise(
        "10.4", "10_flash_cpu", "forward_tile_numba: a Numba kernel for one query tile", 3,
        "minitorch_attn.kernels.numba_teaching", "forward_tile_numba",
        hint="the online softmax of one query tile, in scalar loops that Numba compiles",
    ),
    # ---- lesson 11: flash attention in CUDA C (add entries below this line) ------------------------
    Exercise(
        "11.1", "11_flash_cuda", "softmax_rows: a warp per row of scores, with butterfly reductions", 2,
        "minitorch_attn.kernels.cuda.progression", "softmax_rows", file="01_naive.cu",
        hint="each lane reduces its columns, the warp combines them, then every lane writes its normalised columns",
    ),
    Exercise(
        "11.2", "11_flash_cuda", "online_row: fold one key into (m, l, acc), in registers", 3,
        "minitorch_attn.kernels.cuda.progression", "online_row", file="02_online_row.cu",
        hint="fold key j into (m, l, acc), all in registers",
    ),
    Exercise(
        "11.3", "11_flash_cuda", "shared_tiles: stage K/V tiles in shared memory, fold a masked tile", 4,
        "minitorch_attn.kernels.cuda.progression", "shared_tiles", file="03_shared_tiles.cu",
        hint="stage a tile of keys and values in shared memory, then fold its keys one by one",
        part_hints={
            "stage": "copy the tile of keys and values into shared memory, zeros past the end, between two barriers",
            "fold": "fold the staged key jj into (m, l, acc); a masked key (s = -inf) adds nothing",
        },
    ),
    Exercise(
        "11.4", "11_flash_cuda", "shared_tiles_launch_config: grid, block and shared memory of step 03", 2,
        "minitorch_attn.kernels.cuda.progression", "shared_tiles_launch_config",
        hint="return (grid, block, shared_mem) that step 03's kernel needs for these shapes",
    ),
    # ---- lesson 12: softmax limits (add entries below this line) ---------------------------------------
    Exercise(
        "12.1", "12_softmax_limits", "max_weight_bound: the largest weight a softmax can give", 2,
        "minitorch_attn.functional.softmax_limits", "max_weight_bound",
        hint="compute the bound so that it stays 1 for a huge or infinite gap, never inf / inf"
    ),
    Exercise(
        "12.2", "12_softmax_limits", "entropy: Shannon entropy in nats, with 0 log 0 = 0", 2,
        "minitorch_attn.functional.softmax_limits", "entropy",
        hint="compute the entropy in nats along `axis`, where a zero weight adds 0",
    ),
    Exercise(
        "12.3", "12_softmax_limits", "adaptive_temperature: entropy -> beta -> softmax(beta * logits)", 4,
        "minitorch_attn.functional.softmax_limits", "adaptive_temperature",
        hint="raise the sharpness of high-entropy rows with the fitted polynomial, then softmax",
    ),
    # ---- lesson 13: sparse attention (add entries below this line) -------------------------------------
    Exercise(
        "13.1", "13_sparse_attention", "Sparsemax: sort, cumulative sum, support size, threshold; backward", 3,
        "minitorch_attn.autograd.entmax", "Sparsemax",
        hint="project onto the simplex by thresholding the sorted scores; backward on the support only",
        part_hints={
            "forward": "find the threshold from the sorted scores and return max(z - tau, 0) along `axis`",
            "backward": "return grad minus its mean over the support, and 0 off the support",
        },
    ),
    Exercise(
        "13.2", "13_sparse_attention", "Entmax15: the exact sort-based threshold for alpha = 1.5; backward", 3,
        "minitorch_attn.autograd.entmax", "Entmax15",
        hint="the exact 1.5-entmax by sorting, and its backward",
        part_hints={
            "forward": "find the exact threshold from the sorted half-scores and return max(z/2 - tau, 0) ** 2",
            "backward": "as sparsemax's backward, weighted by sqrt(p) on the support",
        },
    ),
    Exercise(
        "13.3", "13_sparse_attention", "bisect_threshold: tau for any alpha by bisection", 2,
        "minitorch_attn.autograd.entmax", "bisect_threshold",
        hint="halve the bracket on tau n_iter times, keeping the side where the weights still sum to >= 1",
    ),
    # ---- lesson 14: linear attention (add entries below this line) -------------------------------------
    Exercise(
        "14.1", "14_linear_attention", "linear_attention_regrouped: φ(Q)(φ(K)ᵀV) with its normaliser", 3,
        "minitorch_attn.functional.linear_attention", "linear_attention_regrouped",
        hint="compute φ(Q)(φ(K)ᵀV) and its normaliser without forming the N×N matrix"
    ),
    Exercise(
        "14.2", "14_linear_attention", "causal_linear_attention_prefix: causal linear attention as prefix sums", 3,
        "minitorch_attn.functional.linear_attention", "causal_linear_attention_prefix",
        hint="causal linear attention with running sums of the keys' outer products",
    ),
    Exercise(
        "14.3", "14_linear_attention", "galerkin_attention: Q(LN(K)ᵀLN(V))/N", 2,
        "minitorch_attn.functional.linear_attention", "galerkin_attention",
        hint="normalise K and V, then multiply in the order `order` says, over the number of keys"
    ),
    # ---- lesson 15: graphs and sets (add entries below this line) -------------------------------------
    Exercise(
        "15.1", "15_graphs_and_sets", "gat_attention: graph-attention weights over each node's neighbours", 3,
        "minitorch_attn.functional.graph", "gat_attention",
        hint="score every edge, softmax over each node's neighbours only; a node with none gets 0",
    ),
    Exercise(
        "15.2", "15_graphs_and_sets", "gcn_norm: the symmetric normalisation D^-1/2 (A + I) D^-1/2", 2,
        "minitorch_attn.functional.graph", "gcn_norm",
        hint="add self-loops, then divide each entry by the square roots of both nodes' degrees",
    ),
    Exercise(
        "15.3", "15_graphs_and_sets", "cross_attention_aggregate: the attentive neural process's deterministic path",
        3, "minitorch_attn.functional.neural_process", "cross_attention_aggregate",
        hint="attend from each target to the context points, and weight their values",
    ),
    # ---- lesson 16: long context (add entries below this line) ------------------------------------------
    Exercise(
        "16.1", "16_long_context", "fact_task: literal and two-hop needles among distractor facts", 3,
        "minitorch_attn.data.two_hop", "fact_task",
        hint="draw the subjects and objects, write every fact token, then the query token",
    ),
    Exercise(
        "16.2", "16_long_context", "compose_attention: combine(normaliser(score(q, k), mask), v)", 2,
        "minitorch_attn.functional.anatomy", "compose_attention",
        hint="compose the three parts: score q against k, normalise the scores with the mask, combine with v",
    ),
    Exercise(
        "16.3", "16_long_context", "additive_score: Bahdanau's score vᵀ tanh(W q_i + U k_j)", 3,
        "minitorch_attn.functional.anatomy", "additive_score",
        hint="return vᵀ tanh(W q_i + U k_j) for every pair, shape (B, Nq, Nk)",
    ),
    # ---- lesson 17: a pretrained encoder (add entries below this line) ----------------------------------
    Exercise(
        "17.1", "17_pretrained_encoder", "layer_names: BERT's weight names for one encoder layer", 2,
        "minitorch_attn.pretrained", "layer_names",
        hint="map each of our names in the layer to the checkpoint tensor(s) it is made of",
    ),
    Exercise(
        "17.2", "17_pretrained_encoder", "mean_pool: the mean over the real tokens of each sentence", 2,
        "minitorch_attn.pretrained", "mean_pool",
        hint="average each sentence's hidden states over its real tokens only",
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
