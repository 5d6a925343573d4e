"""Keyframes remembered since the map started, and which of them see a new keyframe's area (covisibility).

A keyframe chain only knows its last few keyframes: when the camera comes back to a part of the scene it left
(or moves slowly along it), the window no longer holds the keyframes that mapped it, and the new keyframes drift
away from the old map instead of being tied to it.  Projecting every remembered keyframe's points into the new
keyframe's view finds those keyframes cheaply (no descriptors: a few hundred points each), so the local map can
use them: monocular bundle adjustment fuses their landmarks and holds them fixed, RGB-D pose refinement adds
their depth points.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import numpy as np

from ..geometry.pose import invert_pose, transform_points
from .keyframe import Keyframe

__all__ = ["KeyframeMemory", "KEYFRAME_MEMORY", "MIN_COVISIBLE_POINTS"]

#: Keyframes remembered for the covisibility search (bounded memory and search time for long-running nodes).
KEYFRAME_MEMORY = 200
#: An older keyframe is covisible when this many of its points project into the new keyframe's image.
MIN_COVISIBLE_POINTS = 40


class KeyframeMemory:
    """The keyframes since the map (re)started, oldest first, at most ``KEYFRAME_MEMORY``."""

    def __init__(self, size: int = KEYFRAME_MEMORY):
        self._keyframes: deque[Keyframe] = deque(maxlen=size)

    def clear(self) -> None:
        """A restarted map (after a loss) has another origin and scale: older keyframes cannot constrain it."""
        self._keyframes.clear()

    def remember(self, keyframe: Keyframe) -> None:
        if not any(k is keyframe for k in self._keyframes):
            self._keyframes.append(keyframe)

    def __len__(self) -> int:
        return len(self._keyframes)

    def covisible(
        self, pose_world: np.ndarray, K: np.ndarray, exclude: Iterable[Keyframe], limit: int
    ) -> list[Keyframe]:
        """Up to ``limit`` remembered keyframes, not in ``exclude``, with at least ``MIN_COVISIBLE_POINTS`` points
        in front of a camera at ``pose_world`` (T_world_cam) and inside its image (principal point at the centre);
        the ``limit`` with the most such points, returned oldest first."""
        if limit <= 0:
            return []
        skip = {id(k) for k in exclude}
        T_cam_world = invert_pose(pose_world)
        width, height = 2.0 * K[0, 2], 2.0 * K[1, 2]
        scored = []
        for order, older in enumerate(self._keyframes):
            if id(older) in skip:
                continue
            known = np.isfinite(older.points[:, 0])
            camera = transform_points(T_cam_world @ older.pose_world, older.points[known])
            camera = camera[camera[:, 2] > 1e-6]
            uv = (camera @ K.T)[:, :2] / camera[:, 2:3]
            visible = int(np.sum((uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (uv[:, 1] < height)))
            if visible >= MIN_COVISIBLE_POINTS:
                scored.append((visible, order, older))
        best = sorted(scored, key=lambda item: -item[0])[:limit]
        return [older for _, _, older in sorted(best, key=lambda item: item[1])]
