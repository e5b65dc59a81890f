"""Literal and two-hop needles: retrieval by an exact match, and retrieval that needs two lookups (lesson 16).

Long-context benchmarks moved past the plain needle test because a single attention head solves it: the
question repeats the needle's words, so the query can find the needle by a literal match at any depth.
NoLiMa (Modarressi et al. 2025) removes the literal overlap between question and needle; BABILong (Kuratov et
al. 2024) hides bAbI's multi-fact questions in long text; Summary of a Haystack (Laban et al. 2024) asks for
summaries that combine many scattered facts. The toy version here keeps the one thing they share: the answer
takes more than one lookup.

Tokens. There are `n_entities` = E entities 0 .. E - 1. A FACT "a → b" is one token, id a·E + b (think of a
whole sentence "a's key is b" already read into one position); a QUERY "? a" is one token, id E·E + a; and
the model answers entity v with the ANSWER token "!v", id E·E + E + v (its own row of the output layer, which
the GPT ties to the input embedding). So the vocabulary has E·E + 2E tokens (`fact_vocab_size`). A sample of
length L is L - 1 facts, then the query last.

    literal needle:   the needle "A → v" at the depth, every other fact a distractor "x → y" with x ≠ A;
                      the query is "? A" and the answer v. The query token names A, the needle's subject: one
                      attention head whose score matches subjects finds the needle and copies its object v.

    two-hop needle:   the bridge "A → B" and the answer fact "B → v" (A ≠ B), distractors "x → y" with
                      x ∉ {A, B}; the query is "? A" and the answer v. Nothing in the query matches the answer
                      fact: a first lookup must find A's object B, a second the fact whose subject is B.
                      One attention layer cannot chain them (at the query, a fact's weight depends on the
                      query and that fact alone, and the answer fact has nothing to do with A); two can.

Depth. The facts sit at positions 0 .. L - 2 (the query is at L - 1); a relative depth p in [0, 1] puts the
needle (the literal needle, or the two-hop answer fact "B → v") at

    fact_position(L, p) = floor(p · (L - 2) + 0.5)     (round half up, as `data.needle.key_position`)

and the two-hop bridge "A → B" at a uniformly random other position (before or after it). The objects v, y
are uniform over all E entities. Lengths: at least 2 (literal) or 3 (two-hop); entities: at least 2 / 3.
Every generator takes a seed (or a np.random.Generator) and touches no global random state.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["KINDS", "FactBatch", "answer_token", "decode_facts", "fact_lm_batch", "fact_position", "fact_task",
           "fact_token", "fact_vocab_size", "query_token"]

KINDS = ("literal", "two_hop")
_MIN = {"literal": 2, "two_hop": 3}  # lengths: facts needed + the query; also the entities needed


class FactBatch(NamedTuple):
    tokens: np.ndarray  # (n, L) int64: facts, the query last
    targets: np.ndarray  # (n,) int64: the answer entity v
    answer_pos: np.ndarray  # (n,) int64: the position of the fact holding v ("A → v" or "B → v")
    bridge_pos: np.ndarray  # (n,) int64: the position of "A → B" (two-hop), -1 for the literal needle
    depth: np.ndarray  # (n,) float64: the relative depth of the answer fact


def fact_vocab_size(n_entities: int = 8) -> int:
    """E·E fact tokens "a → b", E query tokens "? a", E answer tokens "!v"."""
    return n_entities * n_entities + 2 * n_entities


def fact_token(subject, obj, n_entities: int = 8):
    """The id of the fact "subject → obj": subject·E + obj (works on arrays)."""
    return np.asarray(subject) * n_entities + np.asarray(obj)


def query_token(subject, n_entities: int = 8):
    """The id of the query "? subject": E·E + subject (works on arrays)."""
    return n_entities * n_entities + np.asarray(subject)


def answer_token(entity, n_entities: int = 8):
    """The id of the answer "!entity": E·E + E + entity (works on arrays)."""
    return n_entities * n_entities + n_entities + np.asarray(entity)


def _check(kind: str, length, n_entities) -> None:
    if kind not in KINDS:
        raise ValueError(f"fact task: kind must be one of {KINDS}; got {kind!r}")
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)):
        raise TypeError(f"fact task: length must be an integer; got {length!r}")
    if length < _MIN[kind]:
        raise ValueError(f"fact task: length={length} is too short for a {kind} needle; it needs at least "
                         f"{_MIN[kind]} tokens ({_MIN[kind] - 1} fact(s) and the query)")
    if isinstance(n_entities, bool) or not isinstance(n_entities, (int, np.integer)) or n_entities < _MIN[kind]:
        raise ValueError(f"fact task: a {kind} needle needs n_entities >= {_MIN[kind]} (distinct subjects, and "
                         f"distractors whose subjects differ from them); got {n_entities!r}")


def fact_position(length: int, depth) -> np.ndarray:
    """The position of a needle at relative depth `depth` (a float or an array, each in [0, 1]) among the
    length - 1 facts: floor(depth · (length - 2) + 0.5). ValueError for length < 2 or a depth outside [0, 1]."""
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 2:
        raise ValueError(f"fact_position: length must be an integer >= 2 (a fact and the query); got {length!r}")
    d = np.asarray(depth, dtype=np.float64)
    bad = ~((d >= 0.0) & (d <= 1.0))  # NaN too
    if bad.any():
        raise ValueError(f"fact_position: depth must be in [0, 1]; got depth={float(d[bad].ravel()[0])!r} "
                         f"(length={length})")
    return np.floor(d * (length - 2) + 0.5).astype(np.int64)


def fact_task(kind: str, n: int, length: int, depth=None, n_entities: int = 8,
              seed: int | np.random.Generator = 0) -> FactBatch:
    """`n` samples of the `kind` ("literal" or "two_hop") needle task, `length` tokens each (module docstring).

    depth: a float in [0, 1], an array of n depths, or None (the answer fact at a uniformly random position)."""
    _check(kind, length, n_entities)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"fact task: n must be a positive integer; got {n!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    E, n_facts, rows = n_entities, length - 1, np.arange(n)
    if depth is None:
        answer_pos = rng.integers(0, n_facts, size=n)
        depths = answer_pos / (n_facts - 1) if n_facts > 1 else np.zeros(n)
    else:
        depths = np.asarray(depth, dtype=np.float64)
        if depths.ndim > 1 or (depths.ndim == 1 and depths.shape != (n,)):
            raise ValueError(f"fact task: depth must be a float or an array of n={n} depths; got shape "
                             f"{depths.shape}")
        depths = np.broadcast_to(depths, (n,)).copy()
        answer_pos = fact_position(length, depths)
    ### BEGIN SOLUTION
    a = rng.integers(0, E, size=n)  # the subject the query names
    if kind == "literal":
        b = a  # the answer fact's subject is A itself
        bridge_pos = np.full(n, -1)
        subjects = (a[:, None] + rng.integers(1, E, size=(n, n_facts))) % E  # any entity but A
    else:
        b = (a + rng.integers(1, E, size=n)) % E  # B != A
        bridge_pos = (answer_pos + rng.integers(1, n_facts, size=n)) % n_facts  # any position but the answer's
        # distractor subjects: uniform over the E - 2 entities that are neither A nor B
        s = rng.integers(0, E - 2, size=(n, n_facts))
        lo, hi = np.minimum(a, b)[:, None], np.maximum(a, b)[:, None]
        subjects = s + (s >= lo) + (s + 1 >= hi)
    targets = rng.integers(0, E, size=n)
    tokens = fact_token(subjects, rng.integers(0, E, size=(n, n_facts)), E)
    tokens[rows, answer_pos] = fact_token(b, targets, E)
    if kind == "two_hop":
        tokens[rows, bridge_pos] = fact_token(a, b, E)
    tokens = np.concatenate([tokens, query_token(a, E)[:, None]], axis=1)
    ### END SOLUTION
    return FactBatch(tokens.astype(np.int64), targets.astype(np.int64), answer_pos.astype(np.int64),
                     bridge_pos.astype(np.int64), depths)


def fact_lm_batch(kind: str, n: int, lengths, n_entities: int = 8,
                  seed: int | np.random.Generator = 0) -> tuple[np.ndarray, np.ndarray]:
    """A training batch `(idx, targets)` for `GPT(idx, targets)`, as `data.needle.needle_lm_batch`: one length
    drawn from `lengths` for the whole batch, needles at random depths, targets -1 (ignored) except at the
    last position, which holds the answer token "!v" (`answer_token`)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    choices = np.atleast_1d(np.asarray(lengths))
    if choices.ndim != 1 or choices.size == 0 or choices.dtype.kind not in "iu":
        raise ValueError(f"fact_lm_batch: lengths must be an int or a non-empty sequence of ints; got {lengths!r}")
    batch = fact_task(kind, n, int(rng.choice(choices)), None, n_entities, rng)
    targets = np.full_like(batch.tokens, -1)
    targets[:, -1] = answer_token(batch.targets, n_entities)
    return batch.tokens, targets


def decode_facts(tokens, n_entities: int = 8) -> str:
    """Token ids -> text: entities as letters A, B, ... (beyond 'Z' as <id>), facts "A→B", queries "?A",
    answers "!A"."""
    def name(e):
        return chr(ord("A") + e) if e < 26 else f"<{e}>"

    def one(t):
        if t >= n_entities * n_entities + n_entities:
            return "!" + name(t - n_entities * n_entities - n_entities)
        if t >= n_entities * n_entities:
            return "?" + name(t - n_entities * n_entities)
        return f"{name(t // n_entities)}→{name(t % n_entities)}"

    return " ".join(one(t) for t in np.asarray(tokens).ravel().tolist())


