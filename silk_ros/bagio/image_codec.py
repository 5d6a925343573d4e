"""sensor_msgs Image / CompressedImage <-> numpy from the raw message fields, with no ROS import.

One decoder for every consumer: the live node (through silk_ros/ros/conversions.py, which re-exports these),
`silk-vo bag eval` (rosbags messages) and the bag converter. A frame replayed from a bag therefore reaches the
odometry as the very same array the node would see. Functions take any object with the message's field names
(rclpy messages and rosbags dataclasses both qualify), so neither ROS nor rosbags is needed here.

Images come back in the encoding's channel order; :func:`to_vo_image` turns them into what the odometry
expects (uint8 grey or BGR). Depth comes back as float32 metres with NaN where invalid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from silk_ros.geometry.camera import intrinsics_problem

#: encoding -> (numpy dtype, channels) for colour / intensity images.
COLOUR_ENCODINGS: dict[str, tuple[type, int]] = {
    "mono8": (np.uint8, 1),
    "8UC1": (np.uint8, 1),
    "mono16": (np.uint16, 1),
    "bgr8": (np.uint8, 3),
    "rgb8": (np.uint8, 3),
    "bgra8": (np.uint8, 4),
    "rgba8": (np.uint8, 4),
}
#: depth encodings: 16UC1 in millimetres (OpenNI convention), 32FC1 in metres (REP-118).
DEPTH_ENCODINGS: dict[str, tuple[type, int]] = {
    "16UC1": (np.uint16, 1),
    "mono16": (np.uint16, 1),
    "32FC1": (np.float32, 1),
}
_ALL_ENCODINGS = {**COLOUR_ENCODINGS, **DEPTH_ENCODINGS}


class InputError(ValueError):
    """A message the node cannot use; ``kind`` names the problem class for diagnostics."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class ImageFields:
    """The pixel-carrying fields of sensor_msgs/Image (header excluded), ready to copy into any message class."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: bytes


# -------------------------------------------------------------------------------------- decode


def image_to_numpy(msg, allowed: dict[str, tuple[type, int]] | None = None) -> np.ndarray:
    """sensor_msgs/Image (any object with its fields) -> (H, W) or (H, W, C) array, honouring ``step``
    padding and endianness."""
    allowed = _ALL_ENCODINGS if allowed is None else allowed
    encoding = msg.encoding
    if encoding not in allowed:
        raise InputError(
            "unsupported_encoding",
            f"unsupported image encoding {encoding!r} (supported: {', '.join(sorted(allowed))})",
        )
    dtype, channels = allowed[encoding]
    dtype = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise InputError("empty_image", f"empty image ({width}x{height}, encoding {encoding})")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise InputError("truncated_image", f"image step {step} is smaller than one row ({row_bytes} bytes)")
    data = msg.data
    if len(data) < step * (height - 1) + row_bytes:
        raise InputError(
            "truncated_image",
            f"image data holds {len(data)} bytes, {width}x{height} {encoding} with step {step} needs {step * height}",
        )
    buffer = np.frombuffer(data, dtype=np.uint8, count=min(len(data), step * height))
    if len(buffer) < step * height:  # last row unpadded
        buffer = np.concatenate([buffer, np.zeros(step * height - len(buffer), np.uint8)])
    rows = buffer.reshape(height, step)[:, :row_bytes]
    array = np.ascontiguousarray(rows).view(dtype).reshape(height, width, channels)
    array = array.astype(dtype.newbyteorder("="), copy=False)
    return array[:, :, 0] if channels == 1 else array


def compressed_to_numpy(msg) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg/png) -> uint8 BGR or grey (16-bit PNG stays uint16)."""
    if len(msg.data) == 0:
        raise InputError("empty_image", "compressed image has no data")
    if "compressedDepth" in msg.format:
        raise InputError("unsupported_encoding", f"compressedDepth images are not supported ({msg.format!r})")
    buffer = np.frombuffer(bytes(msg.data), np.uint8)
    image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise InputError(
            "corrupt_compressed", f"could not decode compressed image (format {msg.format!r}, {len(buffer)} bytes)"
        )
    return image


def to_vo_image(array: np.ndarray, encoding: str) -> np.ndarray:
    """Decoded image -> uint8 grey (H, W) or BGR (H, W, 3), what VisualOdometry.process expects."""
    if array.dtype == np.uint16:
        array = (array.astype(np.float32) * (255.0 / 65535.0) + 0.5).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise InputError("unsupported_encoding", f"unsupported image dtype {array.dtype} for encoding {encoding}")
    if array.ndim == 2:
        return array
    code = {
        ("rgb8", 3): cv2.COLOR_RGB2BGR,
        ("rgba8", 4): cv2.COLOR_RGBA2BGR,
        ("bgra8", 4): cv2.COLOR_BGRA2BGR,
    }.get((encoding, array.shape[2]))
    if array.shape[2] == 4 and code is None:  # 4-channel PNG from a compressed stream
        code = cv2.COLOR_BGRA2BGR
    if array.shape[2] == 1:
        return array[:, :, 0]
    return cv2.cvtColor(array, code) if code is not None else array


def depth_to_metres(array: np.ndarray, encoding: str) -> np.ndarray:
    """16UC1 millimetres or 32FC1 metres -> float32 metres, NaN where the sensor gave no depth."""
    if encoding in ("16UC1", "mono16") and array.dtype == np.uint16:
        depth = array.astype(np.float32) * 1e-3
        depth[(array == 0) | (array == 65535)] = np.nan
        return depth
    if encoding == "32FC1" and array.dtype == np.float32:
        depth = array.astype(np.float32, copy=True)
        depth[~np.isfinite(depth) | (depth <= 0)] = np.nan
        return depth
    raise InputError("unsupported_encoding", f"unsupported depth encoding {encoding!r} (use 16UC1 mm or 32FC1 m)")


def is_compressed(msg) -> bool:
    """CompressedImage carries ``format``; Image carries ``encoding``."""
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


def vo_image_from_msg(msg) -> np.ndarray:
    """Image or CompressedImage message -> the uint8 grey/BGR array VisualOdometry.process takes."""
    if is_compressed(msg):
        return to_vo_image(compressed_to_numpy(msg), "bgr8")
    return to_vo_image(image_to_numpy(msg, COLOUR_ENCODINGS), msg.encoding)


def depth_from_msg(msg) -> np.ndarray:
    """Depth Image (16UC1 mm / 32FC1 m) or a 16-bit PNG CompressedImage (mm) -> float32 metres, NaN invalid."""
    if is_compressed(msg):
        array = compressed_to_numpy(msg)
        return depth_to_metres(array, "16UC1" if array.dtype == np.uint16 else "32FC1")
    return depth_to_metres(image_to_numpy(msg, DEPTH_ENCODINGS), msg.encoding)


# --------------------------------------------------------------------------------- camera info


def camera_info_to_dict(msg) -> dict:
    """CameraInfo -> the dict ``Camera.from_camera_info`` takes; rejects intrinsics that cannot be right."""
    k = [float(v) for v in msg.k]
    width, height = int(msg.width), int(msg.height)
    if width <= 0 or height <= 0:
        raise InputError("invalid_camera_info", f"CameraInfo has no image size ({width}x{height})")
    if len(k) != 9 or not all(math.isfinite(v) for v in k):
        raise InputError("invalid_camera_info", f"CameraInfo K is not 9 finite numbers: {k}")
    if k[0] <= 0 or k[4] <= 0:
        raise InputError("invalid_camera_info", f"CameraInfo has a non-positive focal length (fx={k[0]}, fy={k[4]})")
    problem = intrinsics_problem(width, height, k[0], k[4], k[2], k[5])
    if problem:
        raise InputError("invalid_camera_info", f"CameraInfo K is implausible: {problem}")
    d = [float(v) for v in msg.d]
    if not all(math.isfinite(v) for v in d):
        raise InputError("invalid_camera_info", f"CameraInfo distortion holds non-finite values: {d}")
    model = msg.distortion_model or ("plumb_bob" if d else "none")
    if not any(d):
        model, d = "none", []
    return {"width": width, "height": height, "k": k, "d": d, "distortion_model": model}


# -------------------------------------------------------------------------------------- encode


def numpy_to_image_fields(array: np.ndarray, encoding: str) -> ImageFields:
    """(H, W[, C]) array -> Image fields (little-endian, no row padding)."""
    if encoding not in _ALL_ENCODINGS:
        raise ValueError(f"unsupported image encoding {encoding!r}")
    dtype, channels = _ALL_ENCODINGS[encoding]
    array = np.asarray(array)
    if array.ndim == 3 and channels == 1 and array.shape[2] == 1:
        array = array[:, :, 0]
    expected = (array.shape[0], array.shape[1]) if channels == 1 else (array.shape[0], array.shape[1], channels)
    if array.shape != expected or array.dtype != np.dtype(dtype):
        raise ValueError(f"array {array.shape} {array.dtype} does not fit encoding {encoding}")
    return ImageFields(
        height=int(array.shape[0]),
        width=int(array.shape[1]),
        encoding=encoding,
        is_bigendian=0,
        step=int(array.shape[1] * channels * array.dtype.itemsize),
        data=np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes(),
    )


def numpy_to_compressed_fields(array: np.ndarray, image_format: str = "jpeg", quality: int = 95) -> tuple[str, bytes]:
    """uint8 grey/BGR (or uint16 for png) array -> (format, data) as image_transport's compressed plugin
    writes them."""
    extension = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png"}.get(image_format)
    if extension is None:
        raise ValueError(f"unsupported compression format {image_format!r} (use jpeg or png)")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if extension == ".jpg" else []
    ok, encoded = cv2.imencode(extension, array, params)
    if not ok:
        raise ValueError(f"could not encode a {array.shape} {array.dtype} image as {image_format}")
    colour = "bgr8" if array.ndim == 3 else ("mono8" if array.dtype == np.uint8 else "16UC1")
    return f"{colour}; {'jpeg' if extension == '.jpg' else 'png'} compressed {colour}", encoded.tobytes()


def metres_to_depth(depth_m: np.ndarray, encoding: str = "32FC1") -> np.ndarray:
    """float metres (NaN invalid) -> 32FC1 metres (NaN kept) or 16UC1 millimetres (0 = invalid)."""
    depth_m = np.asarray(depth_m, dtype=np.float32)
    if encoding == "32FC1":
        return depth_m
    if encoding in ("16UC1", "mono16"):
        valid = np.isfinite(depth_m) & (depth_m > 0)
        return np.where(valid, np.clip(np.rint(depth_m * 1000.0), 1, 65534), 0).astype(np.uint16)
    raise ValueError(f"unsupported depth encoding {encoding!r} (use 16UC1 mm or 32FC1 m)")
