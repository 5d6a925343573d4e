"""Open3D's RGB-D odometry as a benchmark peer: frame-to-frame, hybrid photometric + geometric term
(``compute_rgbd_odometry`` with ``RGBDOdometryJacobianFromHybridTerm``), relative poses chained into a trajectory.

Open3D's own defaults throughout (``OdometryOption()``: 20/10/5 iterations on a 3-level pyramid, depth 0-4 m,
3 cm depth difference), identity initial guess, full input resolution. Colour and depth go in as the dataset
reader gives them, with the reader's camera (7-Scenes: K = 585, 585, 320, 240 for both, colour and depth not
registered, exactly what silk_ros' RGB-D run gets). A failed call is a lost frame: its pose is held and the next
frame is aligned to the last frame that succeeded. ``open3d`` is imported here only, when the peer is built.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from silk_ros.geometry.camera import Camera

from .base import PeerOdometry, PeerOptions, PeerStep, PeerUnavailable

__all__ = ["Open3dRgbdOdometry"]


def _import_open3d() -> Any:
    try:
        import open3d
    except ImportError as err:
        raise PeerUnavailable(
            f"open3d-rgbd needs Open3D ({err}): pip install -r requirements-bench.txt (or make bench)"
        ) from None
    return open3d


class Open3dRgbdOdometry(PeerOdometry):
    """Frame-to-frame Open3D RGB-D odometry (RGB-D sequences only)."""

    name = "open3d-rgbd"
    needs_depth = True

    def __init__(self, mode: str = "rgbd", options: PeerOptions | None = None) -> None:
        self._o3d = _import_open3d()
        self.backend = f"open3d {self._o3d.__version__} (hybrid term)"
        self._option = self._o3d.pipelines.odometry.OdometryOption()
        self._jacobian = self._o3d.pipelines.odometry.RGBDOdometryJacobianFromHybridTerm()
        super().__init__()

    def restart(self) -> None:
        self._reference: Any = None  # the last frame whose pose is known, as an Open3D RGBDImage
        self._reference_pose = np.eye(4)
        self._intrinsic: Any = None

    def _rgbd(self, image: np.ndarray, depth: np.ndarray) -> Any:
        o3d = self._o3d
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        metres = np.nan_to_num(depth.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        return o3d.geometry.RGBDImage.create_from_color_and_depth(
            o3d.geometry.Image(np.ascontiguousarray(rgb)), o3d.geometry.Image(metres), depth_scale=1.0,
            depth_trunc=float(self._option.depth_max), convert_rgb_to_intensity=True,
        )

    def step(self, image: np.ndarray, timestamp: float, camera: Camera, depth: np.ndarray | None) -> PeerStep:
        if depth is None:
            raise PeerUnavailable("open3d-rgbd is an RGB-D odometry: the frame has no depth image")
        if self._intrinsic is None:
            self._intrinsic = self._o3d.camera.PinholeCameraIntrinsic(
                camera.width, camera.height, camera.fx, camera.fy, camera.cx, camera.cy
            )
        current = self._rgbd(image, depth)
        if self._reference is None:  # the first frame defines the world
            self._reference = current
            return PeerStep(self._reference_pose.copy())
        # source = current, target = reference: the result maps current-camera points into the reference camera.
        success, T_ref_cur, _ = self._o3d.pipelines.odometry.compute_rgbd_odometry(
            current, self._reference, self._intrinsic, np.eye(4), self._jacobian, self._option
        )
        if not success or not np.all(np.isfinite(T_ref_cur)):
            return PeerStep(None)
        self._reference_pose = self._reference_pose @ np.asarray(T_ref_cur)
        self._reference = current
        return PeerStep(self._reference_pose.copy())
