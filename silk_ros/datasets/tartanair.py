"""TartanAir reader (public layout of one trajectory, e.g. ``abandonedfactory/Easy/P000``).

Layout: ``image_left/NNNNNN_left.png`` (640x480 colour), ``pose_left.txt`` (one line per image,
``tx ty tz qx qy qz qw``), optional ``depth_left/NNNNNN_left_depth.npy`` (float32 metres, 640x480).

Conventions, as documented in TartanAir's ``tartanair_tools`` (``data_type.md``; mirrored in
princeton-vl/DROID-SLAM ``thirdparty/tartanair_tools``):

- "tx ty tz give the position of the optical center of the color camera with respect to the world origin in the
  world frame; qx qy qz qw its orientation ... The camera motion is defined in the NED frame: the x-axis is pointing
  to the camera's forward, the y-axis to the camera's right, the z-axis to the camera's downward."
  So each line is ``T_world_cam`` with both frames in NED axes. We return ``T_world_cam`` of the OPTICAL camera
  frame (x right, y down, z forward) like every reader, with the world's axes relabelled the same way, which is
  what ``tartanair_tools/evaluation/trajectory_transform.py:ned2cam`` does: ``T_opt = R @ T_ned @ R^-1`` with
  ``R`` mapping NED (forward, right, down) to optical (right, down, forward). World +y is therefore down
  (gravity), world +z the NED world's north.
- Intrinsics (``data_type.md``): fx = fy = 320, cx = 320, cy = 240 at 640x480 (90 deg field of view), no
  distortion. Images of another size need ``camera=``.
- Depth: metres; the sky is a large finite value (~10000 m), kept as it is (the odometry's ``depth_max`` drops it);
  non-finite or non-positive values become NaN.
- TartanAir publishes no timestamps: frame ``i`` is stamped ``i / frame_rate`` (default 10 Hz, an assumption that
  only sets the time axis of reports).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from silk_ros.datasets.base import DatasetError, Sequence, load_table, read_image, require_dir, require_file
from silk_ros.geometry.camera import Camera
from silk_ros.geometry.pose import make_pose
from silk_ros.geometry.trajectory import Trajectory, TrajectoryError, tum_rows_to_poses

#: TartanAir's published pinhole calibration (fx, fy, cx, cy, width, height).
TARTANAIR_INTRINSICS = (320.0, 320.0, 320.0, 240.0, 640, 480)
#: Rotation taking NED (x forward, y right, z down) vectors to optical (x right, y down, z forward) ones.
R_OPT_NED = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
DEFAULT_FRAME_RATE_HZ = 10.0


def ned_to_optical(poses_ned: np.ndarray) -> np.ndarray:
    """(N, 4, 4) ``T_world_cam`` in NED axes -> the same poses in optical axes (tartanair_tools' ``ned2cam``)."""
    T = make_pose(R_OPT_NED)
    return T @ np.asarray(poses_ned, dtype=np.float64) @ T.T


def read_tartanair_poses(path: Path) -> np.ndarray:
    """``pose_left.txt`` (7 numbers per line, NED) -> (N, 4, 4) optical-frame ``T_world_cam``."""
    rows = load_table(path, "TartanAir pose file (pose_left.txt)")
    if rows.shape[1] != 7:
        raise DatasetError(f"{path}: expected 7 numbers per line 'tx ty tz qx qy qz qw', got {rows.shape[1]}")
    try:
        return ned_to_optical(tum_rows_to_poses(rows))
    except TrajectoryError as err:
        raise DatasetError(f"{path}: {err}") from None


class TartanAir(Sequence):
    """One TartanAir trajectory. Options: ``camera`` (override), ``depth`` (use depth_left/ when present),
    ``frame_rate`` (Hz, for the timestamps), base options."""

    def __init__(self, path: str | Path, camera: Camera | dict[str, Any] | None = None, depth: bool = True,
                 frame_rate: float = DEFAULT_FRAME_RATE_HZ, **options):
        self.root = Path(path)
        image_dir = require_dir(self.root / "image_left", "TartanAir image folder (image_left/)")
        poses = read_tartanair_poses(self.root / "pose_left.txt")
        count = len(list(image_dir.glob("*_left.png")))
        if count != len(poses):
            raise DatasetError(f"{image_dir} holds {count} *_left.png images but pose_left.txt has {len(poses)} poses")
        if not frame_rate > 0:
            raise DatasetError(f"frame_rate must be positive, got {frame_rate}")
        self._files = [image_dir / f"{i:06d}_left.png" for i in range(len(poses))]
        self._depth_files = [self.root / "depth_left" / f"{i:06d}_left_depth.npy" for i in range(len(poses))]
        stamps = np.arange(len(poses)) / float(frame_rate)
        first = read_image(require_file(self._files[0], "first TartanAir image"))
        cam = self._camera(camera, first.shape[1], first.shape[0])
        use_depth = depth and self._depth_files[0].is_file()
        name = "/".join(self.root.resolve().parts[-3:])
        super().__init__(f"tartanair/{name}", cam, stamps, Trajectory(stamps, poses), has_depth=use_depth,
                         **options)

    def _camera(self, camera: Camera | dict[str, Any] | None, width: int, height: int) -> Camera:
        if camera is not None:
            return camera if isinstance(camera, Camera) else Camera.from_camera_info(camera)
        fx, fy, cx, cy, w, h = TARTANAIR_INTRINSICS
        if (width, height) != (w, h):
            raise DatasetError(f"{self._files[0]} is {width}x{height}; TartanAir's published intrinsics are for "
                               f"{w}x{h}: pass camera=")
        return Camera.from_intrinsics(fx, fy, cx, cy, w, h)

    def describe_source(self, source_index: int) -> str:
        return str(self._files[source_index])

    def _read_image(self, source_index: int) -> np.ndarray:
        return read_image(require_file(self._files[source_index], "TartanAir image"))

    def _read_depth(self, source_index: int) -> np.ndarray | None:
        path = require_file(self._depth_files[source_index], "TartanAir depth (depth_left/*_left_depth.npy)")
        try:
            depth = np.load(path).astype(np.float32)
        except (ValueError, OSError) as err:
            raise DatasetError(f"cannot read TartanAir depth {path}: {err}") from None
        if depth.ndim != 2:
            raise DatasetError(f"TartanAir depth {path} has shape {depth.shape}, expected HxW")
        depth[~(np.isfinite(depth) & (depth > 0))] = np.nan
        return depth
