"""The ``~/debug_image`` overlay: keypoints, and matches as tracks from the keyframe position."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["draw_debug_image"]

_KEYPOINT = (0, 200, 255)  # orange
_INLIER_TRACK = (0, 255, 0)  # green
_TRACK_END = (255, 80, 0)  # blue


def draw_debug_image(
    image: np.ndarray,
    keypoints_xy: np.ndarray,
    match_xy0: np.ndarray,
    match_xy1: np.ndarray,
    caption: str = "",
    max_tracks: int = 500,
) -> np.ndarray:
    """BGR uint8 overlay of ``image`` (grey or BGR): keypoints as dots, matches as keyframe->current lines."""
    canvas = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()
    for x, y in np.round(keypoints_xy).astype(int):
        cv2.circle(canvas, (int(x), int(y)), 1, _KEYPOINT, -1)
    step = max(1, len(match_xy0) // max_tracks)
    for (x0, y0), (x1, y1) in zip(
        np.round(match_xy0[::step]).astype(int), np.round(match_xy1[::step]).astype(int), strict=True
    ):
        cv2.line(canvas, (int(x0), int(y0)), (int(x1), int(y1)), _INLIER_TRACK, 1, cv2.LINE_AA)
        cv2.circle(canvas, (int(x1), int(y1)), 2, _TRACK_END, -1)
    if caption:
        cv2.putText(canvas, caption, (5, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(canvas, caption, (5, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas
