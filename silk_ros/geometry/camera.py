"""Camera model: pinhole intrinsics plus one of the lens distortion models ROS publishes.

Why a class of our own: every dataset and ``sensor_msgs/CameraInfo`` describe the same thing in a
different shape; the odometry only needs "undistort these keypoints" and "project these points".
Keypoints are undistorted (not images) because SiLK runs on the raw image and only the geometry
needs ideal pinhole coordinates.

Conventions:
- Pixel coordinates use the pixel-centre convention (pixel (0, 0) covers [-0.5, 0.5]^2), the same as
  OpenCV and ``Features.keypoints_xy``. Resizing an image by s therefore maps x -> (x + 0.5) * s - 0.5
  (:func:`resized_pixels`), which is what :meth:`Camera.scaled` applies to the principal point.
- Distortion models (names as in ROS ``CameraInfo.distortion_model``):
  ``"none"``; ``"plumb_bob"`` (k1 k2 p1 p2 [k3], OpenCV radial-tangential); ``"rational_polynomial"``
  (k1 k2 p1 p2 k3 k4 k5 k6); ``"equidistant"`` (k1 k2 k3 k4, OpenCV fisheye / Kannala-Brandt).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

#: model name -> allowed distortion vector lengths.
DISTORTION_LENGTHS: dict[str, tuple[int, ...]] = {
    "none": (0,),
    "plumb_bob": (4, 5),
    "rational_polynomial": (8,),
    "equidistant": (4,),
}

#: other spellings seen in the wild (Kalibr / EuRoC, OpenCV, camera_calibration_parsers).
MODEL_ALIASES: dict[str, str] = {
    "": "none",
    "pinhole": "none",
    "radial-tangential": "plumb_bob",
    "radtan": "plumb_bob",
    "fisheye": "equidistant",
    "kannala_brandt": "equidistant",
}

# Tight criteria: OpenCV's default 5 iterations leave ~0.1 px error at the corners of strong lenses (EuRoC).
_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)


def resized_pixels(xy: Any, ratio: Any) -> np.ndarray:
    """Pixel positions (..., 2) of an image in the image resized by ``ratio`` (x, y; new size / old size), pixel-centre
    convention: the two images' outer corners meet."""
    return (np.asarray(xy) + 0.5) * np.asarray(ratio) - 0.5


class CameraError(ValueError):
    """A calibration that cannot describe a real camera (the message says which value is wrong)."""


def _as_points(xy: Any, dims: int, what: str) -> np.ndarray:
    points = np.asarray(xy, dtype=np.float64)
    if points.ndim == 1 and points.size == dims:
        points = points[None, :]
    if points.ndim != 2 or points.shape[1] != dims:
        raise CameraError(f"{what} must have shape (N, {dims}), got {points.shape}")
    return points


@dataclass(frozen=True, eq=False)
class Camera:
    """Pinhole camera ``K`` with lens ``distortion`` of ``model`` for images of ``width`` x ``height`` pixels."""

    width: int
    height: int
    K: np.ndarray
    distortion: np.ndarray = field(default_factory=lambda: np.zeros(0))
    model: str = "none"

    def __post_init__(self) -> None:
        width, height = self.width, self.height
        if not (float(width).is_integer() and float(height).is_integer()) or width <= 0 or height <= 0:
            raise CameraError(f"image size must be positive integers, got width={width} height={height}")
        K = np.asarray(self.K, dtype=np.float64)
        if K.size != 9:
            raise CameraError(f"K must have 9 entries (3x3), got shape {K.shape}")
        K = K.reshape(3, 3).copy()
        if not np.all(np.isfinite(K)):
            raise CameraError(f"K contains NaN or infinity: {K.tolist()}")
        if K[0, 0] <= 0 or K[1, 1] <= 0:
            raise CameraError(f"focal lengths must be positive, got fx={K[0, 0]} fy={K[1, 1]}")
        if not np.allclose(K[2], [0.0, 0.0, 1.0]) or K[1, 0] != 0.0:
            raise CameraError(f"K must be upper triangular with last row [0, 0, 1], got {K.tolist()}")
        if K[0, 1] != 0.0:  # OpenCV's distortion functions ignore skew: refuse rather than be silently wrong
            raise CameraError(f"K has skew {K[0, 1]}; only zero-skew cameras are supported")
        model = MODEL_ALIASES.get(str(self.model).lower(), str(self.model).lower())
        if model not in DISTORTION_LENGTHS:
            raise CameraError(f"unknown distortion model {self.model!r}; expected one of {sorted(DISTORTION_LENGTHS)}")
        dist = np.asarray(self.distortion, dtype=np.float64).ravel()
        if model == "none" and np.any(dist != 0.0):
            raise CameraError(f"distortion model 'none' with non-zero coefficients {dist.tolist()}")
        if model == "none":
            dist = np.zeros(0)
        if dist.size not in DISTORTION_LENGTHS[model]:
            raise CameraError(
                f"distortion model {model!r} needs {' or '.join(map(str, DISTORTION_LENGTHS[model]))} "
                f"coefficients, got {dist.size}"
            )
        if not np.all(np.isfinite(dist)):
            raise CameraError(f"distortion contains NaN or infinity: {dist.tolist()}")
        K.setflags(write=False)
        dist.setflags(write=False)
        object.__setattr__(self, "width", int(width))
        object.__setattr__(self, "height", int(height))
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "distortion", dist)
        object.__setattr__(self, "model", model)

    # ----------------------------------------------------------------------------------------- constructors
    @classmethod
    def from_intrinsics(
        cls,
        fx: float,
        fy: float,
        cx: float,
        cy: float,
        width: int,
        height: int,
        distortion: Sequence[float] = (),
        model: str | None = None,
    ) -> Camera:
        """Build from the four numbers most datasets publish; ``model`` defaults to plumb_bob when distorted."""
        dist = np.asarray(distortion, dtype=np.float64).ravel()
        if model is None:
            model = "plumb_bob" if dist.size and np.any(dist != 0) else "none"
            if model == "none":
                dist = np.zeros(0)
        K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        return cls(width, height, K, dist, model)

    @classmethod
    def from_camera_info(cls, info: Mapping[str, Any] | Any) -> Camera:
        """Build from a ``sensor_msgs/CameraInfo`` as a dict (``width, height, k, d, distortion_model``) or message.

        Upper-case keys (``K``, ``D``, ROS 1 style) are accepted too.
        """

        def get(*names: str) -> Any:
            for name in names:
                if isinstance(info, Mapping) and name in info:
                    return info[name]
                if not isinstance(info, Mapping) and hasattr(info, name):
                    return getattr(info, name)
            return None

        fields = (("width", get("width")), ("height", get("height")), ("k", get("k", "K")))
        missing = [name for name, value in fields if value is None]
        if missing:
            raise CameraError(f"camera info lacks {', '.join(missing)}")
        d = get("d", "D")
        d = np.zeros(0) if d is None else np.asarray(d, dtype=np.float64)
        model = get("distortion_model") or ("plumb_bob" if d.size else "none")
        # ROS drivers publish "plumb_bob" with five zeros for undistorted streams: keep the model as given.
        return cls(int(get("width")), int(get("height")), np.asarray(get("k", "K"), dtype=np.float64), d, str(model))

    def to_camera_info(self) -> dict[str, Any]:
        """The ``sensor_msgs/CameraInfo`` fields as plain Python (k, r, p row-major)."""
        P = np.hstack([self.K, np.zeros((3, 1))])
        return {
            "width": self.width,
            "height": self.height,
            "distortion_model": self.model if self.model != "none" else "plumb_bob",
            "d": self.distortion.tolist() if self.model != "none" else [0.0] * 5,
            "k": self.K.ravel().tolist(),
            "r": np.eye(3).ravel().tolist(),
            "p": P.ravel().tolist(),
        }

    # ----------------------------------------------------------------------------------------- properties
    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    @property
    def size(self) -> tuple[int, int]:
        """(height, width), the order of ``image.shape`` and ``Features.image_size``."""
        return self.height, self.width

    @property
    def is_distorted(self) -> bool:
        return self.model != "none" and bool(np.any(self.distortion != 0.0))

    def undistorted(self) -> Camera:
        """The same intrinsics without distortion: the camera that :meth:`undistort_points` output lives in."""
        return Camera(self.width, self.height, self.K, np.zeros(0), "none")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Camera):
            return NotImplemented
        return (
            (self.width, self.height, self.model) == (other.width, other.height, other.model)
            and np.array_equal(self.K, other.K)
            and np.array_equal(self.distortion, other.distortion)
        )

    def __hash__(self) -> int:
        return hash((self.width, self.height, self.model, self.K.tobytes(), self.distortion.tobytes()))

    def __repr__(self) -> str:
        dist = f", {self.model} {np.round(self.distortion, 6).tolist()}" if self.model != "none" else ""
        return (
            f"Camera({self.width}x{self.height}, fx={self.fx:.4f} fy={self.fy:.4f} "
            f"cx={self.cx:.4f} cy={self.cy:.4f}{dist})"
        )

    # ----------------------------------------------------------------------------------------- geometry
    def normalized(self, xy: Any) -> np.ndarray:
        """Distorted pixels (N, 2) -> ideal normalized image coordinates (x/z, y/z), float64 (N, 2)."""
        points = _as_points(xy, 2, "pixel coordinates")
        if len(points) == 0:
            return np.zeros((0, 2))
        if not self.is_distorted:
            return (points - [self.cx, self.cy]) / [self.fx, self.fy]
        src = points.reshape(-1, 1, 2)
        if self.model == "equidistant":
            out = cv2.fisheye.undistortPoints(src, self.K, self.distortion, criteria=_UNDISTORT_CRITERIA)
        else:
            out = cv2.undistortPoints(src, self.K, self.distortion, criteria=_UNDISTORT_CRITERIA)
        return out.reshape(-1, 2).astype(np.float64)

    def undistort_points(self, xy: Any) -> np.ndarray:
        """Distorted pixels (N, 2) -> pixels of the ideal pinhole camera with the same K (float64 (N, 2))."""
        points = _as_points(xy, 2, "pixel coordinates")
        if not self.is_distorted:
            return points.copy()
        return self.normalized(points) * [self.fx, self.fy] + [self.cx, self.cy]

    def project(self, points_cam: Any) -> np.ndarray:
        """Points in the camera optical frame (N, 3) -> distorted pixels (N, 2); NaN for points with z <= 0."""
        points = _as_points(points_cam, 3, "camera points")
        out = np.full((len(points), 2), np.nan)
        front = points[:, 2] > 0
        if not np.any(front):
            return out
        visible = points[front]
        if not self.is_distorted:
            xy = visible[:, :2] / visible[:, 2:3]
            out[front] = xy * [self.fx, self.fy] + [self.cx, self.cy]
            return out
        rvec = tvec = np.zeros(3)
        if self.model == "equidistant":
            pix, _ = cv2.fisheye.projectPoints(visible.reshape(-1, 1, 3), rvec, tvec, self.K, self.distortion)
        else:
            pix, _ = cv2.projectPoints(visible.reshape(-1, 1, 3), rvec, tvec, self.K, self.distortion)
        out[front] = pix.reshape(-1, 2)
        return out

    def backproject(self, xy: Any, depth: Any) -> np.ndarray:
        """Pixels (N, 2) with depth along the optical axis (N,) -> points in the camera frame (N, 3)."""
        rays = self.normalized(xy)
        z = np.asarray(depth, dtype=np.float64).reshape(-1)
        if z.shape[0] != rays.shape[0]:
            raise CameraError(f"got {rays.shape[0]} pixels but {z.shape[0]} depths")
        return np.column_stack([rays * z[:, None], z])

    def scaled(self, width: int, height: int) -> Camera:
        """The camera of this image resized to ``width`` x ``height`` (distortion is in normalized units: kept)."""
        if width <= 0 or height <= 0:
            raise CameraError(f"cannot scale to a non-positive size {width}x{height}")
        sx, sy = width / self.width, height / self.height
        K = self.K.copy()
        K[0, 0] *= sx
        K[1, 1] *= sy
        K[:2, 2] = resized_pixels((self.cx, self.cy), (sx, sy))
        return Camera(int(width), int(height), K, self.distortion, self.model)

    def in_image(self, xy: Any, margin: float = 0.0) -> np.ndarray:
        """Boolean mask of pixels inside the image (pixel-centre convention), ``margin`` pixels from the border."""
        points = _as_points(xy, 2, "pixel coordinates")
        lo = -0.5 + margin
        return (
            np.isfinite(points).all(axis=1)
            & (points[:, 0] >= lo)
            & (points[:, 1] >= lo)
            & (points[:, 0] < self.width - 0.5 - margin)
            & (points[:, 1] < self.height - 0.5 - margin)
        )


#: Plausible pinhole focal lengths relative to the image width: from a 160-degree wide-angle lens (fisheyes with an
#: equidistant model stay above 0.15 too) to a 0.25-degree telephoto.  Outside these a CameraInfo is not a camera:
#: fx = 1e9 px, or intrinsics in millimetres, in another resolution's pixels, or with fx and fy swapped with cx, cy.
FOCAL_TO_WIDTH_RANGE = (0.09, 230.0)
#: largest fx / fy (anamorphic lenses reach 2)
MAX_PIXEL_ASPECT = 4.0


def intrinsics_problem(width: int, height: int, fx: float, fy: float, cx: float, cy: float) -> str | None:
    """Why these pinhole intrinsics cannot belong to a real camera of ``width`` x ``height`` pixels, or None.

    Checks what a calibration in the wrong units or of another resolution gets wrong: the field of view the focal
    lengths give, the pixel aspect ratio, and the principal point, which must lie on the image."""
    low, high = FOCAL_TO_WIDTH_RANGE
    size = max(width, height)
    for name, focal in (("fx", fx), ("fy", fy)):
        if not low * size <= focal <= high * size:
            fov = 2.0 * np.degrees(np.arctan2(size / 2.0, focal)) if focal > 0 else float("nan")
            return (
                f"{name} = {focal:g} px gives a {fov:.3g} degree field of view at {width}x{height}: expected "
                f"{low * size:g} <= {name} <= {high * size:g} px (intrinsics in other units or of another resolution?)"
            )
    if not 1.0 / MAX_PIXEL_ASPECT <= fx / fy <= MAX_PIXEL_ASPECT:
        return f"fx / fy = {fx:g} / {fy:g} = {fx / fy:.3g}: pixels that unequal are not a camera's (expected 0.25-4)"
    if not (-0.5 <= cx <= width - 0.5 and -0.5 <= cy <= height - 0.5):
        return (
            f"principal point ({cx:g}, {cy:g}) lies off the {width}x{height} image "
            "(intrinsics of another resolution?)"
        )
    return None


def calibration_yaml_to_info(data: Any, source: str = "camera YAML") -> dict[str, Any]:
    """A ROS camera_calibration YAML (what camera_calibration and camera_info_manager write), parsed, -> the
    CameraInfo-like dict ``Camera.from_camera_info`` takes; ``CameraError`` names what is missing."""
    required = ("image_width", "image_height", "camera_matrix")
    missing = [key for key in required if not isinstance(data, Mapping) or key not in data]
    if missing:
        raise CameraError(f"{source} lacks {', '.join(missing)} (expected the ROS camera_calibration format)")
    distortion = data.get("distortion_coefficients") or {}
    return {
        "width": data["image_width"],
        "height": data["image_height"],
        "k": (data["camera_matrix"] or {}).get("data", []),
        "d": distortion.get("data", []) if isinstance(distortion, Mapping) else distortion,
        "distortion_model": data.get("distortion_model", ""),
    }
