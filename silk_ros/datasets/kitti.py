"""KITTI odometry reader (official layout).

Layout: ``<root>/sequences/<seq>/{image_0/NNNNNN.png, calib.txt, times.txt}`` and ``<root>/poses/<seq>.txt``;
``path`` may be ``<root>`` (then pass ``sequence="07"`` unless only one is present) or ``<root>/sequences/<seq>``.
Images are rectified, so the camera has no distortion; K comes from the ``P<n>`` row of ``calib.txt``.

Ground truth: ``poses/<seq>.txt`` holds 3x4 ``T_world_cam0`` per frame (world = first left grey camera, an
optical frame). For ``camera="image_1..3"`` we chain the rectified baseline from ``P<n>`` so the trajectory is
still that of the image camera. Sequences 11-21 have no poses: ``ground_truth`` is then None.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from silk_ros.datasets.base import DatasetError, Sequence, load_table, read_image, require_dir, require_file
from silk_ros.geometry.camera import Camera
from silk_ros.geometry.trajectory import Trajectory


def read_kitti_calib(path: Path) -> dict[str, np.ndarray]:
    """``calib.txt`` -> {"P0": 3x4, ...}."""
    rows: dict[str, np.ndarray] = {}
    for lineno, line in enumerate(require_file(path, "KITTI calibration").read_text().splitlines(), start=1):
        if not line.strip():
            continue
        key, _, values = line.partition(":")
        try:
            numbers = np.array([float(v) for v in values.split()])
        except ValueError as err:
            raise DatasetError(f"{path}:{lineno}: {err}") from None
        if numbers.size == 12:
            rows[key.strip()] = numbers.reshape(3, 4)
    return rows


def read_kitti_poses(path: Path) -> np.ndarray:
    """``poses/<seq>.txt`` (12 numbers per line, row-major 3x4) -> (N, 4, 4)."""
    try:
        data = np.loadtxt(path, ndmin=2)
    except ValueError as err:
        raise DatasetError(f"cannot parse KITTI poses {path}: {err}") from None
    if data.shape[1] != 12:
        raise DatasetError(f"{path}: expected 12 numbers per line (3x4 pose), got {data.shape[1]}")
    poses = np.tile(np.eye(4), (len(data), 1, 1))
    poses[:, :3, :] = data.reshape(-1, 3, 4)
    return poses


class KittiOdometry(Sequence):
    """KITTI odometry sequence. Options: ``sequence`` ("07"), ``camera`` ("image_0".."image_3"), base options."""

    def __init__(self, path: str | Path, sequence: str | None = None, camera: str = "image_0", **options):
        path = Path(path)
        if (path / "sequences").is_dir():
            available = sorted(p.name for p in (path / "sequences").iterdir() if p.is_dir())
            if sequence is None:
                if len(available) != 1:
                    raise DatasetError(f"{path} holds sequences {available}: pass sequence=...")
                sequence = available[0]
            seq_dir, poses_file = path / "sequences" / sequence, path / "poses" / f"{sequence}.txt"
        else:
            seq_dir = path
            sequence = sequence or path.name
            poses_file = path.parent.parent / "poses" / f"{sequence}.txt"
        require_dir(seq_dir, f"KITTI sequence folder for sequence {sequence!r}")
        if camera not in ("image_0", "image_1", "image_2", "image_3"):
            raise DatasetError(f"KITTI camera must be image_0..image_3, got {camera!r}")
        self.image_dir = require_dir(seq_dir / camera, f"KITTI image folder {camera}")
        P = read_kitti_calib(seq_dir / "calib.txt").get(f"P{camera[-1]}")
        if P is None:
            raise DatasetError(f"{seq_dir / 'calib.txt'} has no P{camera[-1]} row")
        stamps = load_table(seq_dir / "times.txt", "KITTI timestamps", ndmin=1)
        self._files = [self.image_dir / f"{i:06d}.png" for i in range(len(stamps))]
        first = read_image(require_file(self._files[0], "first KITTI image"))
        cam = Camera(first.shape[1], first.shape[0], P[:, :3])
        gt = None
        if poses_file.is_file():
            poses = read_kitti_poses(poses_file)
            if len(poses) != len(stamps):
                raise DatasetError(f"{poses_file} has {len(poses)} poses but times.txt has {len(stamps)} frames")
            # P_n = K [I | t_n] with t_n the position of cam0's origin in cam_n: T_cam0_camn = [I | -t_n].
            T_cam0_camn = np.eye(4)
            T_cam0_camn[:3, 3] = -np.linalg.solve(P[:, :3], P[:, 3])
            gt = Trajectory(stamps, poses @ T_cam0_camn)
        super().__init__(f"kitti/{sequence}/{camera}", cam, stamps, gt, has_depth=False, **options)

    def describe_source(self, source_index: int) -> str:
        return str(self._files[source_index])

    def _read_image(self, source_index: int) -> np.ndarray:
        return read_image(require_file(self._files[source_index], "KITTI image"))
