"""Dataset readers: ``open_sequence(format, path, **options) -> Sequence`` of timestamped frames.

Formats (each in its own module, original public layouts, see the module docstrings):
``"kitti"`` (KITTI odometry), ``"tum"`` (TUM RGB-D), ``"euroc"`` (EuRoC ASL), ``"7scenes"`` (Microsoft
7-Scenes), ``"tartanair"`` (TartanAir, NED poses converted), ``"folder"`` (any image folder + intrinsics + optional
TUM ground truth), ``"synthetic"`` (procedurally textured scene rendered along a known path; ``path`` may be None),
``"auto"`` (guess from the folder layout).

Options for every format: ``start``, ``stride``, ``max_frames``, ``resize``; per-format extras are listed in the
format's reader. Ground truth everywhere is ``T_world_cam`` of the image camera's optical frame (see ``base``).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from silk_ros.datasets.base import DatasetError, Frame, Sequence

#: format name -> (module, class) of its reader.
FORMATS: dict[str, tuple[str, str]] = {
    "kitti": ("silk_ros.datasets.kitti", "KittiOdometry"),
    "tum": ("silk_ros.datasets.tum", "TumRgbd"),
    "euroc": ("silk_ros.datasets.euroc", "EurocAsl"),
    "7scenes": ("silk_ros.datasets.sevenscenes", "SevenScenes"),
    "tartanair": ("silk_ros.datasets.tartanair", "TartanAir"),
    "folder": ("silk_ros.datasets.folder", "ImageFolder"),
    "synthetic": ("silk_ros.datasets.synthetic", "SyntheticSequence"),
}


def detect_format(path: str | Path) -> str:
    """Guess the format of a dataset folder from the files its layout must contain."""
    root = Path(path)
    if (root / "mav0").is_dir() or (root / "cam0" / "data.csv").is_file():
        return "euroc"
    if (root / "rgb.txt").is_file():
        return "tum"
    if (root / "times.txt").is_file() or (root / "sequences").is_dir():
        return "kitti"
    if list(root.glob("frame-*.pose.txt")) or list(root.glob("seq-*/frame-*.pose.txt")):
        return "7scenes"
    if (root / "pose_left.txt").is_file() or (root / "image_left").is_dir():
        return "tartanair"
    if any((root / name).is_file() for name in ("camera.yaml", "camera.yml", "camera.json")):
        return "folder"
    raise DatasetError(
        f"cannot tell the dataset format of {root}: expected mav0/ (euroc), rgb.txt (tum), times.txt or "
        "sequences/ (kitti), seq-XX/frame-*.pose.txt (7scenes), image_left/ + pose_left.txt (tartanair) or "
        "camera.yaml/camera.json beside images (folder)"
    )


def open_sequence(format: str, path: str | Path | None = None, **options: Any) -> Sequence:
    """Open a dataset sequence lazily (no image is read until a frame is requested)."""
    name = format.lower().replace("-", "").replace("_", "")
    name = {"7scenes": "7scenes", "sevenscenes": "7scenes", "tumrgbd": "tum", "asl": "euroc"}.get(name, name)
    if name not in FORMATS and name != "auto":
        raise DatasetError(f"unknown dataset format {format!r}; expected one of {sorted(FORMATS)} or 'auto'")
    if name != "synthetic":
        _check_folder(name, path)
    if name == "auto":
        name = detect_format(path)
    module, cls = FORMATS[name]
    return getattr(importlib.import_module(module), cls)(path, **options)


def _check_folder(name: str, path: str | Path | None) -> None:
    """Every format but the synthetic one reads a folder that must exist."""
    if path is None:
        raise DatasetError(f"format {name!r} needs a dataset path")
    if not Path(path).exists():
        raise DatasetError(f"dataset path does not exist: {path}")
    if not Path(path).is_dir():
        raise DatasetError(f"dataset path is not a folder: {path}")

__all__ = ["FORMATS", "DatasetError", "Frame", "Sequence", "detect_format", "open_sequence"]
