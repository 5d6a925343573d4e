"""Generic image folder: your own recording as a sequence (format ``"folder"``).

Layout: images (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``, ``.tif``, ``.tiff``) in ``path`` itself or in
``path/images/``; beside them (in ``path``), optionally:

- ``camera.yaml`` / ``camera.json``: the intrinsics, unless ``camera=`` is given. Either the short form
  ``{fx, fy, cx, cy}`` with optional ``width``/``height`` (default: the first image's size), ``distortion``
  (list) and ``distortion_model`` (default plumb_bob when distortion is given), or a ROS camera_calibration
  YAML (``image_width``, ``camera_matrix``, ...). ``camera=`` also takes a :class:`Camera`, a CameraInfo dict,
  a file path or the numbers ``(fx, fy, cx, cy[, d1, ...])``.
- ``times.txt``: one timestamp (seconds) per line, one line per image in name order (or ``times=``).
- ``groundtruth.txt``: TUM format ``timestamp tx ty tz qx qy qz qw``, ``T_world_cam`` of the optical frame
  (or ``ground_truth=``).

Timestamps, first that applies: ``times.txt``; else the file names, when every name (without suffix) is a
number: seconds (``1305031102.175304.png``), or nanoseconds for integers of 16 digits or more
(``1403636579763555584.png``, EuRoC and ROS-bag exports); else ``index / frame_rate`` (default 30 Hz).
Images are taken in name order (numeric where the names are numbers, so ``2.png`` comes before ``10.png``).
Ground truth is paired with the images by timestamp, nearest within ``gt_max_dt`` (0.02 s, as TUM's
``associate.py``); a ground truth that pairs with no image is an error, not an empty evaluation.
No depth: this format is monocular.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence as Numbers
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from silk_ros.datasets.base import DatasetError, Sequence, load_table, read_image, require_file
from silk_ros.geometry.camera import Camera, CameraError, calibration_yaml_to_info
from silk_ros.geometry.trajectory import Trajectory, TrajectoryError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
CALIBRATION_FILES = ("camera.yaml", "camera.yml", "camera.json")
DEFAULT_FRAME_RATE_HZ = 30.0
#: Integer file names with this many digits or more are nanoseconds (a 2001+ time in seconds has 10).
NANOSECOND_DIGITS = 16

CameraSpec = Camera | dict[str, Any] | str | Path | Numbers[float] | None


def list_images(root: Path) -> list[Path]:
    """The images of ``root`` (or ``root/images``), in name order (numeric when the names are numbers)."""
    for folder in (root, root / "images"):
        files = [p for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
        if files:
            return sorted(files, key=_name_key)
    raise DatasetError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {root} or {root / 'images'}")


def _name_key(path: Path) -> tuple:
    """Natural order: digit runs compare as numbers (frame2 < frame10, 9.5 < 10.25)."""
    if _is_number(path.stem):
        return (0, float(path.stem), path.name)
    return (1, 0.0, [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.stem)])


def _is_number(text: str) -> bool:
    return re.fullmatch(r"\d+(\.\d+)?", text) is not None


def stamps_from_names(files: list[Path]) -> np.ndarray | None:
    """Seconds from numeric file names (nanoseconds when integer with >= 16 digits); None if any is not numeric."""
    stems = [p.stem for p in files]
    if not all(_is_number(s) for s in stems):
        return None
    return np.array([int(s) * 1e-9 if s.isdigit() and len(s) >= NANOSECOND_DIGITS else float(s) for s in stems])


def read_times(path: Path, count: int) -> np.ndarray:
    """``times.txt``: one number per line (``#`` comments allowed), exactly one per image."""
    stamps = load_table(path, "times file", ndmin=1)
    if stamps.ndim != 1 or len(stamps) != count:
        raise DatasetError(f"{path} has {stamps.size} timestamps for {count} images (one number per line, per image)")
    return stamps


def camera_from_mapping(data: dict[str, Any], width: int, height: int, source: str) -> Camera:
    """The short calibration form ``{fx, fy, cx, cy, [width, height, distortion, distortion_model]}``."""
    missing = [key for key in ("fx", "fy", "cx", "cy") if key not in data]
    if missing:
        raise DatasetError(f"{source} lacks {', '.join(missing)} (expected fx, fy, cx, cy or a ROS camera YAML)")
    try:
        return Camera.from_intrinsics(
            float(data["fx"]), float(data["fy"]), float(data["cx"]), float(data["cy"]),
            int(data.get("width", width)), int(data.get("height", height)),
            [float(v) for v in data.get("distortion") or ()], data.get("distortion_model"),
        )
    except (CameraError, TypeError, ValueError) as err:
        raise DatasetError(f"{source}: {err}") from None


def read_calibration(path: Path, width: int, height: int) -> Camera:
    """A calibration file: the short form (YAML or JSON) or a ROS camera_calibration YAML."""
    require_file(path, "camera calibration")
    try:
        data = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise DatasetError(f"cannot parse camera calibration {path}: {err}") from None
    if isinstance(data, dict) and "camera_matrix" in data:
        try:
            return Camera.from_camera_info(calibration_yaml_to_info(data, f"camera YAML {path}"))
        except (CameraError, TypeError, ValueError) as err:
            raise DatasetError(f"{path}: {err}") from None
    if not isinstance(data, dict):
        raise DatasetError(f"camera calibration {path} is not a mapping of fx, fy, cx, cy")
    return camera_from_mapping(data, width, height, str(path))


def resolve_camera(camera: CameraSpec, root: Path, width: int, height: int) -> Camera:
    """The folder's camera from ``camera=`` (any accepted form) or the calibration file beside the images."""
    if isinstance(camera, Camera):
        return camera
    if isinstance(camera, dict):
        if "k" in camera or "K" in camera:
            return Camera.from_camera_info(camera)
        return camera_from_mapping(camera, width, height, "camera=")
    if isinstance(camera, (str, Path)):
        return read_calibration(Path(camera), width, height)
    if camera is not None:
        numbers = [float(v) for v in camera]
        if len(numbers) < 4:
            raise DatasetError(f"intrinsics need fx fy cx cy [distortion...], got {len(numbers)} numbers")
        return camera_from_mapping({"fx": numbers[0], "fy": numbers[1], "cx": numbers[2], "cy": numbers[3],
                                    "distortion": numbers[4:]}, width, height, "intrinsics")
    for name in CALIBRATION_FILES:
        if (root / name).is_file():
            return read_calibration(root / name, width, height)
    raise DatasetError(f"no intrinsics for {root}: add {' or '.join(CALIBRATION_FILES[::2])} there "
                       "or pass them (--intrinsics FX FY CX CY [D...] or --calib FILE)")


def read_ground_truth(path: Path) -> Trajectory:
    """A TUM trajectory file, its errors as :class:`DatasetError`."""
    require_file(path, "ground truth (TUM format)")
    try:
        return Trajectory.read_tum(path)
    except TrajectoryError as err:
        raise DatasetError(str(err)) from None


class ImageFolder(Sequence):
    """A folder of images + intrinsics (+ optional TUM ground truth). Options: ``camera``, ``times``,
    ``ground_truth``, ``frame_rate``, ``gt_max_dt``, base options."""

    def __init__(self, path: str | Path, camera: CameraSpec = None, times: str | Path | None = None,
                 ground_truth: str | Path | None = None, frame_rate: float = DEFAULT_FRAME_RATE_HZ,
                 gt_max_dt: float = 0.02, **options):
        self.root = Path(path)
        self._files = list_images(self.root)
        self.timestamp_source, stamps = self._timestamps(times, frame_rate)
        first = read_image(self._files[0])
        cam = resolve_camera(camera, self.root, first.shape[1], first.shape[0])
        gt_file = Path(ground_truth) if ground_truth is not None else self.root / "groundtruth.txt"
        gt = read_ground_truth(gt_file) if ground_truth is not None or gt_file.is_file() else None
        self.gt_max_dt = gt_max_dt
        super().__init__(f"folder/{self.root.resolve().name}", cam, stamps, gt, has_depth=False, **options)
        if gt is not None and not np.any(self._gt_at_frame >= 0):
            raise DatasetError(
                f"ground truth {gt_file} has no pose within {gt_max_dt} s of an image time ({self.timestamp_source}: "
                f"{self.timestamps[0]:.6f}..{self.timestamps[-1]:.6f} s, ground truth "
                f"{gt.timestamps[0]:.6f}..{gt.timestamps[-1]:.6f} s)"
            )

    def _timestamps(self, times: str | Path | None, frame_rate: float) -> tuple[str, np.ndarray]:
        times_file = Path(times) if times is not None else self.root / "times.txt"
        if times is not None or times_file.is_file():
            return f"times from {times_file}", read_times(times_file, len(self._files))
        from_names = stamps_from_names(self._files)
        if from_names is not None:
            if np.any(np.diff(from_names) <= 0):
                raise DatasetError(f"image names in {self._files[0].parent} repeat a timestamp")
            return "times from the file names", from_names
        if not frame_rate > 0:
            raise DatasetError(f"frame_rate must be positive, got {frame_rate}")
        return f"index / {frame_rate:g} Hz", np.arange(len(self._files)) / float(frame_rate)

    def describe_source(self, source_index: int) -> str:
        return str(self._files[source_index])

    def _read_image(self, source_index: int) -> np.ndarray:
        return read_image(require_file(self._files[source_index], "image"))
