"""Data for the Hopfield lessons (07-08), generated from a seed: ±1 patterns and noisy probes, clustered unit
patterns, glyph images, and multiple-instance-learning bags with a planted signature.

Layout: patterns are rows, (N, d), as in `minitorch_attn.functional.hopfield`. Images are (N, H, W) arrays with
pixels ±1 (ink = +1, background = -1); `.reshape(N, -1)` makes them patterns.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def random_patterns(n: int, d: int, seed=0, dtype=np.float64) -> np.ndarray:
    """`n` independent patterns of `d` random ±1 entries, (n, d)."""
    if n < 1 or d < 1:
        raise ValueError(f"random_patterns needs n >= 1 and d >= 1; got n={n}, d={d}")
    return (2 * _rng(seed).integers(0, 2, size=(n, d)) - 1).astype(dtype)


def flip_bits(X, n_flips: int, seed=0) -> np.ndarray:
    """A copy of the ±1 patterns X (..., d) with exactly `n_flips` entries of each row negated (at random
    positions, chosen independently per row)."""
    X = np.asarray(X)
    d = X.shape[-1]
    if not 0 <= n_flips <= d:
        raise ValueError(f"flip_bits: n_flips must be in [0, d={d}]; got {n_flips}")
    rows = X.reshape(-1, d).copy()
    order = np.argsort(_rng(seed).random(rows.shape), axis=1)[:, :n_flips]
    np.put_along_axis(rows, order, -np.take_along_axis(rows, order, axis=1), axis=1)
    return rows.reshape(X.shape)


def clustered_patterns(n_clusters: int = 4, per_cluster: int = 8, d: int = 64, spread: float = 0.35,
                       seed=0, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm patterns in clusters: each is normalise(centre + spread·noise/√d) around one of
    `n_clusters` random unit centres. Returns (X (n_clusters·per_cluster, d), cluster id of each row);
    rows are grouped by cluster."""
    rng = _rng(seed)
    centres = rng.standard_normal((n_clusters, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noise = rng.standard_normal((n_clusters, per_cluster, d)) * spread / np.sqrt(d)
    X = (centres[:, None, :] + noise).reshape(-1, d)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(dtype), np.repeat(np.arange(n_clusters), per_cluster)


def glyphs(n: int, size: int = 16, strokes: int = 4, seed=0, dtype=np.float64) -> np.ndarray:
    """`n` made-up characters, (n, size, size) with ink +1 on background -1: each glyph is `strokes` thick
    line segments between points of a coarse 4 x 4 grid, so glyphs look like letters of an unknown
    alphabet. All glyphs are distinct."""
    if n < 1 or size < 8 or strokes < 1:
        raise ValueError(f"glyphs needs n >= 1, size >= 8 and strokes >= 1; got {n}, {size}, {strokes}")
    rng = _rng(seed)
    grid = np.linspace(2, size - 3, 4)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    out, seen = [], set()
    while len(out) < n:
        img = np.zeros((size, size), dtype=bool)
        for _ in range(strokes):
            (r0, c0), (r1, c1) = rng.integers(0, 4, size=(2, 2))
            if (r0, c0) == (r1, c1):
                r1 = (r1 + 2) % 4
            p0, p1 = np.array([grid[r0], grid[c0]]), np.array([grid[r1], grid[c1]])
            seg = p1 - p0
            t = np.clip(((yy - p0[0]) * seg[0] + (xx - p0[1]) * seg[1]) / (seg @ seg), 0, 1)
            dist = np.hypot(yy - (p0[0] + t * seg[0]), xx - (p0[1] + t * seg[1]))
            img |= dist <= 0.9
        key = img.tobytes()
        if key not in seen:
            seen.add(key)
            out.append(img)
    return np.where(np.stack(out), 1.0, -1.0).astype(dtype)


def corrupt(images, fraction: float = 0.2, seed=0) -> np.ndarray:
    """±1 images with a `fraction` of their pixels flipped (the same count in each image)."""
    images = np.asarray(images)
    n_pix = int(np.prod(images.shape[1:]))
    flat = flip_bits(images.reshape(len(images), n_pix), int(round(fraction * n_pix)), seed=seed)
    return flat.reshape(images.shape)


def mask_half(images, half: str = "bottom") -> np.ndarray:
    """±1 images with one half set to 0 ("unknown": it adds nothing to a dot product with a stored image)."""
    out = np.array(images, dtype=np.float64 if np.asarray(images).dtype.kind != "f" else None, copy=True)
    h, w = out.shape[-2:]
    halves = {"bottom": (slice(h // 2, None), slice(None)), "top": (slice(None, h // 2), slice(None)),
              "left": (slice(None), slice(None, w // 2)), "right": (slice(None), slice(w // 2, None))}
    if half not in halves:
        raise ValueError(f"mask_half: half must be one of {', '.join(halves)}; got {half!r}")
    out[(Ellipsis, *halves[half])] = 0.0
    return out


class Bags(NamedTuple):
    instances: np.ndarray  # (n_bags, bag_size, d) float, entries ±1
    labels: np.ndarray  # (n_bags,) int: 1 when the bag holds the signature
    planted: np.ndarray  # (n_bags,) int: the signature's position in a positive bag, -1 in a negative one


def mil_bags(n_bags: int, bag_size: int = 64, d: int = 16, signature=None, seed=0, dtype=np.float32) -> Bags:
    """Multiple-instance learning: bags of `bag_size` random ±1 patterns of size d; half the bags (at random)
    are positive and hold the `signature` (by default a fixed pattern drawn from seed 12345) at a random
    position. No other instance equals the signature, so a bag's label is exactly "the signature is in it".
    Averaging a bag washes the one planted instance out (it moves the mean by 1/bag_size)."""
    if bag_size < 2 or d < 4:
        raise ValueError(f"mil_bags needs bag_size >= 2 and d >= 4; got {bag_size}, {d}")
    sig = default_signature(d) if signature is None else np.asarray(signature, dtype=np.float64)
    if sig.shape != (d,):
        raise ValueError(f"mil_bags: the signature must have shape ({d},); got {sig.shape}")
    rng = _rng(seed)
    X = (2 * rng.integers(0, 2, size=(n_bags, bag_size, d)) - 1).astype(np.float64)
    clash = np.all(X == sig, axis=-1)
    X[clash] = -X[clash]  # a random instance equal to the signature would make a negative bag positive
    labels = rng.integers(0, 2, size=n_bags)
    planted = np.where(labels == 1, rng.integers(0, bag_size, size=n_bags), -1)
    pos = labels == 1
    X[np.nonzero(pos)[0], planted[pos]] = sig
    return Bags(X.astype(dtype), labels.astype(np.int64), planted.astype(np.int64))


def default_signature(d: int = 16) -> np.ndarray:
    return (2 * np.random.default_rng(12345).integers(0, 2, size=d) - 1).astype(np.float64)
