"""What a benchmark peer (an external odometry or SLAM system) must look like to ``run_dataset``: the replay
contract of ``VisualOdometry`` (``reset``, ``process``, ``trajectory``, ``keyframe_count``, ``config``,
``working_size``), so peers run through the same replay, on the same frames, into the same report and ATE code
as silk_ros' own front ends.

A peer only implements :meth:`PeerOdometry.step`: one frame in, a pose (or None when the peer has none) out.
The base class times the step, keeps the trajectory and counts lost frames.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from silk_ros.geometry.camera import Camera
from silk_ros.geometry.trajectory import Trajectory
from silk_ros.odometry.types import TrackingState

__all__ = ["PeerUnavailable", "PeerOdometry", "PeerOptions", "PeerResult", "PeerStep"]


class PeerUnavailable(RuntimeError):
    """The peer's package (or a file it needs) is missing: the message says what to install or build."""


@dataclass(frozen=True)
class PeerOptions:
    """What a peer may need besides the frames: a folder for its own files (settings it is given) and, for
    ORB-SLAM3, the ORB vocabulary (``python -m training.orb_vocabulary`` trains one on non-benchmark photos)."""

    work_dir: Path = Path("runs/bench/peers")
    vocabulary: Path | None = None
    #: the frames' rate (Hz): ORB-SLAM3 counts its keyframe and relocalisation intervals in frames of it
    frame_rate_hz: float = 30.0


@dataclass(frozen=True)
class PeerStep:
    """What a peer says about one frame: its pose (None: no pose, the frame counts as lost) and whether the peer
    made it a keyframe."""

    pose_world_cam: np.ndarray | None
    is_keyframe: bool = False
    inliers: int = 0


@dataclass
class PeerResult:
    """The fields of ``FrameResult`` that the replay and ``FrameEvents`` read."""

    timestamp: float
    state: TrackingState
    pose_world_cam: np.ndarray
    is_keyframe: bool
    inliers: int
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Extractor:
    features: str
    backend: str


@dataclass(frozen=True)
class _Config:
    """``run_sequence`` reads ``vo.config.extractor.features``: the peer's name goes there."""

    extractor: _Extractor


class PeerOdometry:
    """Base class of the peers. ``hold_lost_poses``: a frame without a pose repeats the last pose in the trajectory
    (what silk_ros' odometry does when LOST) instead of being left out of it (what a SLAM system's own output
    does: no pose before its map is initialised)."""

    name = "peer"
    backend = "peer"
    hold_lost_poses = True
    #: False: the peer has no keyframes to count (``keyframe_count`` is None, reports show "-").
    reports_keyframes = False

    def __init__(self) -> None:
        self.config = _Config(_Extractor(self.name, self.backend))
        self.extractor = self.config.extractor
        self.reset()

    def reset(self) -> None:
        self._stamps: list[float] = []
        self._poses: list[np.ndarray] = []
        self._last = np.eye(4)
        self.keyframe_count: int | None = 0 if self.reports_keyframes else None
        self.working_size: tuple[int, int] | None = None
        self.restart()

    def restart(self) -> None:
        """Forget the previous run (called by :meth:`reset`)."""

    def step(self, image: np.ndarray, timestamp: float, camera: Camera, depth: np.ndarray | None) -> PeerStep:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the peer holds (threads, files); the bench calls it after the run."""

    @property
    def trajectory(self) -> Trajectory:
        if not self._poses:
            return Trajectory(np.zeros(0), np.zeros((0, 4, 4)))
        return Trajectory(np.asarray(self._stamps), np.stack(self._poses))

    def process(self, image: np.ndarray, timestamp: float, camera: Camera, depth: np.ndarray | None = None,
                **_: Any) -> PeerResult:
        self.working_size = (camera.width, camera.height)
        start = time.perf_counter()
        step = self.step(image, float(timestamp), camera, depth)
        elapsed_ms = (time.perf_counter() - start) * 1e3
        if step.pose_world_cam is not None:
            self._last = np.asarray(step.pose_world_cam, dtype=np.float64)
            state = TrackingState.TRACKING
        else:
            state = TrackingState.LOST
        if step.pose_world_cam is not None or self.hold_lost_poses:
            self._stamps.append(float(timestamp))
            self._poses.append(self._last.copy())
        if self.keyframe_count is not None:
            self.keyframe_count += int(step.is_keyframe)
        return PeerResult(float(timestamp), state, self._last.copy(), step.is_keyframe, step.inliers,
                          {"total": elapsed_ms})
