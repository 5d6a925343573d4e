"""rosbags message objects for the bag tools: build them from numpy/Camera, read poses and stamps back.

Messages are rosbags dataclasses from the ROS 2 Kilted typestore (the distribution the project's rclpy wheels
come from), serialised as CDR, so `ros2 bag play` publishes them unchanged.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from rosbags.typesys import Stores, get_typestore
from scipy.spatial.transform import Rotation

from silk_ros.bagio.image_codec import ImageFields

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POSE_STAMPED = "geometry_msgs/msg/PoseStamped"
POSE_WITH_COVARIANCE_STAMPED = "geometry_msgs/msg/PoseWithCovarianceStamped"
TRANSFORM_STAMPED = "geometry_msgs/msg/TransformStamped"
ODOMETRY = "nav_msgs/msg/Odometry"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"

IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
#: message types a ground-truth (or estimated) pose topic may carry.
POSE_TYPES = (POSE_STAMPED, POSE_WITH_COVARIANCE_STAMPED, TRANSFORM_STAMPED, ODOMETRY)


def short_type(msgtype: str) -> str:
    """'sensor_msgs/msg/Image' -> 'sensor_msgs/Image' (how users write ROS types); ROS 1 names pass through."""
    return msgtype.replace("/msg/", "/")


@lru_cache(maxsize=1)
def typestore():
    return get_typestore(Stores.ROS2_KILTED)


def _cls(msgtype: str):
    return typestore().types[msgtype]


def seconds_to_ns(seconds: float) -> int:
    """Float seconds -> integer nanoseconds (rounded), the bag's native time."""
    return int(round(float(seconds) * 1e9))


def stamp_to_seconds(stamp) -> float:
    """builtin_interfaces/Time -> float seconds, the same formula as the node (sec + nanosec * 1e-9)."""
    return stamp.sec + stamp.nanosec * 1e-9


def stamp_to_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def header(ns: int, frame_id: str):
    time = _cls("builtin_interfaces/msg/Time")(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
    return _cls("std_msgs/msg/Header")(stamp=time, frame_id=frame_id)


def image_msg(fields: ImageFields, ns: int, frame_id: str):
    return _cls(IMAGE)(
        header=header(ns, frame_id),
        height=fields.height,
        width=fields.width,
        encoding=fields.encoding,
        is_bigendian=fields.is_bigendian,
        step=fields.step,
        data=np.frombuffer(fields.data, dtype=np.uint8),
    )


def compressed_msg(image_format: str, data: bytes, ns: int, frame_id: str):
    return _cls(COMPRESSED_IMAGE)(
        header=header(ns, frame_id), format=image_format, data=np.frombuffer(data, dtype=np.uint8)
    )


def camera_info_msg(camera_info: dict, ns: int, frame_id: str):
    """``Camera.to_camera_info()`` dict -> CameraInfo (no rectification: R = I, P = [K | 0])."""
    k = np.asarray(camera_info["k"], dtype=np.float64).reshape(9)
    p = np.zeros(12)
    p[[0, 1, 2, 4, 5, 6, 10]] = k[[0, 1, 2, 3, 4, 5, 8]]
    roi = _cls("sensor_msgs/msg/RegionOfInterest")(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return _cls(CAMERA_INFO)(
        header=header(ns, frame_id),
        height=int(camera_info["height"]),
        width=int(camera_info["width"]),
        distortion_model=str(camera_info.get("distortion_model") or "none"),
        d=np.asarray(camera_info.get("d", []), dtype=np.float64),
        k=k,
        r=np.eye(3).reshape(9),
        p=p,
        binning_x=0,
        binning_y=0,
        roi=roi,
    )


def _pose(transform: np.ndarray):
    x, y, z, w = Rotation.from_matrix(transform[:3, :3]).as_quat()
    point = _cls("geometry_msgs/msg/Point")(*(float(v) for v in transform[:3, 3]))
    quaternion = _cls("geometry_msgs/msg/Quaternion")(x=x, y=y, z=z, w=w)
    return _cls("geometry_msgs/msg/Pose")(position=point, orientation=quaternion)


def pose_stamped_msg(transform: np.ndarray, ns: int, frame_id: str):
    return _cls(POSE_STAMPED)(header=header(ns, frame_id), pose=_pose(transform))


def tf_msg(transform: np.ndarray, ns: int, parent: str, child: str):
    """One TransformStamped parent <- child in a tf2_msgs/TFMessage (what /tf carries)."""
    x, y, z, w = Rotation.from_matrix(transform[:3, :3]).as_quat()
    translation = _cls("geometry_msgs/msg/Vector3")(*(float(v) for v in transform[:3, 3]))
    rotation = _cls("geometry_msgs/msg/Quaternion")(x=x, y=y, z=z, w=w)
    stamped = _cls(TRANSFORM_STAMPED)(
        header=header(ns, parent),
        child_frame_id=child,
        transform=_cls("geometry_msgs/msg/Transform")(translation=translation, rotation=rotation),
    )
    return _cls(TF_MESSAGE)(transforms=[stamped])


def _matrix(position, orientation) -> np.ndarray:
    quaternion = np.array([orientation.x, orientation.y, orientation.z, orientation.w], dtype=np.float64)
    norm = np.linalg.norm(quaternion)
    if not np.isfinite(norm) or norm < 1e-9:
        raise ValueError(f"invalid orientation quaternion {quaternion.tolist()}")
    out = np.eye(4)
    out[:3, :3] = Rotation.from_quat(quaternion / norm).as_matrix()
    out[:3, 3] = [position.x, position.y, position.z]
    return out


def pose_from_msg(msg, msgtype: str) -> tuple[float, np.ndarray]:
    """A pose message (one of POSE_TYPES, ROS 1 or 2 naming) -> (stamp seconds, 4x4 T_frame_child)."""
    kind = short_type(msgtype)
    if kind == short_type(POSE_STAMPED):
        pose = msg.pose
    elif kind in (short_type(POSE_WITH_COVARIANCE_STAMPED), short_type(ODOMETRY)):
        pose = msg.pose.pose
    elif kind == short_type(TRANSFORM_STAMPED):
        transform = msg.transform
        return stamp_to_seconds(msg.header.stamp), _matrix(transform.translation, transform.rotation)
    else:
        raise ValueError(f"{msgtype} is not a pose message")
    return stamp_to_seconds(msg.header.stamp), _matrix(pose.position, pose.orientation)
