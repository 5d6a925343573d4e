"""Visual odometry (ROS-free): ``VisualOdometry(OdometryConfig).process(image, t, camera, depth) -> FrameResult``."""

from .config import ConfigError, OdometryConfig
from .replay import run_sequence
from .types import FrameResult, TrackingState
from .vo import OdometryInputError, VisualOdometry

__all__ = [
    "ConfigError",
    "FrameResult",
    "OdometryConfig",
    "OdometryInputError",
    "TrackingState",
    "VisualOdometry",
    "run_sequence",
]
