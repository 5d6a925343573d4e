"""What the odometry keeps of an image: the frame being processed (:class:`Observation`) and the keyframes frames
are tracked against (:class:`Keyframe`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..features.types import Features
from ..geometry.camera import Camera
from ..geometry.pose import transform_points

__all__ = ["Observation", "Keyframe", "carry_points"]


@dataclass
class Observation:
    """One image at working resolution, as every step of the odometry reads it."""

    timestamp: float
    features: Features
    pixels: np.ndarray  # undistorted working-resolution pixels of the features (N, 2)
    depth_points: np.ndarray | None  # RGB-D: (N, 3) in the camera frame, NaN where depth is not trusted
    camera: Camera  # the working camera (undistorts points refined against a keyframe: ``refine_matches``)
    #: the keypoints as detected: each refinement against a keyframe starts again from them
    detected_xy: np.ndarray
    #: monocular with ``depth_scale``: measured depth (m) of each feature, NaN where not trusted (the scale source)
    scale_depth: np.ndarray | None = None
    #: RGB-D with ``depth_alignment``: the depth image as given (m), for depth-only tracking when features fail
    depth_image: np.ndarray | None = None

    @property
    def K(self) -> np.ndarray:  # noqa: N802 - the camera matrix's usual name
        """Working-resolution camera matrix (3, 3)."""
        return self.camera.K


@dataclass
class Keyframe:
    features: Features
    pixels: np.ndarray  # undistorted working-resolution pixels (N, 2)
    pose_world: np.ndarray  # T_world_kf
    points: np.ndarray  # (N, 3) in the keyframe frame, NaN where unknown
    timestamp: float
    #: monocular: id of the map point each feature observes (shared by the keyframes that see it), -1 for none
    landmarks: np.ndarray = None  # type: ignore[assignment]
    #: monocular with ``depth_scale``: measured depth (m) of each feature (``Observation.scale_depth``)
    depth_z: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.landmarks is None:
            self.landmarks = np.full(len(self.pixels), -1, np.int64)

    @property
    def map_size(self) -> int:
        return int(np.isfinite(self.points[:, 0]).sum())


def carry_points(keyframe: Keyframe, i0: np.ndarray, i1: np.ndarray, inliers: np.ndarray, T_new_old: np.ndarray,
                 points: np.ndarray) -> None:
    """Give the new keyframe's features that have no point yet (``points``, filled in place) the old keyframe's
    point of their inlier match, moved into the new frame by ``T_new_old``."""
    fill = inliers & np.isfinite(keyframe.points[i0, 0]) & ~np.isfinite(points[i1, 0])
    points[i1[fill]] = transform_points(T_new_old, keyframe.points[i0[fill]])
