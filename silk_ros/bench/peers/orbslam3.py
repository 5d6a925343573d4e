"""ORB-SLAM3 (through the ``pyorbslam3`` wheel) as a benchmark peer, monocular and RGB-D.

A full SLAM system (local mapping, covisibility BA, loop closing) against our keyframe VO: run at the settings
of ORB-SLAM3's own TUM examples (1000 ORB features, 8 levels at 1.2, FAST 20/7; RGB-D close/far threshold 40 x
7.7 cm), at full input resolution, with the dataset reader's camera (and its distortion) and an ORB vocabulary
trained on ``../shared/data/train`` photos (``python -m training.orb_vocabulary``), never on benchmark sequences.

Evaluated: the pose ORB-SLAM3 returns for each frame as it tracks it (causal, like silk_ros' output), not the
trajectory it refines afterwards. Frames without a valid pose (before its map is initialised, or LOST) are lost
and left out of the trajectory. ``pyorbslam3`` (GPL-3.0) is imported here only, when the peer is built.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from silk_ros.geometry.camera import Camera

from .base import PeerOdometry, PeerOptions, PeerStep, PeerUnavailable

__all__ = ["OrbSlam3", "settings_yaml"]

#: ORB-SLAM3's example settings (Examples/RGB-D/TUM1.yaml, Examples/Monocular/TUM1.yaml) that are not calibration.
EXAMPLE_SETTINGS = {
    "ORBextractor.nFeatures": 1000,
    "ORBextractor.scaleFactor": 1.2,
    "ORBextractor.nLevels": 8,
    "ORBextractor.iniThFAST": 20,
    "ORBextractor.minThFAST": 7,
    "Viewer.KeyFrameSize": 0.05,
    "Viewer.KeyFrameLineWidth": 1.0,
    "Viewer.GraphLineWidth": 0.9,
    "Viewer.PointSize": 2.0,
    "Viewer.CameraSize": 0.08,
    "Viewer.CameraLineWidth": 3.0,
    "Viewer.ViewpointX": 0.0,
    "Viewer.ViewpointY": -0.7,
    "Viewer.ViewpointZ": -1.8,
    "Viewer.ViewpointF": 500.0,
}
RGBD_SETTINGS = {"Stereo.ThDepth": 40.0, "Stereo.b": 0.07732, "RGBD.DepthMapFactor": 1.0}  # depth in metres


def _import_pyorbslam3() -> Any:
    try:
        import pyorbslam3
    except ImportError as err:
        raise PeerUnavailable(
            f"orbslam3 needs pyorbslam3 ({err}): pip install -r requirements-bench.txt (or make bench)"
        ) from None
    return pyorbslam3


def settings_yaml(camera: Camera, mode: str, frame_rate_hz: float = 30.0) -> str:
    """ORB-SLAM3's settings file (format 1.0) for this camera and frame rate: pinhole with plumb_bob distortion (k1 k2
    p1 p2 [k3]) or none; images in OpenCV's BGR order."""
    if not frame_rate_hz >= 1.0:
        raise ValueError(f"orbslam3 peer: frame rate {frame_rate_hz} Hz, expected at least 1 Hz")
    if camera.model not in ("none", "plumb_bob"):
        raise PeerUnavailable(f"orbslam3 peer: camera model {camera.model} is not passed to ORB-SLAM3 here")
    values: dict[str, Any] = {
        "File.version": '"1.0"',
        "Camera.type": '"PinHole"',
        "Camera1.fx": camera.fx, "Camera1.fy": camera.fy, "Camera1.cx": camera.cx, "Camera1.cy": camera.cy,
    }
    distortion = list(camera.distortion) if camera.model == "plumb_bob" else []
    for name, value in zip(("k1", "k2", "p1", "p2", "k3"), distortion, strict=False):
        values[f"Camera1.{name}"] = float(value)
    values.update({"Camera.width": camera.width, "Camera.height": camera.height, "Camera.fps": round(frame_rate_hz),
                   "Camera.RGB": 0})
    if mode == "rgbd":
        values.update(RGBD_SETTINGS)
    values.update(EXAMPLE_SETTINGS)
    return "%YAML:1.0\n" + "".join(f"{key}: {value}\n" for key, value in values.items())


class OrbSlam3(PeerOdometry):
    """ORB-SLAM3 monocular or RGB-D; the system is built at the first frame (it needs the camera)."""

    name = "orbslam3"
    hold_lost_poses = False

    def __init__(self, mode: str, options: PeerOptions | None = None) -> None:
        self._pos = _import_pyorbslam3()
        options = options or PeerOptions()
        if options.vocabulary is None or not Path(options.vocabulary).is_file():
            raise PeerUnavailable(
                f"orbslam3 needs an ORB vocabulary, {options.vocabulary} not found: train one on non-benchmark "
                f"photos with python -m training.orb_vocabulary --out {options.vocabulary} (make bench does)"
            )
        self._mode, self._options = mode, options
        self.backend = f"ORB-SLAM3 (pyorbslam3, {mode}, vocabulary {Path(options.vocabulary).name})"
        self._slam: Any = None
        super().__init__()

    def restart(self) -> None:
        self.close()

    def _start(self, camera: Camera) -> None:
        work = Path(self._options.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        settings = work / f"orbslam3_{self._mode}.yaml"
        settings.write_text(settings_yaml(camera, self._mode, self._options.frame_rate_hz))
        self._quiet(work / "orbslam3.log")
        sensor = self._pos.Sensor.RGBD if self._mode == "rgbd" else self._pos.Sensor.MONOCULAR
        sys.stderr.flush()
        stderr = os.dup(2)
        os.dup2(1, 2)  # its settings report while it starts goes to stderr: into the log as well
        try:
            self._slam = self._pos.Slam(str(self._options.vocabulary), str(settings), sensor, use_viewer=False)
        finally:
            os.dup2(stderr, 2)
            os.close(stderr)

    def _quiet(self, log: Path) -> None:
        """ORB-SLAM3 prints every tracking failure on stdout, from its threads too: its stdout goes to ``log``
        while the system lives (the bench's own output is on stderr until it ends)."""
        sys.stdout.flush()
        self._stdout = os.dup(1)
        with open(log, "ab") as file:
            os.dup2(file.fileno(), 1)

    def _loud(self) -> None:
        if getattr(self, "_stdout", None) is not None:
            sys.stdout.flush()
            os.dup2(self._stdout, 1)
            os.close(self._stdout)
            self._stdout = None

    def step(self, image: np.ndarray, timestamp: float, camera: Camera, depth: np.ndarray | None) -> PeerStep:
        if self._slam is None:
            self._start(camera)
        if self._mode == "rgbd":
            if depth is None:
                raise PeerUnavailable("orbslam3 in RGB-D mode: the frame has no depth image")
            metres = np.nan_to_num(depth.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
            result = self._slam.track_rgbd(image, metres, timestamp)
        else:
            result = self._slam.track_monocular(image, timestamp)
        if not result.pose_valid or result.pose_wc is None:
            return PeerStep(None)
        return PeerStep(np.asarray(result.pose_wc, dtype=np.float64), inliers=int(result.num_tracked_points))

    def close(self) -> None:
        if getattr(self, "_slam", None) is not None:
            self._slam.shutdown()
            self._slam = None
        self._loud()
