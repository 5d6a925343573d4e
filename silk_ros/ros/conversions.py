"""ROS message <-> numpy conversions for the VO node, with no dependency on cv_bridge or sensor_msgs_py.

cv_bridge is often missing (pip-installed rclpy, minimal containers) and its failure modes on odd
encodings are hard to report; these conversions validate every message field and raise
:class:`InputError` with a ``kind`` the node counts in its diagnostics.

Conventions: images come back as numpy arrays in the encoding's channel order; :func:`to_vo_image`
turns any supported colour image into what the odometry expects (uint8 grey or BGR).  Depth comes
back as float32 metres with NaN where invalid.  Poses are 4x4 float64 ``T_a_b`` matrices and
covariances 6x6 in ROS order (x, y, z, rot_x, rot_y, rot_z).
"""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, PoseWithCovariance, Quaternion, Transform, TransformStamped, Vector3
from sensor_msgs.msg import CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header

from silk_ros.bagio.image_codec import (  # noqa: F401
    _ALL_ENCODINGS,
    COLOUR_ENCODINGS,
    DEPTH_ENCODINGS,
    InputError,
    camera_info_to_dict,
    compressed_to_numpy,
    depth_to_metres,
    image_to_numpy,
    numpy_to_compressed_fields,
    numpy_to_image_fields,
    to_vo_image,
)

# The pure-numpy image codec lives in silk_ros/bagio/image_codec.py so that `silk-vo bag eval` (no ROS)
# decodes bag frames with exactly the code the node runs; re-exported here for the node and its tests.
from silk_ros.geometry.pose import quaternion_to_rotation, rotation_to_quaternion
from silk_ros.settings import NodeConfig

__all__ = [
    "COLOUR_ENCODINGS",
    "DEPTH_ENCODINGS",
    "KEYPOINT_FIELDS",
    "KEYPOINT_RAY_FIELDS",
    "MATCH_FIELDS",
    "InputError",
    "R_BODY_OPTICAL",
    "camera_info_to_dict",
    "compressed_to_numpy",
    "covariance_to_list",
    "depth_to_metres",
    "image_to_numpy",
    "keypoints_to_cloud",
    "matches_to_cloud",
    "matrix_to_pose",
    "matrix_to_transform",
    "numpy_to_compressed",
    "numpy_to_image",
    "pack_cloud",
    "pose_to_matrix",
    "pose_with_covariance",
    "quaternion_to_rotation",
    "rotate_covariance",
    "rotation_to_quaternion",
    "seconds_to_stamp",
    "stamp_to_seconds",
    "to_vo_image",
    "transform_stamped",
    "unpack_cloud",
]

#: Rotation from the camera optical frame (x right, y down, z forward) to a REP-103 body frame
#: (x forward, y left, z up): that of the default base <- camera extrinsics (``base_from_camera``), used when
#: neither TF nor the parameter gives them.
R_BODY_OPTICAL = NodeConfig().base_from_camera_matrix()[:3, :3]

#: PointCloud2 layouts published by the node (all FLOAT32, pixel units in the input image).
KEYPOINT_FIELDS = ("u", "v", "score")
KEYPOINT_RAY_FIELDS = ("x", "y", "z")
MATCH_FIELDS = ("u0", "v0", "u1", "v1", "confidence")


# ---------------------------------------------------------------------------------------- time


def stamp_to_seconds(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def seconds_to_stamp(seconds: float) -> Time:
    """Float seconds -> builtin_interfaces/Time, rounding to the nearest nanosecond."""
    nanoseconds = int(round(seconds * 1e9))
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


# -------------------------------------------------------------------------------------- images


def numpy_to_image(array: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """(H, W[, C]) array -> sensor_msgs/Image (little-endian, no row padding)."""
    fields = numpy_to_image_fields(array, encoding)
    msg = Image(
        height=fields.height,
        width=fields.width,
        encoding=fields.encoding,
        is_bigendian=fields.is_bigendian,
        step=fields.step,
        data=fields.data,
    )
    if header is not None:
        msg.header = header
    return msg


def numpy_to_compressed(array: np.ndarray, image_format: str = "jpeg", header: Header | None = None) -> CompressedImage:
    """uint8 grey/BGR array -> CompressedImage as image_transport's compressed plugin writes it."""
    image_format_string, data = numpy_to_compressed_fields(array, image_format)
    msg = CompressedImage(format=image_format_string, data=data)
    if header is not None:
        msg.header = header
    return msg


# --------------------------------------------------------------------------------- camera info


# ------------------------------------------------------------------------------- poses and TF


def matrix_to_pose(transform: np.ndarray) -> Pose:
    x, y, z, w = rotation_to_quaternion(transform[:3, :3])
    t = transform[:3, 3]
    return Pose(position=Point(x=float(t[0]), y=float(t[1]), z=float(t[2])), orientation=Quaternion(x=x, y=y, z=z, w=w))


def pose_to_matrix(pose: Pose | Transform) -> np.ndarray:
    """geometry_msgs Pose or Transform -> 4x4."""
    if isinstance(pose, Transform):
        t, q = pose.translation, pose.rotation
    else:
        t, q = pose.position, pose.orientation
    out = np.eye(4)
    out[:3, :3] = quaternion_to_rotation([q.x, q.y, q.z, q.w])
    out[:3, 3] = [t.x, t.y, t.z]
    return out


def matrix_to_transform(transform: np.ndarray) -> Transform:
    x, y, z, w = rotation_to_quaternion(transform[:3, :3])
    t = transform[:3, 3]
    return Transform(
        translation=Vector3(x=float(t[0]), y=float(t[1]), z=float(t[2])), rotation=Quaternion(x=x, y=y, z=z, w=w)
    )


def transform_stamped(transform: np.ndarray, header: Header, child_frame: str) -> TransformStamped:
    return TransformStamped(header=header, child_frame_id=child_frame, transform=matrix_to_transform(transform))


def covariance_to_list(covariance: np.ndarray) -> list[float]:
    """6x6 (x, y, z, rot_x, rot_y, rot_z) -> the row-major 36 floats of the ROS messages."""
    covariance = np.asarray(covariance, dtype=np.float64)
    if covariance.shape != (6, 6):
        raise ValueError(f"covariance must be 6x6, got {covariance.shape}")
    return [float(v) for v in covariance.reshape(-1)]


def rotate_covariance(covariance: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Express a 6x6 pose covariance in a frame rotated by ``rotation`` (translation and rotation blocks)."""
    big = np.zeros((6, 6))
    big[:3, :3] = rotation
    big[3:, 3:] = rotation
    return big @ covariance @ big.T


def pose_with_covariance(transform: np.ndarray, covariance: np.ndarray) -> PoseWithCovariance:
    return PoseWithCovariance(pose=matrix_to_pose(transform), covariance=covariance_to_list(covariance))


# -------------------------------------------------------------------------------- point clouds


def pack_cloud(header: Header, names: tuple[str, ...], columns: np.ndarray) -> PointCloud2:
    """(N, len(names)) numbers -> an unorganised PointCloud2 of FLOAT32 fields (height 1, dense)."""
    columns = np.asarray(columns, dtype=np.float32).reshape(-1, len(names))
    msg = PointCloud2(header=header, height=1, width=int(len(columns)), is_bigendian=False, is_dense=True)
    msg.fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate(names)]
    msg.point_step = 4 * len(names)
    msg.row_step = msg.point_step * msg.width
    msg.data = np.ascontiguousarray(columns).astype("<f4", copy=False).tobytes()
    return msg


_POINTFIELD_DTYPES = {
    PointField.INT8: "i1",
    PointField.UINT8: "u1",
    PointField.INT16: "i2",
    PointField.UINT16: "u2",
    PointField.INT32: "i4",
    PointField.UINT32: "u4",
    PointField.FLOAT32: "f4",
    PointField.FLOAT64: "f8",
}


def unpack_cloud(msg: PointCloud2) -> dict[str, np.ndarray]:
    """Any PointCloud2 of scalar fields -> {field name: (N,) array} (the reader used by tests and tools)."""
    order = ">" if msg.is_bigendian else "<"
    dtype = np.dtype(
        {
            "names": [f.name for f in msg.fields],
            "formats": [order + _POINTFIELD_DTYPES[f.datatype] for f in msg.fields],
            "offsets": [f.offset for f in msg.fields],
            "itemsize": msg.point_step,
        }
    )
    count = msg.width * msg.height
    points = np.frombuffer(bytes(msg.data), dtype=dtype, count=count)
    return {name: points[name].astype(points[name].dtype.newbyteorder("=")) for name in dtype.names}


def keypoints_to_cloud(
    header: Header, keypoints_xy: np.ndarray, scores: np.ndarray, rays: np.ndarray | None = None
) -> PointCloud2:
    """Keypoints as a cloud of (u, v, score): pixel-centre coordinates of the input image.

    With ``rays`` (N, 3) the cloud also carries x, y, z: the keypoint's viewing ray at unit depth in the
    camera optical frame, so RViz (which needs x, y, z) draws the keypoints on a plane 1 m ahead.
    """
    columns = [keypoints_xy.reshape(-1, 2), scores.reshape(-1, 1)]
    if rays is None:
        return pack_cloud(header, KEYPOINT_FIELDS, np.hstack(columns))
    return pack_cloud(header, KEYPOINT_FIELDS + KEYPOINT_RAY_FIELDS, np.hstack([*columns, rays.reshape(-1, 3)]))


def matches_to_cloud(header: Header, xy0: np.ndarray, xy1: np.ndarray, confidence: np.ndarray) -> PointCloud2:
    """Matches as a cloud of (u0, v0, u1, v1, confidence): keyframe pixel -> current-frame pixel."""
    return pack_cloud(
        header, MATCH_FIELDS, np.column_stack([xy0.reshape(-1, 2), xy1.reshape(-1, 2), confidence.reshape(-1)])
    )
