"""TUM RGB-D reader (original layout).

Layout: ``rgb.txt`` (``timestamp rgb/<t>.png``), optional ``depth.txt`` + ``depth/`` (uint16 PNG, 5000 units
per metre, 0 = invalid; already registered to the colour camera by the Kinect driver), optional
``groundtruth.txt`` (TUM format at ~100 Hz, camera-to-world of the colour camera's optical centre).

Association: colour and depth are paired like TUM's ``associate.py`` (nearest within 0.02 s, frames without
a depth partner are dropped when depth is used); ground truth is taken at the nearest stamp within 0.02 s.

Intrinsics are not in the folder: TUM publishes them per Kinect. We pick them from the folder name
(``freiburg1``/``fr1``, ``freiburg2``/``fr2``, ``freiburg3``/``fr3``); pass ``camera=`` (a Camera or a CameraInfo
dict) to override. fr3 images were undistorted by TUM (no distortion).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from silk_ros.datasets.base import DatasetError, Sequence, read_depth_png, read_image, require_file
from silk_ros.geometry.camera import Camera
from silk_ros.geometry.trajectory import Trajectory, associate_indices

#: published colour-camera calibrations (https://cvg.cit.tum.de/data/datasets/rgbd-dataset/file_formats).
TUM_INTRINSICS: dict[str, tuple[tuple[float, float, float, float], tuple[float, ...]]] = {
    "fr1": ((517.3, 516.5, 318.6, 255.3), (0.2624, -0.9531, -0.0054, 0.0026, 1.1633)),
    "fr2": ((520.9, 521.0, 325.1, 249.7), (0.2312, -0.7849, -0.0033, -0.0001, 0.9172)),
    "fr3": ((535.4, 539.2, 320.1, 247.6), ()),
}
DEPTH_UNITS_PER_METRE = 5000.0
ASSOCIATION_MAX_DT = 0.02


def read_file_list(path: Path) -> tuple[np.ndarray, list[str]]:
    """TUM ``rgb.txt``/``depth.txt``: (timestamps, relative file names), sorted by time."""
    stamps, names = [], []
    for lineno, line in enumerate(require_file(path, "TUM file list").read_text().splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        fields = text.split()
        try:
            stamps.append(float(fields[0]))
            names.append(fields[1])
        except (ValueError, IndexError):
            raise DatasetError(f"{path}:{lineno}: expected 'timestamp filename', got {line!r}") from None
    order = np.argsort(stamps, kind="stable")
    return np.asarray(stamps)[order], [names[i] for i in order]


def tum_camera(folder_name: str, width: int, height: int) -> Camera:
    """The published calibration for the Kinect named in the folder (``..._freiburg2_...``)."""
    match = re.search(r"(?:freiburg|fr)([123])", folder_name.lower())
    if match is None:
        raise DatasetError(
            f"cannot tell which TUM Kinect (fr1/fr2/fr3) recorded {folder_name!r}: pass camera=Camera(...) "
            "or a CameraInfo dict"
        )
    (fx, fy, cx, cy), dist = TUM_INTRINSICS[f"fr{match.group(1)}"]
    return Camera.from_intrinsics(fx, fy, cx, cy, width, height, dist)


class TumRgbd(Sequence):
    """TUM RGB-D sequence. Options: ``camera`` (override), ``depth`` (use depth.txt when present), base options."""

    gt_max_dt = ASSOCIATION_MAX_DT

    def __init__(self, path: str | Path, camera: Camera | dict[str, Any] | None = None, depth: bool = True,
                 **options):
        self.root = Path(path)
        stamps, names = read_file_list(self.root / "rgb.txt")
        if len(stamps) == 0:
            raise DatasetError(f"{self.root / 'rgb.txt'} lists no images")
        self._rgb = [self.root / n for n in names]
        self._depth: list[Path] | None = None
        if depth and (self.root / "depth.txt").is_file():
            d_stamps, d_names = read_file_list(self.root / "depth.txt")
            keep, match = associate_indices(stamps, d_stamps, ASSOCIATION_MAX_DT)
            if len(keep) == 0:
                raise DatasetError(f"no depth image in {self.root / 'depth.txt'} is within 0.02 s of a colour image")
            stamps = stamps[keep]
            self._rgb = [self._rgb[i] for i in keep]
            self._depth = [self.root / d_names[j] for j in match]
        first = read_image(require_file(self._rgb[0], "first TUM colour image"))
        if camera is None:
            cam = tum_camera(self.root.name, first.shape[1], first.shape[0])
        else:
            cam = camera if isinstance(camera, Camera) else Camera.from_camera_info(camera)
        gt_file = self.root / "groundtruth.txt"
        gt = Trajectory.read_tum(gt_file) if gt_file.is_file() else None
        super().__init__(f"tum/{self.root.name}", cam, stamps, gt, has_depth=self._depth is not None, **options)

    def describe_source(self, source_index: int) -> str:
        return str(self._rgb[source_index])

    def _read_image(self, source_index: int) -> np.ndarray:
        return read_image(require_file(self._rgb[source_index], "TUM colour image"))

    def _read_depth(self, source_index: int) -> np.ndarray | None:
        path = require_file(self._depth[source_index], "TUM depth image")
        return read_depth_png(path, 1.0 / DEPTH_UNITS_PER_METRE, invalid=(0,))
