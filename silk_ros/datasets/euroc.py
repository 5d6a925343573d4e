"""EuRoC MAV reader (ETH ASL layout).

Layout: ``<seq>/mav0/cam0/{data/<ns>.png, data.csv, sensor.yaml}``; ``path`` is ``<seq>`` or ``<seq>/mav0``.
Images are raw (distorted): the camera keeps the radial-tangential (plumb_bob) model from ``sensor.yaml``.

Ground truth, first found of:
1. ``<seq>/groundtruth_body_tum.txt`` (TUM format, world <- body/IMU), or ``ground_truth=`` a TUM file;
2. ``mav0/state_groundtruth_estimate0/data.csv`` (original ASL: ns, p_RS_R xyz, q_RS wxyz, ...), world <- body.
Both give ``T_world_body``; the image camera is ``T_world_cam = T_world_body @ T_BS`` with ``T_BS`` (sensor to
body) from ``sensor.yaml``, so the result is the cam0 optical frame like every other reader.
Ground truth is matched to images within 2.5 ms (half the 200 Hz ground-truth period).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from silk_ros.datasets.base import DatasetError, Sequence, read_image, require_dir, require_file
from silk_ros.geometry.camera import Camera
from silk_ros.geometry.trajectory import Trajectory, tum_rows_to_poses


def read_sensor_yaml(path: Path) -> dict:
    """ASL ``sensor.yaml`` (OpenCV-flavoured ``%YAML:1.0`` header that PyYAML rejects is skipped)."""
    text = require_file(path, "EuRoC sensor calibration").read_text()
    try:
        data = yaml.safe_load("\n".join(line for line in text.splitlines() if not line.startswith("%")))
    except yaml.YAMLError as err:
        raise DatasetError(f"cannot parse {path}: {err}") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path} is not a sensor description")
    return data


def camera_from_sensor_yaml(path: Path) -> tuple[Camera, np.ndarray]:
    """(Camera, T_BS 4x4) from an ASL camera ``sensor.yaml``."""
    data = read_sensor_yaml(path)
    try:
        fx, fy, cx, cy = (float(v) for v in data["intrinsics"])
        width, height = (int(v) for v in data["resolution"])
        dist = [float(v) for v in data.get("distortion_coefficients", [])]
        model = str(data.get("distortion_model", "radial-tangential"))
        T_BS = np.asarray(data["T_BS"]["data"], dtype=np.float64).reshape(4, 4)
    except (KeyError, TypeError, ValueError) as err:
        raise DatasetError(f"{path}: missing or malformed camera field ({err})") from None
    if data.get("camera_model", "pinhole") != "pinhole":
        raise DatasetError(f"{path}: only the pinhole camera_model is supported, got {data.get('camera_model')!r}")
    return Camera.from_intrinsics(fx, fy, cx, cy, width, height, dist, model), T_BS


def read_asl_groundtruth(path: Path) -> Trajectory:
    """``state_groundtruth_estimate0/data.csv`` -> T_world_body (quaternion stored w first)."""
    try:
        data = np.loadtxt(path, delimiter=",", comments="#", ndmin=2)
    except ValueError as err:
        raise DatasetError(f"cannot parse {path}: {err}") from None
    if data.shape[1] < 8:
        raise DatasetError(f"{path}: expected 'timestamp, px, py, pz, qw, qx, qy, qz, ...' per line")
    rows = np.column_stack([data[:, 1:4], data[:, 5:8], data[:, 4]])
    return Trajectory(data[:, 0] * 1e-9, tum_rows_to_poses(rows))


class EurocAsl(Sequence):
    """EuRoC sequence. Options: ``camera`` ("cam0"/"cam1"), ``ground_truth`` (TUM file override), base options."""

    gt_max_dt = 0.0025

    def __init__(self, path: str | Path, camera: str = "cam0", ground_truth: str | Path | None = None, **options):
        path = Path(path)
        mav = path if path.name == "mav0" else path / "mav0"
        seq_dir = mav.parent
        cam_dir = require_dir(mav / camera, f"EuRoC camera folder {camera}")
        cam, self.T_body_cam = camera_from_sensor_yaml(cam_dir / "sensor.yaml")
        csv = require_file(cam_dir / "data.csv", "EuRoC image list")
        stamps_ns, self._files = [], []
        for lineno, line in enumerate(csv.read_text().splitlines(), start=1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = [f.strip() for f in line.split(",")]
            try:
                stamps_ns.append(int(fields[0]))
                self._files.append(cam_dir / "data" / fields[1])
            except (ValueError, IndexError):
                raise DatasetError(f"{csv}:{lineno}: expected 'timestamp_ns,filename', got {line!r}") from None
        if not stamps_ns:
            raise DatasetError(f"{csv} lists no images")
        self.stamps_ns = np.asarray(stamps_ns, dtype=np.int64)
        gt_body = self._read_body_ground_truth(seq_dir, mav, ground_truth)
        gt = None if gt_body is None else Trajectory(gt_body.timestamps, gt_body.poses @ self.T_body_cam)
        super().__init__(f"euroc/{seq_dir.name}/{camera}", cam, self.stamps_ns * 1e-9, gt, **options)

    @staticmethod
    def _read_body_ground_truth(seq_dir: Path, mav: Path, override: str | Path | None) -> Trajectory | None:
        if override is not None:
            return Trajectory.read_tum(override)
        if (seq_dir / "groundtruth_body_tum.txt").is_file():
            return Trajectory.read_tum(seq_dir / "groundtruth_body_tum.txt")
        asl = mav / "state_groundtruth_estimate0" / "data.csv"
        return read_asl_groundtruth(asl) if asl.is_file() else None

    def describe_source(self, source_index: int) -> str:
        return str(self._files[source_index])

    def _read_image(self, source_index: int) -> np.ndarray:
        return read_image(require_file(self._files[source_index], "EuRoC image"))
