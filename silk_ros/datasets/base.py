"""What every dataset reader yields: timestamped :class:`Frame` s and optional ground truth.

One convention for all readers (so metrics never need to know where data came from):
- ``Frame.image``: uint8, grey HxW or BGR HxWx3 (OpenCV order), exactly as stored on disk.
- ``Frame.depth``: float32 metres, same HxW as the image, NaN where invalid; None without depth.
- ``Frame.camera``: the calibration of ``Frame.image`` (distorted raw images keep their distortion model;
  the odometry undistorts keypoints, not images).
- ``Sequence.ground_truth``: a :class:`Trajectory` of ``T_world_cam`` of the image camera's OPTICAL frame
  (x right, y down, z forward), at the dataset's own ground-truth timestamps, restricted to the time span of the
  selected frames. ``Sequence.ground_truth_at_frames()`` pairs it with the frames.

Images are read lazily, one per ``sequence[i]``: opening a 5000-frame sequence only lists files.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from silk_ros.geometry.camera import Camera
from silk_ros.geometry.trajectory import Trajectory, associate_indices


class DatasetError(ValueError):
    """A dataset folder that does not match its documented layout (the message names the file)."""


@dataclass(frozen=True, eq=False)
class Frame:
    """One image with its time, calibration, optional metric depth and (when known) ground-truth pose."""

    index: int
    timestamp: float
    image: np.ndarray
    camera: Camera
    depth: np.ndarray | None = None
    gt_pose: np.ndarray | None = None  # T_world_cam (4x4) when the dataset has a pose at this exact frame

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[0], self.image.shape[1]


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a file, else a :class:`DatasetError` naming it and what it should hold."""
    if not path.is_file():
        raise DatasetError(f"missing {what}: {path}")
    return path


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"missing {what}: {path}")
    return path


def load_table(path: Path, what: str, ndmin: int = 2) -> np.ndarray:
    """A whitespace table of numbers (``#`` comments) with its problems (missing, unparsable, empty) as one
    :class:`DatasetError` naming the file, never a numpy warning or an empty array that fails later."""
    require_file(path, what)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "input contained no data": reported below as an error
        try:
            data = np.loadtxt(path, ndmin=ndmin, comments="#")
        except ValueError as err:
            raise DatasetError(f"cannot parse {what} {path}: {err}") from None
    if data.size == 0:
        raise DatasetError(f"{what} {path} lists no frames")
    return data


def read_image(path: Path) -> np.ndarray:
    """uint8 grey or BGR image (16-bit images are not images here: that is depth)."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetError(f"cannot read image {path} (missing or not an image)")
    if image.dtype != np.uint8:
        raise DatasetError(f"image {path} is {image.dtype}, expected 8-bit")
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def read_depth_png(path: Path, metres_per_unit: float, invalid: tuple[int, ...] = (0,)) -> np.ndarray:
    """uint16 depth PNG -> float32 metres with NaN at the ``invalid`` raw values."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DatasetError(f"cannot read depth image {path}")
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise DatasetError(f"depth image {path} is {raw.dtype} {raw.shape}, expected single-channel uint16")
    depth = raw.astype(np.float32) * np.float32(metres_per_unit)
    depth[np.isin(raw, invalid)] = np.nan
    return depth


def select_indices(count: int, start: int = 0, stride: int = 1, max_frames: int | None = None) -> np.ndarray:
    """Source frame indices for the ``start``/``stride``/``max_frames`` options."""
    if stride < 1:
        raise DatasetError(f"stride must be >= 1, got {stride}")
    if start < 0:
        raise DatasetError(f"start must be >= 0, got {start}")
    if max_frames is not None and max_frames < 1:
        raise DatasetError(f"max_frames must be >= 1, got {max_frames}")
    if start >= count:
        raise DatasetError(f"start={start} is past the end of a sequence of {count} frames")
    indices = np.arange(start, count, stride)
    return indices[:max_frames] if max_frames is not None else indices


class Sequence:
    """Lazy, indexable sequence of frames. Subclasses list their files and implement ``_read_image``.

    Options shared by all formats: ``start`` (first source frame), ``stride`` (keep every n-th),
    ``max_frames`` (cap after striding), ``resize`` ((width, height) or a float factor: images and depth are
    resized, the camera rescaled with the pixel-centre convention).
    """

    #: largest |t_frame - t_gt| that counts as "ground truth at this frame" (seconds).
    gt_max_dt: float = 1e-6

    def __init__(
        self,
        name: str,
        camera: Camera,
        timestamps: np.ndarray,
        ground_truth: Trajectory | None = None,
        has_depth: bool = False,
        *,
        start: int = 0,
        stride: int = 1,
        max_frames: int | None = None,
        resize: tuple[int, int] | float | None = None,
    ):
        stamps = np.asarray(timestamps, dtype=np.float64)
        self.name = name
        self.source_camera = camera
        self.camera = camera if resize is None else camera.scaled(*_target_size(camera, resize))
        self.has_depth = has_depth
        self._source_indices = select_indices(len(stamps), start, stride, max_frames)
        self.timestamps = stamps[self._source_indices]
        self.ground_truth = _crop(ground_truth, self.timestamps, self.gt_max_dt)
        self._gt_at_frame = self._match_ground_truth()

    # ----------------------------------------------------------------------------------------- to implement
    def _read_image(self, source_index: int) -> np.ndarray:
        raise NotImplementedError

    def _read_depth(self, source_index: int) -> np.ndarray | None:
        return None

    def describe_source(self, source_index: int) -> str:
        """What file a frame came from (for error messages and reports)."""
        return f"frame {source_index}"

    # ----------------------------------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self._source_indices)

    def __repr__(self) -> str:
        depth = ", depth" if self.has_depth else ""
        gt = f", {len(self.ground_truth)} gt poses" if self.ground_truth is not None else ""
        return f"{type(self).__name__}({self.name!r}, {len(self)} frames, {self.camera}{depth}{gt})"

    def __getitem__(self, i: int) -> Frame:
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"sequence indices must be integers, got {type(i).__name__}")
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"frame {i} out of range for a sequence of {n} frames")
        i = int(i) % n
        source = int(self._source_indices[i])
        image = self._read_image(source)
        expected = (self.source_camera.height, self.source_camera.width)
        if image.shape[:2] != expected:
            raise DatasetError(
                f"{self.describe_source(source)} is {image.shape[1]}x{image.shape[0]} but the calibration says "
                f"{expected[1]}x{expected[0]}"
            )
        depth = self._read_depth(source) if self.has_depth else None
        if depth is not None and depth.shape != expected:
            raise DatasetError(f"depth of {self.describe_source(source)} has shape {depth.shape}, image {expected}")
        if self.camera is not self.source_camera:
            size = (self.camera.width, self.camera.height)
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            if depth is not None:
                depth = cv2.resize(depth, size, interpolation=cv2.INTER_NEAREST)
        gt_index = self._gt_at_frame[i]
        gt_pose = self.ground_truth.poses[gt_index].copy() if gt_index >= 0 else None
        return Frame(i, float(self.timestamps[i]), image, self.camera, depth, gt_pose)

    def __iter__(self) -> Iterator[Frame]:
        for i in range(len(self)):
            yield self[i]

    def ground_truth_at_frames(self) -> Trajectory | None:
        """Ground truth re-stamped with the frame timestamps (only frames within ``gt_max_dt`` of a gt pose)."""
        if self.ground_truth is None:
            return None
        have = self._gt_at_frame >= 0
        return Trajectory(self.timestamps[have], self.ground_truth.poses[self._gt_at_frame[have]])

    def _match_ground_truth(self) -> np.ndarray:
        matched = np.full(len(self), -1, dtype=np.int64)
        if self.ground_truth is not None:
            idx_frames, idx_gt = associate_indices(self.timestamps, self.ground_truth.timestamps, self.gt_max_dt)
            matched[idx_frames] = idx_gt
        return matched


def _target_size(camera: Camera, resize: tuple[int, int] | float) -> tuple[int, int]:
    if isinstance(resize, (int, float)) and not isinstance(resize, bool):
        if not resize > 0:
            raise DatasetError(f"resize factor must be positive, got {resize}")
        return max(1, round(camera.width * resize)), max(1, round(camera.height * resize))
    try:
        width, height = (int(v) for v in resize)
    except (TypeError, ValueError):
        raise DatasetError(f"resize must be a factor or (width, height), got {resize!r}") from None
    if width <= 0 or height <= 0:
        raise DatasetError(f"resize size must be positive, got {width}x{height}")
    return width, height


def _crop(gt: Trajectory | None, frame_stamps: np.ndarray, margin: float) -> Trajectory | None:
    """Ground truth within the frames' time span: a TUM groundtruth.txt covers far more than a short excerpt."""
    if gt is None or len(frame_stamps) == 0:
        return gt
    keep = (gt.timestamps >= frame_stamps[0] - margin) & (gt.timestamps <= frame_stamps[-1] + margin)
    return gt.subset(np.flatnonzero(keep))
