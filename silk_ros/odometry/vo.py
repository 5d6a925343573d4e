"""Keyframe-based visual odometry, monocular or RGB-D, on any ``extract(image) -> Features`` front end.

Per frame: features -> matches against the current keyframe -> pose of the frame relative to the keyframe ->
state update.  Why frame-to-keyframe: small motions accumulate no drift (the estimate is re-solved against the
same keyframe until it is replaced), and a frame with too little parallax simply defers its translation to a
later frame instead of inventing one.

Pose of a frame relative to its keyframe, in order of preference:

* ``pnp``: the keyframe has 3D points (RGB-D: its depth; monocular: points triangulated when it was created,
  whose scale was inherited from the previous keyframe through the shared points) -> MAGSAC++ PnP + LM.  With
  ``motion_prior`` the last two frames on the same keyframe predict the pose (constant velocity) and LM refines
  it on the correspondences near the prediction; MAGSAC++ runs only when that keeps fewer inliers than
  ``good_inliers`` or 80 % of the last frame's (as ORB-SLAM tracks with its motion model first).
  Monocular scale therefore stays that of the first baseline.  Monocular poses are then refined jointly on the
  map points and the epipolar distance of every match (``epipolar_refinement``): a short-baseline map alone
  trades rotation for translation.  With ``landmark_tracking`` the landmarks of the window's other keyframes that
  the frame matches join that refinement (tracking on the local map, ``LandmarkMap.window_correspondences``).
* ``essential``: monocular without a map -> essential matrix (MAGSAC++, cheirality by ``recoverPose``); it
  initialises the map once the rotation-compensated parallax exceeds ``init_parallax_px`` and enough points
  triangulate.  The first map has a unit baseline; a later one (after a loss or a turn) takes the scale of the
  points its keyframe still carries, else the last map's median scene depth.
* ``rotation``: not enough parallax to observe translation -> pure rotation (infinite homography), the
  translation stays that of the keyframe.  Monocular translation counts as observable only when the pure-rotation
  model explains clearly fewer matches than the essential matrix (``rotation_inlier_ratio``, a GRIC-like test).
  PnP solutions below ``static_parallax_px`` also keep the keyframe's translation (``pnp-static``), so a camera
  at rest accumulates no path length.  Monocular frames whose PnP fails on the keyframe's map (the camera turning
  in place until the map leaves the view) also fall back to a pure rotation when the 2D-2D matches support one
  (state ``degraded``): the orientation keeps up through the turn instead of being held while lost.  When the
  rotation's inliers run low, the frame becomes a keyframe at the same position that carries the map points it
  still sees (moved by the rotation, no triangulation), which keeps the scale.

A new keyframe is taken when the parallax to the keyframe passes ``keyframe_parallax_px`` or the inliers fall
below ``keyframe_min_inliers`` (monocular: only with enough parallax to triangulate).  RGB-D keyframes take their
points from depth.  Monocular keyframes re-estimate their pose from all 2D-2D matches (essential matrix), with the
scale that makes the triangulated depths of the well-triangulated points shared with the old keyframe's map agree
with that map (median ratio, ``SCALE_ANGLE_FACTOR``), unless the tracked pose explains more matches and map points
(``estimation.pose_support``); they then triangulate every essential inlier and carry the old inlier points over.
A frame that builds a map (a new keyframe, or the first map) is re-matched by the keyframe matcher
(``matching.keyframe_matcher``); its matches replace the tracking matches only when they give at least as many pose
inliers (``keyframe_no_thinner``) and its pose explains the union of both match sets about as well as the tracking
pose (``estimation.supported_as_well``).

RGB-D points take the median depth of a small neighbourhood of the keypoint, and none where it spans a depth edge
or a hole (``keypoint_depth``): learned keypoints sit on edges, where the nearest sample is often the background.
RGB-D frames (``local_map_tracking``) and new keyframes have their pose refined against the depth points of the
last ``window_keyframes`` keyframes, not only those of the keyframe they are tracked on (``refine_in_window``).
Each new monocular keyframe (RGB-D: with ``rgbd_bundle``) is bundle-adjusted with the last ``window_keyframes``
keyframes and the landmarks they share (``local_map.LandmarkMap``).  Older keyframes that see a new keyframe's area
(``covisible_keyframes``, found by ``covisibility.KeyframeMemory``) join its local map: their depth points are
added to the RGB-D refinement; monocular (``covisible_bundle``) they are held fixed in the bundle adjustment,
their landmarks fused.  This module keeps the tracking policy: which pose, which state, which frame becomes a
keyframe.

Units: RGB-D runs are in metres.  Monocular runs are in the map's arbitrary unit unless a scale source is set
(``camera_height`` or ``depth_scale``): then each new keyframe measures metres per map unit and the poses,
relative poses and covariances the odometry reports are scaled by the filtered value (``metric_scale``); the map
and the tracking keep their own unit.  ``scale_state`` says which applies.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np

from ..features import build_extractor
from ..features.runtime import limit_blas_threads
from ..features.types import Features
from ..geometry.camera import Camera
from ..geometry.pose import invert_pose, make_pose, rotation_angle_deg, so3_exp, so3_log, transform_points
from ..geometry.trajectory import Trajectory
from ..matching.base import Matches
from ..matching.classic import mutual_within_radius
from . import estimation as est
from .config import OdometryConfig, uses_depth
from .covisibility import KeyframeMemory
from .depth import keypoint_depth
from .depth_alignment import FINEST_COLUMNS, DepthGrid, align_depth
from .frontend import (
    build_keyframe_matcher,
    build_vo_matcher,
    build_window_matcher,
    resize_image,
    working_camera,
    working_size,
)
from .input_checks import image_size_problem
from .keyframe import Keyframe, Observation, carry_points
from .local_map import LandmarkMap
from .metric_scale import MetricScale, ScaleState
from .rgbd_window import refine_in_window
from .types import FrameResult, TrackingState

__all__ = ["VisualOdometry", "OdometryInputError"]

class OdometryInputError(ValueError):
    """An image, depth map or camera the odometry cannot use (the message says which and why)."""


@dataclass
class _Estimate:
    T_cur_kf: np.ndarray
    inliers: np.ndarray  # bool over the matches
    parallax_px: float
    method: str
    covariance: np.ndarray
    #: monocular initialisation: keyframe feature indices and their triangulated points (keyframe frame)
    new_points: tuple[np.ndarray, np.ndarray] | None = None


@dataclass
class _Tracked:
    """A frame tracked on its keyframe's map with the parallax to triangulate, or by a pure rotation: the keyframe
    to fall back on if the next frame fails against the current keyframe (``_promote_last_tracked``)."""

    keyframe: Keyframe
    matches: Matches
    estimate: _Estimate
    frame: Observation


@dataclass
class _Motion:
    """The last frames' poses on one keyframe: the motion model's prediction of the next (``motion_prior``)."""

    keyframe: Keyframe
    T_last_kf: np.ndarray
    inliers: int
    stamp: float
    T_before_kf: np.ndarray | None = None
    stamp_before: float | None = None

    def predict(self, stamp: float) -> np.ndarray:
        """The next frame's pose on the keyframe (``constant_velocity``); none known: the last pose."""
        if self.T_before_kf is None or self.stamp_before is None:
            return self.T_last_kf.copy()
        return constant_velocity(self.T_before_kf, self.stamp_before, self.T_last_kf, self.stamp, stamp)


def constant_velocity(T_before: np.ndarray, stamp_before: float, T_last: np.ndarray, stamp_last: float,
                      stamp: float) -> np.ndarray:
    """``T_cur_ref`` at ``stamp`` from the two last ones (``T_before``, ``T_last``): the last frame-to-frame motion,
    scaled to the time since the last frame (a dropped frame, another play rate; rotation angle and translation
    scaled alike, exact at the same rate, at most ``MAX_PREDICTED_INTERVALS``), applied once more."""
    step = T_last @ invert_pose(T_before)
    interval = stamp_last - stamp_before
    # Rounded: stamps that differ below a microsecond (a bag's nanoseconds, a file's float seconds) predict alike.
    ratio = round((stamp - stamp_last) / interval, 4) if interval > 0 else 1.0
    if abs(ratio - 1.0) > 1e-3:  # closer: the same rate (stamp rounding)
        ratio = float(np.clip(ratio, 0.0, MAX_PREDICTED_INTERVALS))
        step = make_pose(so3_exp(ratio * so3_log(step[:3, :3])), ratio * step[:3, 3])
    return step @ T_last


#: A prediction extrapolates at most this many of the last frame intervals (a long gap: the robust estimator).
MAX_PREDICTED_INTERVALS = 3.0


#: The motion model's pose is kept when it has this fraction of the last frame's inliers (and ``good_inliers``).
MOTION_INLIER_FRACTION = 0.8

#: A lost frame resumes on a window keyframe's map with this multiple of ``min_inliers`` PnP inliers (twice what
#: keeps a frame tracked: a wrong keyframe must not capture it).  Synthetic fast head shake with motion blur
#: (exposure 0.1, not benchmark data): with ``good_inliers`` (60) no frame ever resumed; with 2 x 20 ATE 0.164 -> 0.044.
RELOCALISE_INLIER_FACTOR = 2

#: A new monocular keyframe takes its scale only from shared points triangulated at this multiple of
#: ``min_triangulation_deg``.  Points just above the gate (moving forward: those near the epipole) have depth errors
#: of tens of percent at a keyframe's few pixels of parallax; in a low-texture stretch they can be most of the few
#: shared points, and their median then sets the scale (7-Scenes mono: the scale doubled over five such keyframes).
#: Validation (synthetic rooms, held-out photos): unchanged on textured rooms, low-texture ATE 0.053 -> 0.043.
SCALE_ANGLE_FACTOR = 2.0


@dataclass
class _Outcome:
    """What a frame's processing decided, for its FrameResult."""

    pose: np.ndarray  # T_world_cam
    covariance: np.ndarray
    method: str
    keyframe_features: Features
    times: tuple[float, float, float, float]  # start, features extracted, matched, pose done
    matches: Matches = field(default_factory=Matches.empty)
    estimate: _Estimate | None = None
    is_keyframe: bool = False


class VisualOdometry:
    """``process(image, timestamp, camera, depth=None) -> FrameResult``; ``trajectory``; ``state``; ``reset()``."""

    def __init__(self, config: OdometryConfig | dict | None = None, extractor=None, matcher=None):
        if config is None:
            config = OdometryConfig()
        elif isinstance(config, dict):
            config = OdometryConfig.from_dict(config)
        self.config = config
        limit_blas_threads(config.blas_threads)
        self.extractor = extractor if extractor is not None else build_extractor(config.extractor)
        descriptor_dim = getattr(self.extractor, "descriptor_dim", None)
        self.matcher = matcher if matcher is not None else build_vo_matcher(config, descriptor_dim)
        self.window_matcher = build_window_matcher(config, self.matcher)
        self.landmarks = LandmarkMap(config, self.window_matcher)
        self.metric_scale = MetricScale(config.camera_height, config.depth_scale)
        self.keyframe_matcher = build_keyframe_matcher(config, descriptor_dim)
        self.reset()

    # ----------------------------------------------------------------------------------------- state
    def reset(self) -> None:
        """Forget the map and the trajectory (the next frame starts a new one at the identity)."""
        self._keyframe: Keyframe | None = None
        self._last_tracked: _Tracked | None = None
        self._motion: _Motion | None = None
        #: The last ``window_keyframes`` keyframes (the current one last): the local map new keyframes refine against.
        self._window: deque[Keyframe] = deque(maxlen=max(1, self.config.window_keyframes))
        #: Every keyframe since the map started (bounded): older ones that see a new keyframe's area join its window.
        self._memory = KeyframeMemory()
        self._pose = np.eye(4)  # internal: map units (monocular), see ``metric_scale``
        self._output_pose = np.eye(4)  # what the trajectory and the results hold
        self._depth_tracking = False
        self._state = TrackingState.INITIALIZING
        self._lost_count = 0
        #: The last two posed RGB-D frames (T_cur_world, stamp): the motion a lost frame coasts on, and the guess its
        #: depth alignment starts from.
        self._tracked_motion: deque[tuple[np.ndarray, float]] = deque(maxlen=2)
        #: RGB-D with ``depth_alignment``: the last posed frame's depth image and working camera (its pose is the last
        #: of ``_tracked_motion``).
        self._last_depth: tuple[np.ndarray, Camera] | None = None
        self._scale_reference = 1.0
        #: Median depth of the last keyframe map (monocular: in the map's scale), kept across restarts.
        self._scene_depth: float | None = None
        self.landmarks.reset()
        self.metric_scale.reset()
        # Bounded for long-running nodes (max_trajectory_poses > 0); unbounded for evaluation.
        history = self.config.max_trajectory_poses or None
        self._timestamps: deque[float] = deque(maxlen=history)
        self._poses: deque[np.ndarray] = deque(maxlen=history)
        self.keyframe_count = 0
        #: Lost frames that resumed on a window keyframe's map, and maps started afresh after a loss.
        self.relocalisations = 0
        self.map_restarts = 0
        self.working_size: tuple[int, int] | None = None

    @property
    def state(self) -> TrackingState:
        return self._state

    @property
    def pose(self) -> np.ndarray:
        """Current T_world_cam (in the units of ``scale_state``)."""
        return self._output_pose.copy()

    @property
    def scale_state(self) -> ScaleState:
        """The unit of the translations: metric (depth, or a monocular scale source once measured) or arbitrary."""
        return self.metric_scale.state(self._depth_tracking or self.config.mode == "rgbd")

    @property
    def trajectory(self) -> Trajectory:
        if not self._poses:
            return Trajectory(np.zeros(0), np.zeros((0, 4, 4)))
        return Trajectory(np.asarray(self._timestamps), np.stack(self._poses))

    # ----------------------------------------------------------------------------------------- per frame
    def process(
        self, image: np.ndarray, timestamp: float, camera: Camera, depth: np.ndarray | None = None
    ) -> FrameResult:
        t0 = time.perf_counter()
        frame = self._observe(image, float(timestamp), camera, depth)
        t1 = time.perf_counter()
        self._depth_tracking = frame.depth_points is not None
        keyframe = self._keyframe
        if keyframe is None:
            return self._first(frame, (t0, t1))
        matches, estimate, match_s = self._match(keyframe, frame)
        if (estimate is None or estimate.inliers.sum() < self.config.min_inliers) and self._promote_last_tracked():
            # The motion outgrew the keyframe between two frames: the last tracked frame is the keyframe now.
            keyframe = self._keyframe
            matches, estimate, more_s = self._match(keyframe, frame)
            match_s += more_s
        times = (t0, t1, t1 + match_s)  # matching, then everything else counts as pose
        if estimate is None or int(estimate.inliers.sum()) < self.config.min_inliers:
            return self._lost(frame, keyframe, matches, estimate, times)
        return self._track(frame, keyframe, matches, estimate, times)

    def _match(self, keyframe: Keyframe, frame: Observation) -> tuple[Matches, _Estimate | None, float]:
        """Matches to the keyframe and the pose estimate; a frame that builds a map is re-matched by the keyframe
        matcher (slower, better: the new map is triangulated from its matches).  Also returns the seconds spent
        matching."""
        start = time.perf_counter()
        matches = self._guided(keyframe, frame, self.matcher(keyframe.features, frame.features))
        spent = time.perf_counter() - start
        estimate = self._estimate(keyframe, matches, frame)
        if self.keyframe_matcher is None or estimate is None or not self._builds_map(keyframe, estimate, frame):
            return matches, estimate, spent
        start = time.perf_counter()
        strong = self.keyframe_matcher(keyframe.features, frame.features)
        spent += time.perf_counter() - start
        better = self._estimate(keyframe, strong, frame)
        enough = self.config.min_inliers
        if self.config.matching.keyframe_no_thinner:
            enough = max(enough, int(estimate.inliers.sum()))
        if better is not None and better.inliers.sum() >= enough and self._agrees(keyframe, frame, matches, strong,
                                                                                   estimate, better):
            return strong, better, spent
        self._refine(keyframe, frame, matches)
        return matches, estimate, spent

    def _agrees(self, keyframe: Keyframe, frame: Observation, tracked: Matches, strong: Matches,
                estimate: _Estimate, better: _Estimate) -> bool:
        """The keyframe matcher's pose explains the matches of both matchers about as well as the tracking pose
        (``estimation.supported_as_well``).  At a new map's few pixels of parallax, RANSAC on the fewer, surer matches
        can settle on a wrong essential matrix that holds more of them than the right one does (TUM desk, one draw
        in ten: 4 degrees and a direction 115 degrees off, 259 inliers against the tracking pose's 245) but fits
        clearly fewer of all the matches (307 against 348)."""
        union = tracked.extended(strong)
        i0, i1 = union.indices[:, 0], union.indices[:, 1]
        return est.supported_as_well(better.T_cur_kf, estimate.T_cur_kf, keyframe.pixels[i0], frame.pixels[i1],
                                     frame.K, self.config.ransac_threshold_px, keyframe.points[i0])

    @staticmethod
    def _refine(keyframe: Keyframe, frame: Observation, matches: Matches) -> None:
        """The frame's points matched to ``keyframe`` moved to sub-pixel by descriptor correlation
        (``refine_matches``), the others as detected: each call starts again from the detected points, so the frame
        holds the refinement of the matches it is estimated with (and keeps it as a keyframe)."""
        if frame.features.windows is None or keyframe.features.windows is None:
            return
        xy = frame.detected_xy.copy()
        if len(matches):
            xy[matches.indices[:, 1]] = matches.points(keyframe.features, frame.features)[1]
        frame.features = replace(frame.features, keypoints_xy=xy)
        frame.pixels = frame.camera.undistort_points(xy)
        if frame.depth_points is not None:  # RGB-D: the measured depth along the refined point's ray
            z = frame.depth_points[:, 2]
            valid = np.isfinite(z)
            frame.depth_points[valid] = frame.camera.backproject(xy[valid], z[valid])

    def _guided(self, keyframe: Keyframe, frame: Observation, matches: Matches) -> Matches:
        """``matches`` and, for the keyframe's map points they leave unmatched, matches near where the motion model
        projects them (``guided_radius_px``) to frame features they leave unmatched."""
        cfg, motion = self.config, self._motion
        if cfg.guided_radius_px <= 0 or motion is None or motion.keyframe is not keyframe or not cfg.motion_prior:
            return matches
        mapped = np.flatnonzero(np.isfinite(keyframe.points[:, 0]))
        xyz = transform_points(motion.predict(frame.timestamp), keyframe.points[mapped])
        predicted = np.where((xyz[:, 2] > 1e-6)[:, None], est.project(xyz, frame.K), np.nan)
        guided = mutual_within_radius(keyframe.features.subset(mapped), predicted, frame.features, frame.pixels,
                                      cfg.guided_radius_px)
        i0, i1 = mapped[guided.indices[:, 0]], guided.indices[:, 1]
        return matches.extended(Matches(np.stack([i0, i1], 1), guided.confidence))

    def _promote_last_tracked(self) -> bool:
        """Make the last tracked frame the keyframe, as it would have become had its parallax or inlier count
        crossed the keyframe thresholds; False when there is none (or its map would be too small).  Without this,
        a frame that falls just short of ``min_inliers`` against an old keyframe (float noise decides) is lost for
        ``max_lost_frames`` frames and the map restarts."""
        last, self._last_tracked = self._last_tracked, None
        if last is None or last.keyframe is not self._keyframe:
            return False
        if last.estimate.method == "rotation":
            # A fast turn outran the keyframe between two frames: the last rotated frame becomes the keyframe, at the
            # same position, with the map points it still sees (as a turn with few inliers left does in ``_track``).
            pose = last.keyframe.pose_world @ invert_pose(last.estimate.T_cur_kf)
            self._adopt(self._rotated_successor(last.keyframe, last.matches, last.estimate, last.frame, pose))
            return True
        candidate, T_last_kf = self._successor(last.keyframe, last.matches, last.estimate, last.frame)
        if candidate.map_size < self.config.init_min_points:
            return False
        self._adopt(candidate)
        self._adjust_window(last.frame)
        self._scale_reference = max(float(np.linalg.norm(T_last_kf[:3, 3])), 1e-6)
        return True

    def _observe(self, image: np.ndarray, timestamp: float, camera: Camera, depth: np.ndarray | None) -> Observation:
        """Checked inputs -> features, undistorted pixels and (RGB-D) depth points at working resolution."""
        use_depth = self._check_inputs(image, camera, depth)
        width, height = working_size(self.config, camera.width, camera.height)
        cam = working_camera(camera, width, height)
        self.working_size = (width, height)
        features = self.extractor.extract(resize_image(image, width, height))
        pixels = cam.undistort_points(features.keypoints_xy) if len(features) else np.zeros((0, 2))
        points = self._depth_points(depth, features, cam) if use_depth else None
        scale_depth = None
        if not use_depth and depth is not None and self.config.depth_scale:
            scale_depth = self._keypoint_depth(depth, features, cam)
        aligns = use_depth and self.config.depth_alignment
        return Observation(timestamp, features, pixels, points, cam, features.keypoints_xy, scale_depth,
                           depth if aligns else None)

    def _first(self, frame: Observation, times: tuple[float, float]) -> FrameResult:
        """The first frame (or the first after a reset) is the first keyframe, at the current pose."""
        self._adopt(self._new_keyframe(frame, self._pose, frame.depth_points), restart=True)
        self._state = TrackingState.TRACKING if self._keyframe.map_size >= self.config.min_inliers else (
            TrackingState.INITIALIZING
        )
        t2 = time.perf_counter()
        outcome = _Outcome(self._pose, np.eye(6) * 1e-9, "first", frame.features, (*times, t2, t2), is_keyframe=True)
        return self._finish(frame, outcome)

    def _track(
        self, frame: Observation, keyframe: Keyframe, matches: Matches, estimate: _Estimate, times: tuple
    ) -> FrameResult:
        """A frame with a pose: its state and covariance, and whether it becomes the next keyframe."""
        cfg = self.config
        inliers = int(estimate.inliers.sum())
        self._lost_count = 0
        if estimate.new_points is not None:
            index, xyz = estimate.new_points
            keyframe.points[index] = xyz
        pose = keyframe.pose_world @ invert_pose(estimate.T_cur_kf)
        has_map = keyframe.map_size >= cfg.min_inliers
        if not has_map:
            state = TrackingState.INITIALIZING
        elif inliers < cfg.good_inliers or estimate.method == "rotation":  # rotation: the map is not observed
            state = TrackingState.DEGRADED
        else:
            state = TrackingState.TRACKING
        covariance = estimate.covariance * (cfg.degraded_inflation if state == TrackingState.DEGRADED else 1.0)

        is_keyframe = False
        if has_map and self._builds_map(keyframe, estimate, frame):
            candidate, T_cur_kf = self._successor(keyframe, matches, estimate, frame)
            if candidate.map_size >= cfg.init_min_points:
                estimate.T_cur_kf = T_cur_kf
                pose = keyframe.pose_world @ invert_pose(T_cur_kf)
                candidate.pose_world = pose.copy()
                self._adopt(candidate)
                if self._adjust_window(frame):
                    pose = candidate.pose_world.copy()
                    estimate.T_cur_kf = invert_pose(pose) @ keyframe.pose_world
                self._scale_reference = max(float(np.linalg.norm(estimate.T_cur_kf[:3, 3])), 1e-6)
                is_keyframe = True
        elif inliers < cfg.keyframe_min_inliers and (
            estimate.method == "rotation" or (has_map and self._turns_off_map(estimate, frame, inliers))
        ):
            # Rotating away (before translation became observable, with the map turning out of view, or turning off
            # it near the keyframe): follow with a keyframe at this pose so the turn keeps being tracked instead of
            # running out of matches; it carries the map points it sees, which keeps the monocular scale through it.
            self._adopt(self._rotated_successor(keyframe, matches, estimate, frame, pose))
            is_keyframe = True
        self._state = state
        self._last_tracked = None
        self._remember_motion(keyframe, None if is_keyframe else estimate, frame.timestamp)
        if not is_keyframe and (estimate.method == "rotation" or self._can_build_map(keyframe, estimate, frame)):
            self._last_tracked = _Tracked(keyframe, matches, estimate, frame)
        outcome = _Outcome(pose, covariance, estimate.method, keyframe.features, (*times, time.perf_counter()),
                           matches, estimate, is_keyframe)
        return self._finish(frame, outcome)

    # ----------------------------------------------------------------------------------------- estimation
    def _builds_map(self, keyframe: Keyframe, estimate: _Estimate, frame: Observation) -> bool:
        """This frame initialises the map or becomes the next keyframe: the parallax grew or the inliers fell
        (monocular: only with the parallax to triangulate a successor's map)."""
        cfg = self.config
        if estimate.method not in ("pnp", "essential"):
            return False
        if estimate.new_points is not None:
            return True
        wants = estimate.parallax_px > cfg.keyframe_parallax_px or estimate.inliers.sum() < cfg.keyframe_min_inliers
        return wants and self._can_build_map(keyframe, estimate, frame)

    def _turns_off_map(self, estimate: _Estimate, frame: Observation, inliers: int) -> bool:
        """Monocular PnP frame turning away from its keyframe's map (``turn_keyframe_deg``): inliers near the loss,
        too little parallax for a triangulated successor, and a turn a forward motion does not make."""
        cfg = self.config
        if not cfg.turn_keyframe_deg or estimate.method != "pnp" or frame.depth_points is not None:
            return False
        if inliers >= 2 * cfg.min_inliers or estimate.parallax_px >= cfg.init_parallax_px:
            return False
        return rotation_angle_deg(estimate.T_cur_kf[:3, :3]) >= cfg.turn_keyframe_deg

    def _can_build_map(self, keyframe: Keyframe, estimate: _Estimate, frame: Observation) -> bool:
        """A frame tracked on the keyframe's map that could become the next keyframe (monocular: with the parallax
        to triangulate its map)."""
        cfg = self.config
        if estimate.method not in ("pnp", "essential") or keyframe.map_size < cfg.min_inliers:
            return False
        return frame.depth_points is not None or estimate.parallax_px >= cfg.init_parallax_px

    def _estimate(self, keyframe: Keyframe, matches: Matches, frame: Observation) -> _Estimate | None:
        cfg = self.config
        self._refine(keyframe, frame, matches)
        if len(matches) < cfg.min_inliers:
            return None
        K, use_depth = frame.K, frame.depth_points is not None
        i0, i1 = matches.indices[:, 0], matches.indices[:, 1]
        u0, u1 = keyframe.pixels[i0], frame.pixels[i1]
        solver = dict(threshold=cfg.ransac_threshold_px, confidence=cfg.ransac_confidence,
                      iterations=cfg.ransac_iterations, seed=cfg.ransac_seed)
        map_points = keyframe.points[i0]
        on_map = np.isfinite(map_points[:, 0])
        if on_map.sum() >= cfg.min_inliers:
            estimate = self._estimate_pnp(keyframe, frame.timestamp, map_points, on_map, u0, u1, K, solver)
            if cfg.epipolar_refinement and not use_depth and estimate is not None and estimate.method == "pnp":
                # Monocular maps cover part of the matches and are noisy: the rest pin rotation and direction.
                p0, q1 = map_points[on_map], u1[on_map]
                if cfg.landmark_tracking:  # tracking on the local map: the window's landmarks this frame sees
                    more_p, more_q = self.landmarks.window_correspondences(
                        list(self._window), keyframe, i1[on_map], frame.features, frame.pixels)
                    p0, q1 = np.concatenate([p0, more_p]), np.concatenate([q1, more_q])
                estimate.T_cur_kf = est.refine_pose_with_epipolar(
                    p0, q1, u0, u1, K, estimate.T_cur_kf, cfg.ransac_threshold_px
                )
            if use_depth and cfg.local_map_tracking and estimate is not None and estimate.method == "pnp":
                # Tracking on the local map: the window keyframes' depth points seen by this frame refine its pose
                # (as ORB-SLAM tracks its local map); on the synthetic rooms with training photos, ATE lower on 5
                # of 6 sequences (median 2.4 -> 2.0 mm).
                estimate.T_cur_kf = refine_in_window(self._window, keyframe, matches, frame, estimate.T_cur_kf,
                                                     self.window_matcher, cfg)
            if use_depth and estimate is not None and self._contradicts_depth(keyframe, matches, estimate, frame):
                return None
            if use_depth or (estimate is not None and estimate.inliers.sum() >= cfg.min_inliers):
                return estimate
            # Monocular, the map turning out of view while the camera rotates in place (too little parallax for a
            # successor's map): the 2D-2D matches still give the rotation, which keeps orientation and position
            # right through the turn instead of losing track and restarting from a held, stale orientation.
            turning = self._estimate_two_view(keyframe, i0, u0, u1, K, solver)
            if turning is not None and turning.method == "rotation" and turning.inliers.sum() >= cfg.min_inliers:
                return turning
            return estimate
        if use_depth:
            return None  # an RGB-D keyframe without depth: lost until a frame with depth becomes keyframe
        return self._estimate_two_view(keyframe, i0, u0, u1, K, solver)

    def _contradicts_depth(self, keyframe: Keyframe, matches: Matches, estimate: _Estimate,
                           frame: Observation) -> bool:
        """RGB-D: fewer than ``min_inliers`` of the pose's inliers agree with the depth this frame measured
        (``depth_gate_inverse_m``; an inlier without a measurement cannot disagree).  Reprojection alone can hold a
        wrong pose on a few matches; the frame's own depth of the same points rules it out."""
        gate = self.config.depth_gate_inverse_m
        if not gate:
            return False
        kept = matches.indices[estimate.inliers]
        predicted_z = transform_points(estimate.T_cur_kf, keyframe.points[kept[:, 0]])[:, 2]
        measured_z = frame.depth_points[kept[:, 1], 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            disagrees = np.abs(1.0 / predicted_z - 1.0 / measured_z) > gate  # False where a depth is NaN
        return len(kept) - int(disagrees.sum()) < self.config.min_inliers

    def _estimate_pnp(self, keyframe, stamp, map_points, on_map, u0, u1, K, solver) -> _Estimate | None:
        cfg = self.config
        solution = self._predicted_pnp(keyframe, stamp, map_points[on_map], u1[on_map], K)
        if solution is None:
            solution = est.pnp_pose(map_points[on_map], u1[on_map], K, **solver)
        if solution is None:
            return None
        inliers = np.zeros(len(u0), bool)
        inliers[np.flatnonzero(on_map)[solution.inliers]] = True
        if inliers.sum() < 6:
            return None
        T = solution.T_1_0
        parallax = float(np.median(est.rotation_parallax_px(T[:3, :3], u0[inliers], u1[inliers], K)))
        covariance = est.pose_covariance(transform_points(T, map_points[inliers]), u1[inliers], K, cfg.min_pixel_sigma)
        if parallax < cfg.static_parallax_px:
            # Translation below what the image can show: keep the keyframe's, never add noise.
            return _Estimate(make_pose(T[:3, :3]), inliers, parallax, "pnp-static", covariance)
        return _Estimate(T, inliers, parallax, "pnp", covariance)

    def _predicted_pnp(self, keyframe: Keyframe, stamp: float, points0: np.ndarray, u1: np.ndarray, K: np.ndarray):
        """The motion model's pose refined on the map (``motion_prior``); None when there is no prediction for this
        keyframe or it keeps too few inliers (the robust estimator decides then)."""
        cfg, motion = self.config, self._motion
        if not cfg.motion_prior or motion is None or motion.keyframe is not keyframe:
            return None
        threshold = cfg.ransac_threshold_px
        solution = est.refine_pose(points0, u1, K, motion.predict(stamp), threshold, first_gate_px=4.0 * threshold)
        wanted = max(cfg.good_inliers, MOTION_INLIER_FRACTION * motion.inliers)
        return solution if solution is not None and solution.inliers.sum() >= wanted else None

    def _remember_motion(self, keyframe: Keyframe, estimate: _Estimate | None, stamp: float) -> None:
        """Keep the frame's pose on its keyframe for the next frame's prediction (PnP frames only)."""
        if estimate is None or not estimate.method.startswith("pnp"):
            self._motion = None
            return
        last = self._motion if self._motion is not None and self._motion.keyframe is keyframe else None
        self._motion = _Motion(keyframe, estimate.T_cur_kf.copy(), int(estimate.inliers.sum()), stamp,
                               None if last is None else last.T_last_kf, None if last is None else last.stamp)

    def _estimate_two_view(self, keyframe, i0, u0, u1, K, solver) -> _Estimate | None:
        cfg = self.config
        rotation = est.rotation_only(u0, u1, K, **solver)
        essential = est.essential_pose(u0, u1, K, **solver)
        if rotation is None and essential is None:
            return None
        # Which model explains the matches (a GRIC-like count test): when the pure rotation keeps nearly all of
        # the essential matrix's inliers, translation is not observable and the essential matrix is degenerate.
        translating = essential is not None and (
            rotation is None or rotation.inliers.sum() < cfg.rotation_inlier_ratio * essential.inliers.sum()
        )
        model = essential if translating else rotation
        reference = model.inliers
        parallax = float(np.median(est.rotation_parallax_px(model.T_1_0[:3, :3], u0[reference], u1[reference], K)))
        if translating and parallax >= cfg.init_parallax_px and essential.inliers.sum() >= cfg.init_min_points:
            # The first draw decides whether (and when) a map starts; the map's pose is the best-supported draw.
            essential = est.more_essential_draws(essential, u0, u1, K, **solver, draws=cfg.init_essential_draws)
            T = essential.T_1_0.copy()
            keep = np.flatnonzero(essential.inliers)
            xyz, error, angle = est.triangulate(u0[keep], u1[keep], K, T)
            good = (error < 2.0 * cfg.ransac_threshold_px) & (angle > cfg.min_triangulation_deg)
            # Monocular scale of a new map: that of the points the keyframe still carries (after a turn in place),
            # else the scene depth of the last map (after a loss: the scene stays about as deep while keyframe
            # baselines vary with the parallax that triggered them), else the first map's unit baseline.
            scale = self._map_scale(keyframe, i0[keep], xyz, good) or self._depth_scale(xyz[good])
            T[:3, 3] *= scale
            xyz = xyz * scale
            if good.sum() >= cfg.init_min_points:
                inliers = np.zeros(len(u0), bool)
                inliers[keep[good]] = True
                points1 = transform_points(T, xyz[good])
                covariance = est.pose_covariance(points1, u1[keep[good]], K, cfg.min_pixel_sigma)
                return _Estimate(T, inliers, parallax, "essential", covariance, (i0[keep[good]], xyz[good]))
        if rotation is None:
            return None
        R = rotation.T_1_0[:3, :3]
        covariance = est.rotation_covariance(
            R, u0[rotation.inliers], u1[rotation.inliers], K, cfg.min_pixel_sigma,
            cfg.static_translation_sigma * self._scale_reference,
        )
        return _Estimate(make_pose(R), rotation.inliers, parallax, "rotation", covariance)

    # ----------------------------------------------------------------------------------------- keyframes
    def _new_keyframe(self, frame: Observation, pose_world: np.ndarray, points: np.ndarray | None) -> Keyframe:
        if points is None:
            points = np.full((len(frame.features), 3), np.nan)
        self.keyframe_count += 1
        measured = frame.scale_depth if frame.depth_points is None else frame.depth_points[:, 2].copy()
        return Keyframe(frame.features, frame.pixels, pose_world.copy(), points, frame.timestamp, depth_z=measured)

    def _adopt(self, keyframe: Keyframe, restart: bool = False) -> None:
        """Make ``keyframe`` the one frames are tracked against and add it to the local-map window."""
        if restart:
            self._window.clear()
            self._memory.clear()
            self.metric_scale.restart(keyframe.pose_world)
        self._keyframe = keyframe
        self._motion = None
        self._window.append(keyframe)
        if self._reads_memory:
            self._memory.remember(keyframe)
        if keyframe.map_size >= self.config.min_inliers:
            self._scene_depth = float(np.median(keyframe.points[np.isfinite(keyframe.points[:, 0]), 2]))

    @property
    def _reads_memory(self) -> bool:
        """Older keyframes are read back only by RGB-D keyframe refinement, the monocular covisible bundle
        adjustment and monocular keyframes made while turning (``rotation_keeps_window_map``); otherwise remembering
        them (up to ``KEYFRAME_MEMORY``, ~0.3 MB each with context descriptors: ~60 MB at most) would only grow the
        process."""
        cfg = self.config
        return cfg.covisible_keyframes > 0 and (cfg.covisible_bundle or cfg.rotation_keeps_window_map
                                                or self._depth_tracking)

    def _rotated_successor(
        self, keyframe: Keyframe, matches: Matches, estimate: _Estimate, frame: Observation, pose: np.ndarray
    ) -> Keyframe:
        """The current frame as the next keyframe after a pure rotation: the old keyframe's points it matches are
        moved into its frame by that rotation (no triangulation: there is no baseline)."""
        i0, i1 = matches.indices[:, 0], matches.indices[:, 1]
        points = np.full((len(frame.features), 3), np.nan)
        carry_points(keyframe, i0, i1, estimate.inliers, estimate.T_cur_kf, points)
        candidate = self._new_keyframe(frame, pose, points)
        self.landmarks.link(keyframe, candidate, i0, i1)
        if self.config.rotation_keeps_window_map and frame.depth_points is None:
            others = [k for k in self._window if k is not keyframe]  # ``keyframe``'s points came with ``link``
            others += self._covisible(pose, frame.K)
            self.landmarks.associate(candidate, others, frame.K, with_points=True)
        return candidate

    def _successor(
        self, keyframe: Keyframe, matches: Matches, estimate: _Estimate, frame: Observation
    ) -> tuple[Keyframe, np.ndarray]:
        """The current frame as the next keyframe, with its points in its own frame, and its pose to the old keyframe.

        RGB-D: points from depth, the old keyframe's inlier points where depth is missing.  Monocular: the
        relative pose is re-estimated from *all* 2D-2D matches (essential matrix), its scale chosen so that the
        triangulated depths of the points shared with the old keyframe's map agree with that map (median ratio);
        every essential inlier is then triangulated, so the map does not thin out from keyframe to keyframe.
        """
        cfg = self.config
        T = estimate.T_cur_kf
        i0, i1 = matches.indices[:, 0], matches.indices[:, 1]
        K, pixels = frame.K, frame.pixels
        if frame.depth_points is not None:
            points = frame.depth_points.copy()
            local_map = list(self._window) + self._covisible(keyframe.pose_world @ invert_pose(T), frame.K)
            T = refine_in_window(local_map, keyframe, matches, frame, T, self.window_matcher, cfg)
        else:
            points = np.full((len(frame.features), 3), np.nan)
            T = self._scaled_essential(keyframe, i0, keyframe.pixels[i0], pixels[i1], K, T)
            xyz, error, angle = est.triangulate(keyframe.pixels[i0], pixels[i1], K, T)
            good = (error < 2.0 * cfg.ransac_threshold_px) & (angle > cfg.min_triangulation_deg)
            points[i1[good]] = transform_points(T, xyz[good])
        carry_points(keyframe, i0, i1, estimate.inliers, T, points)
        pose = keyframe.pose_world @ invert_pose(T)
        candidate = self._new_keyframe(frame, pose, points)
        if self._bundle_adjusts(frame):
            if frame.depth_points is not None:  # every match has a depth point: only the tracking inliers are the same
                i0, i1 = i0[estimate.inliers], i1[estimate.inliers]
            self.landmarks.link(keyframe, candidate, i0, i1)
        return candidate, T

    def _scaled_essential(self, keyframe, i0, u0, u1, K, T_pnp) -> np.ndarray:
        """Essential-matrix pose (rotation and direction from every 2D-2D match) with the map's scale: the median
        ratio of the old keyframe's depths to the unit-baseline triangulated depths of the shared points whose
        triangulation angle is well above the map's gate (``SCALE_ANGLE_FACTOR``).  PnP on a monocular map trades
        rotation for translation where the map's depths are noisy; the essential matrix does not.  But its direction
        is ill-conditioned at a keyframe's few pixels of parallax, so the tracked pose (PnP refined on the map and the
        epipolar distances) stays when it is supported by more matches (``estimation.pose_support``), and when too
        few shared points triangulate."""
        cfg = self.config
        solution = est.essential_pose(u0, u1, K, cfg.ransac_threshold_px, cfg.ransac_confidence, cfg.ransac_iterations,
                                      cfg.ransac_seed)
        if solution is None:
            return T_pnp
        keep = np.flatnonzero(solution.inliers & np.isfinite(keyframe.points[i0, 0]))
        xyz, error, angle = est.triangulate(u0[keep], u1[keep], K, solution.T_1_0)
        good = (error < 2.0 * cfg.ransac_threshold_px) & (angle > SCALE_ANGLE_FACTOR * cfg.min_triangulation_deg)
        scale = self._map_scale(keyframe, i0[keep], xyz, good)
        if scale is None:
            return T_pnp
        T = solution.T_1_0.copy()
        T[:3, 3] *= scale
        support = [est.pose_support(candidate, u0, u1, K, cfg.ransac_threshold_px, keyframe.points[i0])
                   for candidate in (T, T_pnp)]
        return T if support[0] >= support[1] else T_pnp

    def _covisible(self, pose_world: np.ndarray, K: np.ndarray) -> list[Keyframe]:
        """Remembered keyframes outside the window that see the area of a new keyframe at ``pose_world``."""
        return self._memory.covisible(pose_world, K, self._window, self.config.covisible_keyframes)

    def _adjust_window(self, frame: Observation) -> bool:
        """Bundle-adjust the window of the keyframe just adopted from ``frame`` (with ``covisible_bundle``, and the
        older keyframes that see its area, held fixed; RGB-D only with ``rgbd_bundle``, with the measured depths);
        whether it ran."""
        if not self._bundle_adjusts(frame):
            return False
        K = frame.K
        covisible = self._covisible(self._keyframe.pose_world, K) if self.config.covisible_bundle else []
        return self.landmarks.adjust(list(self._window), K, covisible, depth=frame.depth_points is not None)

    def _bundle_adjusts(self, frame: Observation) -> bool:
        """Keyframes made from frames like ``frame`` share landmarks and are bundle-adjusted: monocular always,
        RGB-D with ``rgbd_bundle`` (otherwise linking their landmarks would be work nothing reads)."""
        return frame.depth_points is None or self.config.rgbd_bundle

    def _depth_scale(self, xyz_unit: np.ndarray) -> float:
        """Scale giving the unit-baseline points ``xyz_unit`` the median depth of the last map (1 before any)."""
        depth = float(np.median(xyz_unit[:, 2])) if len(xyz_unit) else 0.0
        if self._scene_depth is None or not np.isfinite(depth) or depth <= 0:
            return 1.0
        return self._scene_depth / depth

    @staticmethod
    def _map_scale(keyframe, i0, xyz_unit, good, min_shared: int = 10) -> float | None:
        """Median ratio of the keyframe's map depths to the unit-baseline triangulated depths ``xyz_unit`` of the
        same features ``i0`` (well triangulated: ``good``); None with fewer than ``min_shared`` shared points."""
        shared = good & np.isfinite(keyframe.points[i0, 0])
        if shared.sum() < min_shared:
            return None
        scale = float(np.median(keyframe.points[i0[shared], 2] / xyz_unit[shared, 2]))
        return scale if np.isfinite(scale) and scale > 0 else None

    # ----------------------------------------------------------------------------------------- loss
    def _lost(
        self, frame: Observation, keyframe: Keyframe, matches: Matches, estimate: _Estimate | None, times: tuple
    ) -> FrameResult:
        """Resume on a window keyframe's map (``relocalise_keyframes``), else (RGB-D) pose the frame by its depth
        (``depth_alignment``), else hold the pose (RGB-D: coast on the last tracked motion, ``coast_lost_frames``);
        after ``max_lost_frames`` failures re-start from the current frame (if it has texture)."""
        cfg = self.config
        found = self._relocalise(frame, keyframe)
        if found is not None:
            return self._track(frame, *found, times)
        aligned = self._align_depth(frame)
        if aligned is not None:
            return self._depth_tracked(frame, keyframe, *aligned, times)
        self._lost_count += 1
        self._state = TrackingState.LOST
        self._motion = None
        if cfg.coast_lost_frames and frame.depth_points is not None and len(self._tracked_motion) == 2:
            (T_before, stamp_before), (T_last, stamp_last) = self._tracked_motion
            self._pose = invert_pose(constant_velocity(T_before, stamp_before, T_last, stamp_last, frame.timestamp))
        is_keyframe = False
        if self._lost_count > cfg.max_lost_frames and len(frame.features) >= cfg.init_min_points:
            self._tracked_motion.clear()  # the new map's motion starts with its own frames
            self._last_depth = None
            # The held pose is only a guess: the old window's map must not pull the new keyframe towards it.
            self._refine(keyframe, frame, Matches.empty())  # a new map starts from the points as detected
            self._adopt(self._new_keyframe(frame, self._pose, frame.depth_points), restart=True)
            self._lost_count = 0
            self.map_restarts += 1
            is_keyframe = True
        covariance = np.eye(6) * cfg.lost_variance
        outcome = _Outcome(self._pose, covariance, "lost", keyframe.features, (*times, time.perf_counter()), matches,
                           estimate, is_keyframe)
        return self._finish(frame, outcome)

    def _align_depth(self, frame: Observation) -> tuple[np.ndarray, np.ndarray] | None:
        """RGB-D, ``depth_alignment``: the frame's pose (T_world_cam) and covariance from aligning its depth to the
        last posed frame's, from the constant-velocity guess; None when the depth does not fix it."""
        if frame.depth_image is None or self._last_depth is None or self._last_depth[1] != frame.camera:
            return None
        depth_before, camera = self._last_depth
        T_last_world = self._tracked_motion[-1][0]
        T_guess = np.eye(4)
        if len(self._tracked_motion) == 2:
            (T_before, stamp_before), (T_last, stamp_last) = self._tracked_motion
            T_predicted = constant_velocity(T_before, stamp_before, T_last, stamp_last, frame.timestamp)
            T_guess = T_predicted @ invert_pose(T_last)
        step = camera.width / FINEST_COLUMNS
        cfg = self.config
        grids = [DepthGrid.from_depth(depth, camera, step, cfg.depth_min, cfg.depth_max)
                 for depth in (depth_before, frame.depth_image)]
        alignment = align_depth(*grids, camera, T_guess)
        if alignment is None:
            return None
        return invert_pose(alignment.T_dst_src @ T_last_world), alignment.covariance

    def _depth_tracked(self, frame: Observation, keyframe: Keyframe, pose: np.ndarray, covariance: np.ndarray,
                       times: tuple) -> FrameResult:
        """A frame posed by its depth alone (DEGRADED): it becomes the keyframe (its points from depth) so the next
        frames track features near it, in the same map."""
        cfg = self.config
        self._lost_count = 0
        self._state = TrackingState.DEGRADED
        self._last_tracked, self._motion = None, None
        is_keyframe = bool(np.isfinite(frame.depth_points[:, 0]).sum() >= cfg.min_inliers)
        if is_keyframe:
            self._adopt(self._new_keyframe(frame, pose, frame.depth_points))
        outcome = _Outcome(pose, covariance * cfg.degraded_inflation, "depth", keyframe.features,
                           (*times, time.perf_counter()), Matches.empty(), None, is_keyframe)
        return self._finish(frame, outcome)

    def _relocalise(self, frame: Observation, lost_on: Keyframe) -> tuple[Keyframe, Matches, _Estimate] | None:
        """The newest of the window's other keyframes (up to ``relocalise_keyframes``) on whose map PnP poses the frame
        with ``RELOCALISE_INLIER_FACTOR`` x ``min_inliers`` inliers: it becomes the keyframe again.  Only a pose on a
        map counts (not a new two-view map, not a rotation): the trajectory stays in the map's frame and scale."""
        cfg = self.config
        others = [k for k in reversed(self._window) if k is not lost_on and k.map_size >= cfg.min_inliers]
        for keyframe in others[: cfg.relocalise_keyframes]:
            matches = self.matcher(keyframe.features, frame.features)
            estimate = self._estimate(keyframe, matches, frame)
            if estimate is None or not estimate.method.startswith("pnp") or estimate.new_points is not None:
                continue
            if int(estimate.inliers.sum()) >= RELOCALISE_INLIER_FACTOR * cfg.min_inliers:
                self._keyframe, self._motion, self._last_tracked = keyframe, None, None
                self.relocalisations += 1
                return keyframe, matches, estimate
        return None

    # ----------------------------------------------------------------------------------------- helpers
    def _finish(self, frame: Observation, outcome: _Outcome) -> FrameResult:
        """Record the frame's pose in the trajectory and report it."""
        t0, t1, t2, t3 = outcome.times
        estimate = outcome.estimate
        self._pose = outcome.pose.copy()
        if self._depth_tracking and self._state != TrackingState.LOST:
            if self.config.coast_lost_frames or self.config.depth_alignment:
                self._tracked_motion.append((invert_pose(self._pose), frame.timestamp))
            if frame.depth_image is not None:
                self._last_depth = (frame.depth_image.copy(), frame.camera)
        covariance = outcome.covariance
        if not self._depth_tracking:  # monocular: a measured scale source turns map units into metres
            self.metric_scale.update(self._keyframe, self.config.min_inliers, self._window)
            if self._state != TrackingState.LOST:  # a lost frame's variance stays lost_variance
                covariance = self.metric_scale.output_covariance(covariance)
        pose = self.metric_scale.output_pose(self._pose)
        previous = self._poses[-1] if self._poses else pose
        relative = invert_pose(previous) @ pose
        self._output_pose = pose.copy()
        self._timestamps.append(frame.timestamp)
        self._poses.append(pose.copy())
        timings = {
            "extract": (t1 - t0) * 1e3,
            "match": (t2 - t1) * 1e3,
            "pose": (t3 - t2) * 1e3,
            "total": (time.perf_counter() - t0) * 1e3,
        }
        return FrameResult(
            timestamp=frame.timestamp, state=self._state, pose_world_cam=pose.copy(), relative_pose=relative,
            covariance=covariance, features=frame.features, keyframe_features=outcome.keyframe_features,
            matches=outcome.matches, inliers=0 if estimate is None else int(estimate.inliers.sum()),
            is_keyframe=bool(outcome.is_keyframe), timings_ms=timings,
            inlier_mask=None if estimate is None else estimate.inliers,
            parallax_px=0.0 if estimate is None else float(estimate.parallax_px), method=outcome.method,
        )

    def _check_inputs(self, image, camera, depth) -> bool:
        if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
            shape = getattr(image, "shape", None)
            raise OdometryInputError(f"image must be a non-empty HxW or HxWxC numpy array, got {shape}")
        if not isinstance(camera, Camera):
            raise OdometryInputError(f"camera must be a silk_ros.geometry.camera.Camera, got {type(camera).__name__}")
        too_small = image_size_problem(image.shape[1], image.shape[0])
        if too_small:
            raise OdometryInputError(too_small)
        if image.shape[:2] != (camera.height, camera.width):
            raise OdometryInputError(
                f"image is {image.shape[1]}x{image.shape[0]} but the camera is {camera.width}x{camera.height}"
            )
        if self.config.mode == "rgbd" and depth is None:
            raise OdometryInputError("mode 'rgbd' needs a depth image with every frame")
        use_depth = uses_depth(self.config.mode, depth is not None, self.config.depth_scale)
        if not use_depth and not (depth is not None and self.config.depth_scale):
            return False
        if not isinstance(depth, np.ndarray) or depth.ndim != 2:
            raise OdometryInputError(f"depth must be an HxW array in metres, got {getattr(depth, 'shape', depth)}")
        return use_depth

    def _keypoint_depth(self, depth: np.ndarray, features: Features, cam: Camera) -> np.ndarray:
        """Depth (m) of each feature, NaN where it is not trustworthy (see ``keypoint_depth``)."""
        cfg = self.config
        return keypoint_depth(
            depth, features.keypoints_xy, (cam.height, cam.width), cfg.depth_window_radius,
            cfg.depth_min_valid_fraction, cfg.depth_max_relative_spread, cfg.depth_min, cfg.depth_max,
        )

    def _depth_points(self, depth: np.ndarray, features: Features, cam: Camera) -> np.ndarray:
        """Keyframe-candidate 3D points in the working camera frame, NaN where the depth is not trustworthy
        (holes, depth edges: see ``keypoint_depth``)."""
        z = self._keypoint_depth(depth, features, cam)
        points = np.full((len(features), 3), np.nan)
        valid = np.isfinite(z)
        if valid.any():
            points[valid] = cam.backproject(features.keypoints_xy[valid], z[valid])
        return points
