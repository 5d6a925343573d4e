"""Depth of keypoints from a depth image, robust to the edges learned keypoints like to sit on."""

from __future__ import annotations

import numpy as np

from ..geometry.camera import resized_pixels

__all__ = ["keypoint_depth"]


def keypoint_depth(
    depth: np.ndarray,
    keypoints_xy: np.ndarray,
    image_size: tuple[int, int],
    radius: int = 2,
    min_valid_fraction: float = 0.5,
    max_relative_spread: float = 0.1,
    depth_min: float = 0.1,
    depth_max: float = 20.0,
) -> np.ndarray:
    """Depth (N,) of keypoints given in an image of ``image_size`` (h, w), NaN where it cannot be trusted.

    Each keypoint takes the median of the valid depths in its (2 radius + 1)^2 neighbourhood at depth resolution
    (the depth image may be larger than the keypoints' image).  Keypoints on occlusion boundaries would otherwise
    take the depth of whichever side the nearest sample falls on (and colour/depth misregistration moves the
    boundary), so a neighbourhood with fewer than ``min_valid_fraction`` valid pixels, or one spanning a depth
    discontinuity ``(max - min) > max_relative_spread * median``, gives NaN: no point is better than a wrong one
    for PnP.  ``radius = 0`` is the nearest sample.
    """
    count = len(keypoints_xy)
    if count == 0:
        return np.zeros(0)
    height, width = image_size
    sx, sy = depth.shape[1] / width, depth.shape[0] / height
    xy = np.asarray(keypoints_xy, np.float64)
    cols, rows = np.round(resized_pixels(xy, (sx, sy))).astype(int).T
    offsets = np.arange(-radius, radius + 1)
    window_rows = np.clip(rows[:, None, None] + offsets[None, :, None], 0, depth.shape[0] - 1)
    window_cols = np.clip(cols[:, None, None] + offsets[None, None, :], 0, depth.shape[1] - 1)
    z = depth[window_rows, window_cols].reshape(count, -1).astype(np.float64)
    valid = np.isfinite(z) & (z >= depth_min) & (z <= depth_max)
    # Sorted with the invalid samples last (inf): min, max and median of the valid ones by index (nanmedian is slow).
    z = np.sort(np.where(valid, z, np.inf), axis=1)
    n = valid.sum(axis=1)
    needed = max(1, int(np.ceil(min_valid_fraction * z.shape[1])))
    result = np.full(count, np.nan)
    enough = np.flatnonzero(n >= needed)
    if len(enough):
        n = n[enough]
        rows = z[enough]
        lowest, highest = rows[:, 0], rows[np.arange(len(enough)), n - 1]
        median = 0.5 * (rows[np.arange(len(enough)), (n - 1) // 2] + rows[np.arange(len(enough)), n // 2])
        result[enough] = np.where(highest - lowest <= max_relative_spread * median, median, np.nan)
    return result
