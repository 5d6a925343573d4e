"""The one matcher interface: two ``Features`` in, match indices and per-match confidence out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..features.types import Features
from .refinement import refine_matched_points

__all__ = ["Matches", "Matcher"]


@dataclass
class Matches:
    """``indices``: (M, 2) int64, column 0 indexes features0, column 1 features1.
    ``confidence``: (M,) float32 in [0, 1] (higher is better)."""

    indices: np.ndarray
    confidence: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)

    @classmethod
    def empty(cls) -> Matches:
        return cls(np.zeros((0, 2), np.int64), np.zeros((0,), np.float32))

    def subset(self, keep: np.ndarray) -> Matches:
        return Matches(self.indices[keep], self.confidence[keep])

    def extended(self, other: Matches) -> Matches:
        """These matches, then those of ``other`` between keypoints that both have no match here (one-to-one stays
        one-to-one; where the two disagree, these win)."""
        new = ~np.isin(other.indices[:, 0], self.indices[:, 0]) & ~np.isin(other.indices[:, 1], self.indices[:, 1])
        return Matches(np.concatenate([self.indices, other.indices[new]]),
                       np.concatenate([self.confidence, other.confidence[new]]))

    def points(self, features0: Features, features1: Features) -> tuple[np.ndarray, np.ndarray]:
        """Matched pixel coordinates: two (M, 2) arrays, the second refined to sub-pixel by descriptor correlation when
        both features carry SiLK's descriptor windows (``ExtractorConfig.refine_matches``)."""
        return refine_matched_points(features0, features1, self.indices)


class Matcher(Protocol):
    def __call__(self, features0: Features, features1: Features) -> Matches: ...
