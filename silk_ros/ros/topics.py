"""Topic names and types of silk_vo_node (one list for the node, its harness, the launch/RViz tests)."""

from __future__ import annotations

from geometry_msgs.msg import PoseWithCovarianceStamped
from nav_msgs.msg import Odometry, Path
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

__all__ = ["INPUTS", "OUTPUTS", "NODE_NAME"]

NODE_NAME = "silk_vo_node"

#: subscribed topics (relative: remapped by the launch file) -> type
INPUTS = {
    "image": Image,
    "image/compressed": CompressedImage,
    "camera_info": CameraInfo,
    "depth": Image,
}

#: published topics, private to the node (``~/<name>``) -> type; plus /diagnostics and /tf
OUTPUTS = {
    "keypoints": PointCloud2,
    "matches": PointCloud2,
    "relative_pose": PoseWithCovarianceStamped,
    "odometry": Odometry,
    "path": Path,
    "debug_image": Image,
}
