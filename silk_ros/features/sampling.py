"""Reading a map between its cells: the parabola vertex through a peak and its two neighbours (sub-pixel keypoints,
refined matches), bilinear weights of the four nearest cells (context descriptors, refined matches), unit rows."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["bilinear_corners", "parabola_offset", "unit_rows"]


def parabola_offset(before: np.ndarray, centre: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Offset (cells, clipped to +-0.5) of the vertex of the parabola through three samples a cell apart; 0 where
    they do not bend down (no peak)."""
    curvature = before - 2.0 * centre + after
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.where(curvature < 0, 0.5 * (before - after) / curvature, 0.0)
    return np.clip(np.nan_to_num(delta), -0.5, 0.5)


def bilinear_corners(frac: np.ndarray) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(dx, dy, weight)`` of the four cells around points at ``frac`` (N, 2) (x, y) past their top-left cell."""
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        yield dx, dy, (frac[:, 0] if dx else 1 - frac[:, 0]) * (frac[:, 1] if dy else 1 - frac[:, 1])


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row L2-normalised (a zero row stays zero)."""
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
