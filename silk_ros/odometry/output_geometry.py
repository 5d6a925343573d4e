"""The node's output geometry, without ROS: the odometry of the robot's base frame from the camera's, its
covariance and velocity, and keypoints back in the pixels of the input image.

The odometry estimates ``T_world_cam`` of the camera *optical* frame, world = the first camera.  With the
extrinsics ``T_base_cam``, ``T_odom_base = T_base_cam @ T_world_cam @ inv(T_base_cam)``: odom is where the base was
at the first frame (REP-105).  Covariances are 6x6 in ROS order (x, y, z, rot_x, rot_y, rot_z).  ``silk_ros.ros.node``
only wraps these numbers in messages.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry.camera import Camera, resized_pixels
from ..geometry.pose import invert_pose, skew, so3_log
from .types import FrameResult, TrackingState

__all__ = ["adjoint", "BaseOdometry", "BaseTwist", "BaseFrameOdometry", "base_twist", "to_input_pixels",
           "viewing_rays", "UNKNOWN_VARIANCE"]

#: variance of every axis of a velocity that cannot be known (first frame, lost, time not advancing)
UNKNOWN_VARIANCE = 1e6


def adjoint(transform: np.ndarray) -> np.ndarray:
    """6x6 adjoint of a pose for (x, y, z, rot_x, rot_y, rot_z) perturbations: moves a covariance between frames."""
    rotation, translation = transform[:3, :3], transform[:3, 3]
    out = np.zeros((6, 6))
    out[:3, :3] = rotation
    out[3:, 3:] = rotation
    out[:3, 3:] = skew(translation) @ rotation
    return out


@dataclass
class BaseOdometry:
    pose: np.ndarray  # T_odom_base
    covariance: np.ndarray  # 6x6, odom axes


@dataclass
class BaseTwist:
    """Velocity of the base frame in base axes; zero with :data:`UNKNOWN_VARIANCE` when it cannot be known."""

    linear: np.ndarray  # (3,) m/s (map units/s monocular)
    angular: np.ndarray  # (3,) rad/s
    covariance: np.ndarray  # 6x6


class BaseFrameOdometry:
    """Frame results -> base-frame odometry.  Keeps the world covariance of the current keyframe's pose: a frame's
    own covariance is relative to its keyframe, so the pose's is the keyframe's plus the frame's."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """The next frame starts a new trajectory (at the odom origin, with no uncertainty carried over)."""
        self._keyframe_covariance = np.zeros((6, 6))

    def update(self, result: FrameResult, base_cam: np.ndarray) -> BaseOdometry:
        """``base_cam``: the extrinsics ``T_base_cam``."""
        odom_base = base_cam @ result.pose_world_cam @ invert_pose(base_cam)
        # The keyframe's accumulated world covariance plus this frame's (given in the current camera frame) moved
        # to the world frame; then expressed in odom axes.
        current = adjoint(result.pose_world_cam) @ result.covariance @ adjoint(result.pose_world_cam).T
        world_covariance = self._keyframe_covariance + current
        if result.is_keyframe:
            self._keyframe_covariance = world_covariance
        return BaseOdometry(odom_base, adjoint(base_cam) @ world_covariance @ adjoint(base_cam).T)


def base_twist(result: FrameResult, base_cam: np.ndarray, previous_stamp: float | None) -> BaseTwist:
    """Velocity of the base frame (base axes) from the frame's relative motion since ``previous_stamp``."""
    dt = None if previous_stamp is None else result.timestamp - previous_stamp
    if dt is None or dt <= 0 or result.state == TrackingState.LOST:
        return BaseTwist(np.zeros(3), np.zeros(3), np.eye(6) * UNKNOWN_VARIANCE)
    motion = base_cam @ result.relative_pose @ invert_pose(base_cam)
    linear, angular = motion[:3, 3] / dt, so3_log(motion[:3, :3]) / dt
    rotated = adjoint(base_cam) @ result.covariance @ adjoint(base_cam).T
    return BaseTwist(linear, angular, rotated / (dt * dt))


def to_input_pixels(xy: np.ndarray, working_size: tuple[int, int], image_shape: tuple) -> np.ndarray:
    """Keypoints of the working resolution ``(h, w)`` -> pixels of the input image (pixel-centre convention)."""
    h, w = working_size
    if (h, w) == tuple(image_shape[:2]):
        return xy
    sx, sy = image_shape[1] / w, image_shape[0] / h
    return resized_pixels(xy, (sx, sy)).astype(np.float32)


def viewing_rays(camera: Camera, keypoints: np.ndarray) -> np.ndarray | None:
    """(N, 3) rays at unit depth in the optical frame of the input-image ``keypoints`` (None when there are none)."""
    if not len(keypoints):
        return None
    return np.column_stack([camera.normalized(keypoints), np.ones(len(keypoints))])
