"""A character-level corpus, as nanoGPT's `shakespeare_char`: read a text file from a path (nothing is
downloaded), map each distinct character to an id, split 90/10 into train and validation, and sample
random windows.

    corpus = load_char_corpus()                      # --data PATH, else $MTA_DATA, else the default place
    corpus = load_char_corpus("input.txt", max_chars=20_000)
    x, y = corpus.get_batch("train", batch_size=12, block_size=64, rng=np.random.default_rng(0))
    corpus.decode(corpus.encode("hello")) == "hello"

Where the text comes from, in order: the `path` argument; the environment variable MTA_DATA; the file
`../shared/data/tinyshakespeare.txt` next to the project folder (where CI keeps it). With none of them the
error says exactly where to put a file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ENV_VAR = "MTA_DATA"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CORPUS = PROJECT_ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
SOURCE_HINT = ("tiny Shakespeare is the 1.1 MB file `input.txt` of Karpathy's char-rnn repository "
               "(data/tinyshakespeare/input.txt); any UTF-8 text file works")


class CorpusNotFound(FileNotFoundError):
    pass


def find_corpus(path: str | os.PathLike | None = None) -> Path:
    """The corpus file to read: `path`, else $MTA_DATA, else DEFAULT_CORPUS; raises CorpusNotFound saying
    where to put one."""
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise CorpusNotFound(f"no text file at {p.resolve()} (given as the corpus path). Pass the path of a "
                                 f"UTF-8 text file; {SOURCE_HINT}.")
        return p
    env = os.environ.get(ENV_VAR)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise CorpusNotFound(f"${ENV_VAR} is set to {env!r}, but there is no file there. Point it at a UTF-8 "
                                 f"text file; {SOURCE_HINT}.")
        return p
    if DEFAULT_CORPUS.is_file():
        return DEFAULT_CORPUS
    raise CorpusNotFound(
        f"no corpus found. Put a text file at {DEFAULT_CORPUS} (the default place), or set "
        f"{ENV_VAR}=/path/to/file.txt, or pass --data /path/to/file.txt (load_char_corpus(path) in Python); "
        f"{SOURCE_HINT}.")


@dataclass
class CharCorpus:
    """The text, its vocabulary (sorted distinct characters) and the encoded 90/10 split."""

    text: str
    chars: list[str]
    train_data: np.ndarray = field(repr=False)
    val_data: np.ndarray = field(repr=False)
    source: str = ""

    def __post_init__(self):
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, s: str) -> np.ndarray:
        unknown = sorted(set(s) - set(self.stoi))
        if unknown:
            raise KeyError(f"encode: characters {unknown!r} are not in the corpus vocabulary of {self.vocab_size}")
        return np.array([self.stoi[c] for c in s], dtype=np.int64)

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in np.asarray(ids).ravel())

    def split(self, name: str) -> np.ndarray:
        if name not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val'; got {name!r}")
        return self.train_data if name == "train" else self.val_data

    def get_batch(self, split: str, batch_size: int, block_size: int, rng: np.random.Generator):
        """nanoGPT's get_batch: `batch_size` random windows; x = data[i : i + block], y = data[i + 1 : i + 1 + block]
        (the next character at every position). Returns int64 arrays (batch_size, block_size)."""
        data = self.split(split)
        if len(data) <= block_size:
            raise ValueError(f"the {split} split has {len(data)} characters, too few for block_size={block_size}")
        ix = rng.integers(0, len(data) - block_size, size=batch_size)
        offsets = np.arange(block_size)
        x = data[ix[:, None] + offsets]
        y = data[ix[:, None] + offsets + 1]
        return x.astype(np.int64), y.astype(np.int64)


def char_corpus(text: str, source: str = "<text>", chars: list[str] | None = None) -> CharCorpus:
    """A CharCorpus from a string: vocabulary = sorted distinct characters (or `chars`), split 90/10."""
    if not text:
        raise ValueError("char_corpus: the text is empty")
    chars = sorted(set(text)) if chars is None else list(chars)
    stoi = {c: i for i, c in enumerate(chars)}
    data = np.array([stoi[c] for c in text], dtype=np.int64)
    n = int(len(data) * 0.9)
    return CharCorpus(text, chars, data[:n], data[n:], source)


def load_char_corpus(path: str | os.PathLike | None = None, max_chars: int | None = None) -> CharCorpus:
    """Read the corpus (see `find_corpus`) and build a CharCorpus; `max_chars` keeps only the first characters
    (the vocabulary is then that slice's)."""
    p = find_corpus(path)
    text = p.read_text(encoding="utf-8")
    if max_chars is not None:
        text = text[:max_chars]
    return char_corpus(text, source=str(p))
