"""SiLK's own matchers on descriptor similarity: mutual nearest neighbour, ratio test, double-softmax.

Float descriptors are compared by cosine similarity (they are L2-normalised); binary descriptors
(ORB) by Hamming distance, converted to a similarity in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..features.types import Features
from .base import Matches

__all__ = ["MutualNearestNeighbour", "RatioTest", "DoubleSoftmax", "similarity", "mutual_within_radius"]


def similarity(features0: Features, features1: Features) -> np.ndarray:
    """(N0, N1) similarity: cosine for float descriptors, 1 - hamming / bits for binary ones."""
    d0, d1 = features0.descriptors, features1.descriptors
    if features0.is_binary != features1.is_binary:
        raise ValueError("cannot match binary descriptors against float descriptors")
    if features0.is_binary:
        bits = d0.shape[1] * 8
        x0 = np.unpackbits(d0, axis=1).astype(np.float32)
        x1 = np.unpackbits(d1, axis=1).astype(np.float32)
        # hamming = |x0| + |x1| - 2 x0.x1
        hamming = x0.sum(1, keepdims=True) + x1.sum(1)[None] - 2.0 * (x0 @ x1.T)
        return 1.0 - hamming / bits
    return d0.astype(np.float32) @ d1.astype(np.float32).T


def _mutual(sim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    best1 = sim.argmax(axis=1)
    best0 = sim.argmax(axis=0)
    i = np.flatnonzero(best0[best1] == np.arange(sim.shape[0]))
    return i, best1[i]


def mutual_within_radius(features0: Features, predicted0: np.ndarray, features1: Features, pixels1: np.ndarray,
                         radius: float) -> Matches:
    """Mutual nearest neighbours among the pairs whose view-1 pixel lies within ``radius`` of where the view-0
    feature is predicted (``predicted0``, NaN: no prediction): a descriptor only has to be the most similar in its
    neighbourhood, not in the whole image, which keeps matches on repetitive or weak texture (ORB-SLAM's search
    by projection)."""
    if _empty_if_needed(features0, features1):
        return Matches.empty()
    sim = similarity(features0, features1)
    with np.errstate(invalid="ignore"):
        near = ((predicted0[:, None, :] - pixels1[None, :, :]) ** 2).sum(-1) <= radius * radius
    sim = np.where(near, sim, -np.inf)
    i, j = _mutual(sim)
    keep = near[i, j]
    i, j = i[keep], j[keep]
    return Matches(np.stack([i, j], 1).astype(np.int64), ((sim[i, j] + 1) / 2).astype(np.float32))


def _empty_if_needed(features0: Features, features1: Features) -> bool:
    return len(features0) == 0 or len(features1) == 0


@dataclass
class MutualNearestNeighbour:
    """Mutual nearest neighbours, optionally with a minimum similarity."""

    min_similarity: float = -1.0

    def __call__(self, features0: Features, features1: Features) -> Matches:
        if _empty_if_needed(features0, features1):
            return Matches.empty()
        sim = similarity(features0, features1)
        i, j = _mutual(sim)
        s = sim[i, j]
        keep = s >= self.min_similarity
        return Matches(np.stack([i[keep], j[keep]], 1).astype(np.int64), ((s[keep] + 1) / 2).astype(np.float32))


@dataclass
class RatioTest:
    """Lowe's ratio test on descriptor distances (mutual check on by default)."""

    ratio: float = 0.9
    mutual: bool = True

    def __call__(self, features0: Features, features1: Features) -> Matches:
        if _empty_if_needed(features0, features1) or len(features1) < 2:
            return Matches.empty()
        sim = similarity(features0, features1)
        # For unit vectors the squared distance is 2 - 2 cos; for binary it is proportional to 1 - sim.
        dist = np.sqrt(np.maximum(2.0 - 2.0 * sim, 0.0)) if not features0.is_binary else 1.0 - sim
        two = np.argpartition(dist, 1, axis=1)[:, :2]
        rows = np.arange(len(dist))
        d_a, d_b = dist[rows, two[:, 0]], dist[rows, two[:, 1]]
        first = np.where(d_a <= d_b, two[:, 0], two[:, 1])
        d1, d2 = np.minimum(d_a, d_b), np.maximum(d_a, d_b)
        keep = d1 < self.ratio * d2
        if self.mutual:
            keep &= dist.argmin(axis=0)[first] == rows
        i = rows[keep]
        j = first[keep]
        confidence = 1.0 - d1[keep] / np.maximum(d2[keep], 1e-9)
        return Matches(np.stack([i, j], 1).astype(np.int64), confidence.astype(np.float32))


@dataclass
class DoubleSoftmax:
    """SiLK's double-softmax: P = softmax_rows(S / T) * softmax_cols(S / T); mutual matches with P > threshold.

    ``temperature`` is the one SiLK-µ's descriptors were trained at (cosine / 0.05: the paper's 0.1 on descriptors
    scaled by sqrt(2)); at 0.1 the softmax is so flat on them that no match passes the threshold.  ``threshold``
    was chosen with it on the validation rooms of ``training.pose_check`` (three seeds; MODEL_CARD.md "Session 29")."""

    temperature: float = 0.05
    threshold: float = 0.05

    def __call__(self, features0: Features, features1: Features) -> Matches:
        if _empty_if_needed(features0, features1):
            return Matches.empty()
        logits = similarity(features0, features1) / self.temperature
        rows = np.exp(logits - logits.max(axis=1, keepdims=True))
        rows /= rows.sum(axis=1, keepdims=True)
        cols = np.exp(logits - logits.max(axis=0, keepdims=True))
        cols /= cols.sum(axis=0, keepdims=True)
        prob = rows * cols
        i, j = _mutual(prob)
        p = prob[i, j]
        keep = p > self.threshold
        return Matches(np.stack([i[keep], j[keep]], 1).astype(np.int64), p[keep].astype(np.float32))
