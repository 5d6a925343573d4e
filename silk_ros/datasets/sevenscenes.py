"""Microsoft 7-Scenes reader.

Layout: ``<scene>/seq-XX/frame-XXXXXX.{color.png|color.jpg, depth.png, pose.txt}`` and optionally
``<scene>/camera-intrinsics.txt`` (3x3 K); ``path`` is ``<scene>`` (pass ``seq="seq-01"`` when it holds several)
or ``<scene>/seq-XX``.

- Poses: ``pose.txt`` is a 4x4 camera-to-world matrix (``T_world_cam``); frames whose pose is not finite
  (the dataset marks tracking failures with inf) simply have no ground truth.
- Timestamps: the dataset has none; frames were recorded by a Kinect at 30 Hz, so ``t = frame_number / 30``.
- Depth: uint16 millimetres, 65535 = invalid (and 0, which the Kinect also emits) -> NaN.
- Calibration: the only published values (585, 320, 240, no distortion) are those of the DEPTH camera, and
  colour and depth are NOT registered (a few pixels of parallax between them). Like most published 7-Scenes
  pipelines we use both images as they are, with the same K = (585, 585, 320, 240) for colour and depth.
  We checked the alternative colour focal 525 (the nominal Kinect RGB focal) on redkitchen seq-01: 5-point
  relative rotations between colour frames 25 apart (47 pairs, SIFT, OpenCV RANSAC) have a median error vs
  ground truth of 1.87 deg with f = 585 and 1.90 deg with f = 525, i.e. no evidence for 525. So colour keeps the
  published values (and stays consistent with the depth we back-project). ``color_focal=`` or ``camera=``
  override it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from silk_ros.datasets.base import DatasetError, Sequence, read_depth_png, read_image, require_dir, require_file
from silk_ros.geometry.camera import Camera
from silk_ros.geometry.trajectory import Trajectory

FRAME_RATE_HZ = 30.0
DEPTH_K = np.array([[585.0, 0.0, 320.0], [0.0, 585.0, 240.0], [0.0, 0.0, 1.0]])


class SevenScenes(Sequence):
    """7-Scenes sequence. Options: ``seq``, ``camera`` (override), ``color_focal``, ``depth``, base options."""

    def __init__(
        self,
        path: str | Path,
        seq: str | None = None,
        camera: Camera | dict[str, Any] | None = None,
        color_focal: float | None = None,
        depth: bool = True,
        **options,
    ):
        path = Path(path)
        if re.fullmatch(r"seq-\d+", path.name):
            seq_dir, scene_dir = path, path.parent
        else:
            available = sorted(p.name for p in path.glob("seq-*") if p.is_dir())
            if not available:
                raise DatasetError(f"no seq-XX folder in {path} (expected <scene>/seq-XX/frame-XXXXXX.pose.txt)")
            if seq is None:
                if len(available) != 1:
                    raise DatasetError(f"{path} holds sequences {available}: pass seq='seq-XX'")
                seq = available[0]
            seq_dir, scene_dir = require_dir(path / seq, f"7-Scenes sequence {seq!r}"), path
        pose_files = sorted(seq_dir.glob("frame-*.pose.txt"))
        if not pose_files:
            raise DatasetError(f"no frame-XXXXXX.pose.txt files in {seq_dir}")
        stems = [p.name[: -len(".pose.txt")] for p in pose_files]
        numbers = np.array([int(s.split("-")[1]) for s in stems])
        self._color = [self._colour_file(seq_dir, s) for s in stems]
        self._depth_files = [seq_dir / f"{s}.depth.png" for s in stems]
        poses = np.stack([self._read_pose(p) for p in pose_files])
        stamps = numbers / FRAME_RATE_HZ
        valid = np.isfinite(poses).reshape(len(poses), -1).all(axis=1)
        gt = Trajectory(stamps[valid], poses[valid])
        use_depth = depth and self._depth_files[0].is_file()
        first = read_image(self._color[0])
        if camera is not None:
            cam = camera if isinstance(camera, Camera) else Camera.from_camera_info(camera)
        else:
            K = self._read_intrinsics(scene_dir / "camera-intrinsics.txt")
            if color_focal is not None:
                K[0, 0] = K[1, 1] = color_focal
            cam = Camera(first.shape[1], first.shape[0], K)
        super().__init__(f"7scenes/{scene_dir.name}/{seq_dir.name}", cam, stamps, gt, has_depth=use_depth, **options)

    @staticmethod
    def _colour_file(seq_dir: Path, stem: str) -> Path:
        for suffix in (".color.png", ".color.jpg"):
            if (seq_dir / f"{stem}{suffix}").is_file():
                return seq_dir / f"{stem}{suffix}"
        raise DatasetError(f"missing colour image {seq_dir / stem}.color.png (or .jpg)")

    @staticmethod
    def _read_pose(path: Path) -> np.ndarray:
        try:
            pose = np.loadtxt(path)
        except ValueError as err:
            raise DatasetError(f"cannot parse 7-Scenes pose {path}: {err}") from None
        if pose.shape != (4, 4):
            raise DatasetError(f"{path}: expected a 4x4 matrix, got shape {pose.shape}")
        return pose

    @staticmethod
    def _read_intrinsics(path: Path) -> np.ndarray:
        if not path.is_file():
            return DEPTH_K.copy()
        try:
            K = np.loadtxt(path)
        except ValueError as err:
            raise DatasetError(f"cannot parse {path}: {err}") from None
        if K.shape != (3, 3):
            raise DatasetError(f"{path}: expected a 3x3 matrix, got shape {K.shape}")
        return K

    def describe_source(self, source_index: int) -> str:
        return str(self._color[source_index])

    def _read_image(self, source_index: int) -> np.ndarray:
        return read_image(require_file(self._color[source_index], "7-Scenes colour image"))

    def _read_depth(self, source_index: int) -> np.ndarray | None:
        path = require_file(self._depth_files[source_index], "7-Scenes depth image")
        return read_depth_png(path, 1e-3, invalid=(0, 65535))
