"""What the odometry reports per frame (contract shared with the ROS node and the evaluation)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from ..features.types import Features
from ..matching.base import Matches

__all__ = ["TrackingState", "FrameResult"]


class TrackingState(str, enum.Enum):
    """INITIALIZING: no metric/scale reference yet (monocular before enough parallax); rotation is tracked.
    TRACKING: pose from a well-supported estimate.  DEGRADED: pose estimated from few inliers (covariance
    inflated).  LOST: no estimate; the pose is held and the covariance is large."""

    INITIALIZING = "INITIALIZING"
    TRACKING = "TRACKING"
    DEGRADED = "DEGRADED"
    LOST = "LOST"


@dataclass
class FrameResult:
    """One processed frame.

    ``relative_pose`` is ``T_prev_cur`` (previous processed frame -> this one).  ``covariance`` (6x6, ROS
    order x y z rot_x rot_y rot_z, perturbation in the current camera frame) is the uncertainty of this frame's
    pose relative to its keyframe, i.e. of the motion estimated in this frame; never all zero, large and
    finite when LOST.  ``matches`` index ``keyframe_features`` (column 0) and ``features`` (column 1);
    ``inlier_mask`` marks the matches the pose estimate kept.
    """

    timestamp: float
    state: TrackingState
    pose_world_cam: np.ndarray
    relative_pose: np.ndarray
    covariance: np.ndarray
    features: Features
    keyframe_features: Features
    matches: Matches
    inliers: int
    is_keyframe: bool
    timings_ms: dict[str, float] = field(default_factory=dict)
    inlier_mask: np.ndarray | None = None
    #: Median rotation-compensated parallax to the keyframe (working-resolution pixels).
    parallax_px: float = 0.0
    #: How the pose was obtained: first, pnp, pnp-static (translation kept), essential, rotation, depth (RGB-D:
    #: aligned by depth alone, ``depth_alignment``), lost.
    method: str = ""
