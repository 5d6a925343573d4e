"""Keyframe-based visual odometry, monocular or RGB-D, on any ``extract(image) -> Features`` front end.

Per frame: features -> matches against the current keyframe -> pose of the frame relative to the keyframe ->
state update.  Why frame-to-keyframe: small motions accumulate no drift (the estimate is re-solved against the
same keyframe until it is replaced), and a frame with too little parallax simply defers its translation to a
later frame instead of inventing one.

Pose of a frame relative to its keyframe, in order of preference:

* ``pnp``: the keyframe has 3D points (RGB-D: its depth; monocular: points triangulated when it was created,
  whose scale was inherited from the previous keyframe through the shared points) -> MAGSAC++ PnP + LM.
  Monocular scale therefore stays that of the first baseline.  Monocular poses are then refined jointly on the
  map points and the epipolar distance of every match (``epipolar_refinement``): a short-baseline map alone
  trades rotation for translation.
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
scale that makes the triangulated depths of the points shared with the old keyframe's map agree with that map
(median ratio); they then triangulate every essential inlier and carry the old inlier points over.

RGB-D points take the median depth of a small neighbourhood of the keypoint, and none where it spans a depth edge
or a hole (``keypoint_depth``): learned keypoints sit on edges, where the nearest sample is often the background.
A new RGB-D keyframe's pose is refined against the depth points of the last ``window_keyframes`` keyframes, not
only its predecessor's (``_window_refine``); tracking between keyframes stays frame-to-keyframe.

Monocular keyframes keep map points as landmarks shared between the keyframes that observe them (matched keyframe
to keyframe, plus direct matches of the new keyframe to older window keyframes).  Each new monocular keyframe is
bundle-adjusted with the last ``window_keyframes`` keyframes and their shared landmarks (``bundle.adjust_bundle``,
the oldest two keyframes fixed): a keyframe's two-view pose and short-baseline map are corrected by the older
keyframes that see the same points, which is where scale and direction drift come from otherwise.  Holding only
the oldest keyframe and the distance to the next one (the minimal 7-DoF gauge) was tried: on 7-Scenes mono over
three start frames it lost more frames (SiLK median ATE 0.31 m against 0.11 m).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..features import build_extractor
from ..features.runtime import limit_blas_threads
from ..features.types import Features
from ..geometry.camera import Camera
from ..geometry.pose import invert_pose, make_pose, transform_points
from ..geometry.trajectory import Trajectory
from ..matching.base import Matches
from . import bundle
from . import estimation as est
from .config import OdometryConfig, uses_depth
from .depth import keypoint_depth
from .frontend import (
    build_keyframe_matcher,
    build_vo_matcher,
    build_window_matcher,
    resize_image,
    working_camera,
    working_size,
)
from .types import FrameResult, TrackingState

__all__ = ["VisualOdometry", "OdometryInputError"]

#: Keyframes held fixed in the local bundle adjustment: two fix the monocular gauge (pose and scale).
_FIXED_KEYFRAMES = 2


class OdometryInputError(ValueError):
    """An image, depth map or camera the odometry cannot use (the message says which and why)."""


@dataclass
class _Keyframe:
    features: Features
    pixels: np.ndarray  # undistorted working-resolution pixels (N, 2)
    pose_world: np.ndarray  # T_world_kf
    points: np.ndarray  # (N, 3) in the keyframe frame, NaN where unknown
    timestamp: float
    #: monocular: id of the map point each feature observes (shared by the keyframes that see it), -1 for none
    landmarks: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.landmarks is None:
            self.landmarks = np.full(len(self.pixels), -1, np.int64)

    @property
    def map_size(self) -> int:
        return int(np.isfinite(self.points[:, 0]).sum())


@dataclass
class _Estimate:
    T_cur_kf: np.ndarray
    inliers: np.ndarray  # bool over the matches
    parallax_px: float
    method: str
    covariance: np.ndarray
    #: monocular initialisation: keyframe feature indices and their triangulated points (keyframe frame)
    new_points: tuple[np.ndarray, np.ndarray] | None = None


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
        self.matcher = matcher if matcher is not None else build_vo_matcher(config)
        self.window_matcher = build_window_matcher(config, self.matcher)
        self.keyframe_matcher = build_keyframe_matcher(config, getattr(self.extractor, "descriptor_dim", None))
        self.reset()

    # ----------------------------------------------------------------------------------------- state
    def reset(self) -> None:
        """Forget the map and the trajectory (the next frame starts a new one at the identity)."""
        self._keyframe: _Keyframe | None = None
        #: The last ``window_keyframes`` keyframes (the current one last): the local map new keyframes refine against.
        self._window: deque[_Keyframe] = deque(maxlen=max(1, self.config.window_keyframes))
        self._pose = np.eye(4)
        self._state = TrackingState.INITIALIZING
        self._lost_count = 0
        self._scale_reference = 1.0
        #: Median depth of the last keyframe map (monocular: in the map's scale), kept across restarts.
        self._scene_depth: float | None = None
        self._next_landmark = 0
        # Bounded for long-running nodes (max_trajectory_poses > 0); unbounded for evaluation.
        history = self.config.max_trajectory_poses or None
        self._timestamps: deque[float] = deque(maxlen=history)
        self._poses: deque[np.ndarray] = deque(maxlen=history)
        self.keyframe_count = 0
        self.working_size: tuple[int, int] | None = None

    @property
    def state(self) -> TrackingState:
        return self._state

    @property
    def pose(self) -> np.ndarray:
        """Current T_world_cam."""
        return self._pose.copy()

    @property
    def trajectory(self) -> Trajectory:
        if not self._poses:
            return Trajectory(np.zeros(0), np.zeros((0, 4, 4)))
        return Trajectory(np.asarray(self._timestamps), np.stack(self._poses))

    # ----------------------------------------------------------------------------------------- per frame
    def process(
        self, image: np.ndarray, timestamp: float, camera: Camera, depth: np.ndarray | None = None
    ) -> FrameResult:
        cfg = self.config
        t0 = time.perf_counter()
        use_depth = self._check_inputs(image, camera, depth)
        width, height = working_size(cfg, camera.width, camera.height)
        cam = working_camera(camera, width, height)
        self.working_size = (width, height)
        features = self.extractor.extract(resize_image(image, width, height))
        pixels = cam.undistort_points(features.keypoints_xy) if len(features) else np.zeros((0, 2))
        points = self._depth_points(depth, features, cam) if use_depth else None
        t1 = time.perf_counter()

        keyframe = self._keyframe
        if keyframe is None:
            self._adopt(self._new_keyframe(features, pixels, self._pose, points, float(timestamp)), restart=True)
            self._state = TrackingState.TRACKING if self._keyframe.map_size >= cfg.min_inliers else (
                TrackingState.INITIALIZING
            )
            t2 = time.perf_counter()
            return self._finish(
                timestamp, self._pose, np.eye(6) * 1e-9, features, features, Matches.empty(), None, 0, True,
                0.0, "first", (t0, t1, t2, t2),
            )

        matches = self.matcher(keyframe.features, features)
        t2 = time.perf_counter()
        estimate = self._estimate(keyframe, matches, pixels, cam.K, use_depth)
        if self.keyframe_matcher is not None and estimate is not None and self._builds_map(keyframe, estimate, points):
            # The new map is triangulated from these matches: take them from the (slower, better) keyframe matcher.
            start = time.perf_counter()
            strong = self.keyframe_matcher(keyframe.features, features)
            t2 += time.perf_counter() - start  # its time counts as matching, not pose
            better = self._estimate(keyframe, strong, pixels, cam.K, use_depth)
            if better is not None and better.inliers.sum() >= cfg.min_inliers:
                matches, estimate = strong, better
        inliers = 0 if estimate is None else int(estimate.inliers.sum())
        if estimate is None or inliers < cfg.min_inliers:
            result = self._lost(timestamp, features, pixels, points, keyframe, matches, estimate, (t0, t1, t2))
            return result

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
        if has_map and self._builds_map(keyframe, estimate, points):
            candidate, T_cur_kf = self._successor(
                keyframe, matches, estimate, features, pixels, points, cam.K, timestamp
            )
            if candidate.map_size >= cfg.init_min_points:
                estimate.T_cur_kf = T_cur_kf
                pose = keyframe.pose_world @ invert_pose(T_cur_kf)
                candidate.pose_world = pose.copy()
                self._adopt(candidate)
                if points is None and self._adjust_window(cam.K):
                    pose = candidate.pose_world.copy()
                    estimate.T_cur_kf = invert_pose(pose) @ keyframe.pose_world
                self._scale_reference = max(float(np.linalg.norm(estimate.T_cur_kf[:3, 3])), 1e-6)
                is_keyframe = True
        elif estimate.method == "rotation" and inliers < cfg.keyframe_min_inliers:
            # Rotating away (before translation became observable, or with the map turning out of view): follow
            # with a keyframe at the same position so the rotation keeps being tracked instead of running out of
            # matches; it carries the map points it sees, which keeps the monocular scale through the turn.
            self._adopt(self._rotated_successor(keyframe, matches, estimate, features, pixels, pose, timestamp))
            is_keyframe = True
        self._state = state
        t3 = time.perf_counter()
        return self._finish(
            timestamp, pose, covariance, features, keyframe.features, matches, estimate.inliers, inliers,
            is_keyframe, estimate.parallax_px, estimate.method, (t0, t1, t2, t3),
        )

    # ----------------------------------------------------------------------------------------- estimation
    def _builds_map(self, keyframe: _Keyframe, estimate: _Estimate, points: np.ndarray | None) -> bool:
        """This frame initialises the map or becomes the next keyframe: the parallax grew or the inliers fell
        (monocular: only with the parallax to triangulate a successor's map)."""
        cfg = self.config
        if estimate.method not in ("pnp", "essential"):
            return False
        if estimate.new_points is not None:
            return True
        if points is None and estimate.parallax_px < cfg.init_parallax_px:
            return False
        wants = estimate.parallax_px > cfg.keyframe_parallax_px or estimate.inliers.sum() < cfg.keyframe_min_inliers
        return wants and keyframe.map_size >= cfg.min_inliers

    def _estimate(
        self, keyframe: _Keyframe, matches: Matches, pixels: np.ndarray, K: np.ndarray, use_depth: bool
    ) -> _Estimate | None:
        cfg = self.config
        if len(matches) < cfg.min_inliers:
            return None
        i0, i1 = matches.indices[:, 0], matches.indices[:, 1]
        u0, u1 = keyframe.pixels[i0], pixels[i1]
        solver = dict(threshold=cfg.ransac_threshold_px, confidence=cfg.ransac_confidence,
                      iterations=cfg.ransac_iterations)
        map_points = keyframe.points[i0]
        on_map = np.isfinite(map_points[:, 0])
        if on_map.sum() >= cfg.min_inliers:
            estimate = self._estimate_pnp(map_points, on_map, u0, u1, K, solver)
            if cfg.epipolar_refinement and not use_depth and estimate is not None and estimate.method == "pnp":
                # Monocular maps cover part of the matches and are noisy: the rest pin rotation and direction.
                estimate.T_cur_kf = est.refine_pose_with_epipolar(
                    map_points[on_map], u1[on_map], u0, u1, K, estimate.T_cur_kf, cfg.ransac_threshold_px
                )
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

    def _estimate_pnp(self, map_points, on_map, u0, u1, K, solver) -> _Estimate | None:
        cfg = self.config
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
    def _new_keyframe(self, features, pixels, pose_world, points, timestamp) -> _Keyframe:
        if points is None:
            points = np.full((len(features), 3), np.nan)
        self.keyframe_count += 1
        return _Keyframe(features, pixels, pose_world.copy(), points, timestamp)

    def _adopt(self, keyframe: _Keyframe, restart: bool = False) -> None:
        """Make ``keyframe`` the one frames are tracked against and add it to the local-map window."""
        if restart:
            self._window.clear()
        self._keyframe = keyframe
        self._window.append(keyframe)
        if keyframe.map_size >= self.config.min_inliers:
            self._scene_depth = float(np.median(keyframe.points[np.isfinite(keyframe.points[:, 0]), 2]))

    def _rotated_successor(self, keyframe, matches, estimate, features, pixels, pose, timestamp) -> _Keyframe:
        """The current frame as the next keyframe after a pure rotation: the old keyframe's points it matches are
        moved into its frame by that rotation (no triangulation: there is no baseline)."""
        i0, i1 = matches.indices[:, 0], matches.indices[:, 1]
        points = np.full((len(features), 3), np.nan)
        self._carry_points(keyframe, i0, i1, estimate.inliers, estimate.T_cur_kf, points)
        candidate = self._new_keyframe(features, pixels, pose, points, float(timestamp))
        self._link_landmarks(keyframe, candidate, i0, i1)
        return candidate

    def _successor(self, keyframe, matches, estimate, features, pixels, depth_points, K, timestamp):
        """The current frame as the next keyframe, with its points in its own frame, and its pose to the old keyframe.

        RGB-D: points from depth, the old keyframe's inlier points where depth is missing.  Monocular: the
        relative pose is re-estimated from *all* 2D-2D matches (essential matrix), its scale chosen so that the
        triangulated depths of the points shared with the old keyframe's map agree with that map (median ratio);
        every essential inlier is then triangulated, so the map does not thin out from keyframe to keyframe.
        """
        cfg = self.config
        T = estimate.T_cur_kf
        i0, i1 = matches.indices[:, 0], matches.indices[:, 1]
        if depth_points is not None:
            points = depth_points.copy()
            T = self._window_refine(keyframe, matches, features, pixels, K, T)
        else:
            points = np.full((len(features), 3), np.nan)
            T = self._scaled_essential(keyframe, i0, keyframe.pixels[i0], pixels[i1], K, T)
            xyz, error, angle = est.triangulate(keyframe.pixels[i0], pixels[i1], K, T)
            good = (error < 2.0 * cfg.ransac_threshold_px) & (angle > cfg.min_triangulation_deg)
            points[i1[good]] = transform_points(T, xyz[good])
        self._carry_points(keyframe, i0, i1, estimate.inliers, T, points)
        pose = keyframe.pose_world @ invert_pose(T)
        candidate = self._new_keyframe(features, pixels, pose, points, float(timestamp))
        if depth_points is None:
            self._link_landmarks(keyframe, candidate, i0, i1)
        return candidate, T

    @staticmethod
    def _carry_points(keyframe, i0, i1, inliers, T_new_old, points) -> None:
        """Give the new keyframe's features that have no point yet (``points``, filled in place) the old keyframe's
        point of their inlier match, moved into the new frame by ``T_new_old``."""
        fill = inliers & np.isfinite(keyframe.points[i0, 0]) & ~np.isfinite(points[i1, 0])
        points[i1[fill]] = transform_points(T_new_old, keyframe.points[i0[fill]])

    def _link_landmarks(self, keyframe: _Keyframe, candidate: _Keyframe, i0: np.ndarray, i1: np.ndarray) -> None:
        """Monocular: a matched feature with a point in the new keyframe observes the old keyframe's landmark (a
        new one if it had none), so points keep one identity across keyframes for the bundle adjustment."""
        known = np.isfinite(candidate.points[i1, 0])
        ids = keyframe.landmarks[i0[known]].copy()
        fresh = ids < 0
        ids[fresh] = self._next_landmark + np.arange(int(fresh.sum()))
        self._next_landmark += int(fresh.sum())
        keyframe.landmarks[i0[known]] = ids
        candidate.landmarks[i1[known]] = ids

    def _associate_window(self, window: list[_Keyframe], K: np.ndarray) -> None:
        """Monocular: the newest keyframe also observes the landmarks of older window keyframes it matches
        directly (descriptor match, gated by the landmark's reprojection at the current pose), which gives the
        bundle adjustment tracks longer than two keyframes."""
        newest = window[-1]
        T_new_world = invert_pose(newest.pose_world)
        for older in window[:-2]:
            matches = self.window_matcher(older.features, newest.features)
            i0, i1 = matches.indices[:, 0], matches.indices[:, 1]
            candidate = (older.landmarks[i0] >= 0) & np.isfinite(older.points[i0, 0]) & (newest.landmarks[i1] < 0)
            i0, i1 = i0[candidate], i1[candidate]
            taken = np.isin(older.landmarks[i0], newest.landmarks)
            i0, i1 = i0[~taken], i1[~taken]
            world = transform_points(older.pose_world, older.points[i0])
            gate = 2.0 * self.config.ransac_threshold_px
            near = est.reprojection_inliers(T_new_world, world, newest.pixels[i1], K, gate)
            newest.landmarks[i1[near]] = older.landmarks[i0[near]]

    def _adjust_window(self, K: np.ndarray) -> bool:
        """Monocular local bundle adjustment over the window's keyframes and the landmarks two or more of them see
        (``bundle.adjust_bundle``); the oldest two keyframes stay fixed, which fixes position, orientation and
        scale.  Writes the adjusted poses and points back.  An observation that stays an outlier loses its link to
        the landmark but not the keyframe's own point: tracking's RANSAC still votes on it (deleting those points
        starved tracking in the hard stretches of 7-Scenes: SiLK lost 13 frames over three start offsets, not 6).
        Returns whether it ran."""
        cfg = self.config
        window = list(self._window)
        if cfg.bundle_iterations <= 0 or len(window) <= _FIXED_KEYFRAMES:
            return False
        self._associate_window(window, K)
        frame = np.concatenate([np.full(int((k.landmarks >= 0).sum()), f) for f, k in enumerate(window)])
        feature = np.concatenate([np.flatnonzero(k.landmarks >= 0) for k in window])
        landmark = np.concatenate([k.landmarks[k.landmarks >= 0] for k in window])
        _, inverse, counts = np.unique(landmark, return_inverse=True, return_counts=True)
        shared = counts[inverse] >= 2
        frame, feature, landmark = frame[shared], feature[shared], landmark[shared]
        ids, point = np.unique(landmark, return_inverse=True)
        points_world = np.full((len(ids), 3), np.nan)
        for f, keyframe in enumerate(window):  # oldest first: the newest estimate of a point wins
            own = np.flatnonzero(frame == f)
            xyz = keyframe.points[feature[own]]
            known = np.isfinite(xyz[:, 0])
            points_world[point[own[known]]] = transform_points(keyframe.pose_world, xyz[known])
        observed = np.isfinite(points_world[point, 0])
        if observed.sum() < cfg.init_min_points:
            return False
        frame, feature, point = frame[observed], feature[observed], point[observed]
        offsets = np.cumsum([0] + [len(k.pixels) for k in window])
        problem = bundle.BundleProblem(
            poses_world=np.stack([k.pose_world for k in window]),
            fixed=np.arange(len(window)) < _FIXED_KEYFRAMES,
            points_world=np.nan_to_num(points_world),
            frame_index=frame,
            point_index=point,
            pixels=np.concatenate([k.pixels for k in window])[offsets[frame] + feature],
        )
        result = bundle.adjust_bundle(problem, K, cfg.ransac_threshold_px, cfg.bundle_iterations)
        for f, keyframe in enumerate(window):
            keyframe.pose_world = result.poses_world[f]
            own = frame == f
            good, bad = own & result.inliers, own & ~result.inliers
            keyframe.points[feature[good]] = transform_points(invert_pose(keyframe.pose_world),
                                                              result.points_world[point[good]])
            keyframe.landmarks[feature[bad]] = -1
        return True

    def _window_refine(self, keyframe, matches, features, pixels, K, T_cur_kf) -> np.ndarray:
        """RGB-D: pose of a new keyframe against the local map, refined (LM from the tracked pose, inliers gated
        by reprojection) on the union of the 2D-3D matches to every window keyframe's depth points, in the world.

        Chaining keyframe to keyframe keeps each relative error in the trajectory; measured points of older
        keyframes still in view tie the new keyframe to where the map already is.  Starting from the tracked pose
        (not RANSAC) the extra correspondences refine it but cannot swap it for another consensus set.
        Monocular maps are not used: their depths are triangulated from short baselines, and PnP on them trades
        rotation for translation (with it, KITTI 07 SiLK went from ATE 0.47 to 2.1 m), which is also why
        monocular keyframe poses come from the essential matrix.  Keeps ``T_cur_kf`` when the window supports too
        few inliers.
        """
        cfg = self.config
        others = [k for k in self._window if k is not keyframe and k.map_size > 0]
        if cfg.window_keyframes < 2 or not others:
            return T_cur_kf
        world, image = [], []
        pairs = [(keyframe, matches)] + [(k, self.window_matcher(k.features, features)) for k in others]
        for reference, reference_matches in pairs:
            i0, i1 = reference_matches.indices[:, 0], reference_matches.indices[:, 1]
            known = np.isfinite(reference.points[i0, 0])
            world.append(transform_points(reference.pose_world, reference.points[i0[known]]))
            image.append(pixels[i1[known]])
        world, image = np.concatenate(world), np.concatenate(image)
        T_cur_world = T_cur_kf @ invert_pose(keyframe.pose_world)
        solution = est.refine_pose(world, image, K, T_cur_world, cfg.ransac_threshold_px)
        if solution is None or solution.inliers.sum() < cfg.init_min_points:
            return T_cur_kf
        return solution.T_1_0 @ keyframe.pose_world  # T_cur_world @ T_world_kf

    def _scaled_essential(self, keyframe, i0, u0, u1, K, T_pnp) -> np.ndarray:
        """Essential-matrix pose (rotation and direction from every 2D-2D match) with the map's scale: the median
        ratio of the old keyframe's depths to the unit-baseline triangulated depths of the shared points.  PnP on a
        monocular map trades rotation for translation where the map's depths are noisy; the essential matrix does
        not.  Falls back to the PnP pose when too few shared points triangulate."""
        cfg = self.config
        solution = est.essential_pose(u0, u1, K, cfg.ransac_threshold_px, cfg.ransac_confidence, cfg.ransac_iterations)
        if solution is None:
            return T_pnp
        keep = np.flatnonzero(solution.inliers & np.isfinite(keyframe.points[i0, 0]))
        xyz, error, angle = est.triangulate(u0[keep], u1[keep], K, solution.T_1_0)
        good = (error < 2.0 * cfg.ransac_threshold_px) & (angle > cfg.min_triangulation_deg)
        scale = self._map_scale(keyframe, i0[keep], xyz, good)
        if scale is None:
            return T_pnp
        T = solution.T_1_0.copy()
        T[:3, 3] *= scale
        return T

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
    def _lost(self, timestamp, features, pixels, points, keyframe, matches, estimate, times) -> FrameResult:
        """Hold the pose; after ``max_lost_frames`` failures re-start from the current frame (if it has texture)."""
        cfg = self.config
        self._lost_count += 1
        self._state = TrackingState.LOST
        is_keyframe = False
        if self._lost_count > cfg.max_lost_frames and len(features) >= cfg.init_min_points:
            # The held pose is only a guess: the old window's map must not pull the new keyframe towards it.
            self._adopt(self._new_keyframe(features, pixels, self._pose, points, float(timestamp)), restart=True)
            self._lost_count = 0
            is_keyframe = True
        covariance = np.eye(6) * cfg.lost_variance
        mask = None if estimate is None else estimate.inliers
        inliers = 0 if estimate is None else int(estimate.inliers.sum())
        t3 = time.perf_counter()
        return self._finish(
            timestamp, self._pose, covariance, features, keyframe.features, matches, mask, inliers, is_keyframe,
            0.0 if estimate is None else estimate.parallax_px, "lost", (*times, t3),
        )

    # ----------------------------------------------------------------------------------------- helpers
    def _finish(
        self, timestamp, pose, covariance, features, keyframe_features, matches, mask, inliers, is_keyframe,
        parallax, method, times,
    ) -> FrameResult:
        t0, t1, t2, t3 = times
        previous = self._poses[-1] if self._poses else pose
        relative = invert_pose(previous) @ pose
        self._pose = pose.copy()
        self._timestamps.append(float(timestamp))
        self._poses.append(pose.copy())
        timings = {
            "extract": (t1 - t0) * 1e3,
            "match": (t2 - t1) * 1e3,
            "pose": (t3 - t2) * 1e3,
            "total": (time.perf_counter() - t0) * 1e3,
        }
        return FrameResult(
            timestamp=float(timestamp), state=self._state, pose_world_cam=pose.copy(), relative_pose=relative,
            covariance=covariance, features=features, keyframe_features=keyframe_features, matches=matches,
            inliers=int(inliers), is_keyframe=bool(is_keyframe), timings_ms=timings, inlier_mask=mask,
            parallax_px=float(parallax), method=method,
        )

    def _check_inputs(self, image, camera, depth) -> bool:
        if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
            shape = getattr(image, "shape", None)
            raise OdometryInputError(f"image must be a non-empty HxW or HxWxC numpy array, got {shape}")
        if not isinstance(camera, Camera):
            raise OdometryInputError(f"camera must be a silk_ros.geometry.camera.Camera, got {type(camera).__name__}")
        if image.shape[:2] != (camera.height, camera.width):
            raise OdometryInputError(
                f"image is {image.shape[1]}x{image.shape[0]} but the camera is {camera.width}x{camera.height}"
            )
        if self.config.mode == "rgbd" and depth is None:
            raise OdometryInputError("mode 'rgbd' needs a depth image with every frame")
        if not uses_depth(self.config.mode, depth is not None):
            return False
        if not isinstance(depth, np.ndarray) or depth.ndim != 2:
            raise OdometryInputError(f"depth must be an HxW array in metres, got {getattr(depth, 'shape', depth)}")
        return True

    def _depth_points(self, depth: np.ndarray, features: Features, cam: Camera) -> np.ndarray:
        """Keyframe-candidate 3D points in the working camera frame, NaN where the depth is not trustworthy
        (holes, depth edges: see ``keypoint_depth``)."""
        cfg = self.config
        z = keypoint_depth(
            depth, features.keypoints_xy, (cam.height, cam.width), cfg.depth_window_radius,
            cfg.depth_min_valid_fraction, cfg.depth_max_relative_spread, cfg.depth_min, cfg.depth_max,
        )
        points = np.full((len(features), 3), np.nan)
        valid = np.isfinite(z)
        if valid.any():
            points[valid] = cam.backproject(features.keypoints_xy[valid], z[valid])
        return points
