"""Local map: landmarks shared between keyframes, and the bundle adjustment of the last keyframes.

Keyframes keep map points as landmarks shared between the keyframes that observe them (matched keyframe to
keyframe, plus direct matches of the new keyframe to older window keyframes).  Each new keyframe is bundle-adjusted
with the last ``window_keyframes`` keyframes and their shared landmarks (``bundle.adjust_bundle``, the oldest two
keyframes fixed).  Monocular: a keyframe's two-view pose and short-baseline map are corrected by the older keyframes
that see the same points, which is where scale and direction drift come from otherwise.  Holding only the oldest
keyframe and the distance to the next one (the minimal 7-DoF gauge) was tried: on 7-Scenes mono over three start
frames it lost more frames (SiLK median ATE 0.31 m against 0.11 m).

Monocular frames between keyframes are tracked on the same landmarks (``window_correspondences``,
``landmark_tracking``): the ones the other window keyframes observed join the keyframe's own map points in the
frame's pose refinement, as ORB-SLAM tracks its local map.

A keyframe made while the camera turns in place (``rotation_keeps_window_map``, monocular) has no parallax to
triangulate a map of its own: besides the points its predecessor saw, it takes the landmarks of the window's and
the covisible keyframes that it matches (``associate`` with ``with_points``), so a head shake over sparse texture
does not thin the map until tracking has to start a new one with another scale.

RGB-D (``rgbd_bundle``, off by default): each keyframe's depth measurement of a landmark adds a residual
(``BundleProblem.depths``), so the landmarks average the depth of several keyframes and the keyframe poses move with
them.  Measured worse than the default pose-only refinement of RGB-D keyframes on the window's depth points
(``rgbd_window``): 7-Scenes RGB-D ATE 0.0394 -> 0.0430 m, the synthetic rooms with noisy depth 1.46 -> 1.65 mm.

Covisibility (``covisible_bundle``, on by default; ``covisible_keyframes``, ``covisibility.KeyframeMemory``): older
keyframes that left the window but see the newest keyframe's area have their landmarks fused with the newest
keyframe's features (descriptor match, gated by the reprojection) and join the bundle adjustment held fixed, so the
window cannot drift away from a part of the map it observes again.
"""

from __future__ import annotations

import numpy as np

from ..features.types import Features
from ..geometry.pose import invert_pose, transform_points
from ..matching import Matcher
from . import bundle
from . import estimation as est
from .config import OdometryConfig
from .keyframe import Keyframe

__all__ = ["LandmarkMap", "FIXED_KEYFRAMES"]

#: Keyframes held fixed in the local bundle adjustment: two fix the monocular gauge (pose and scale).
FIXED_KEYFRAMES = 2


class LandmarkMap:
    """Landmark identities across keyframes, and the window's bundle adjustment."""

    def __init__(self, config: OdometryConfig, window_matcher: Matcher):
        self.config = config
        #: matches a new keyframe to the older keyframes of the window (see ``frontend.build_window_matcher``)
        self.window_matcher = window_matcher
        self.reset()

    def reset(self) -> None:
        self._next_landmark = 0

    def link(self, keyframe: Keyframe, candidate: Keyframe, i0: np.ndarray, i1: np.ndarray) -> None:
        """A matched feature with a point in the new keyframe observes the old keyframe's landmark (a new one if it
        had none), so points keep one identity across keyframes for the bundle adjustment."""
        known = np.isfinite(candidate.points[i1, 0])
        ids = keyframe.landmarks[i0[known]].copy()
        fresh = ids < 0
        ids[fresh] = self._next_landmark + np.arange(int(fresh.sum()))
        self._next_landmark += int(fresh.sum())
        keyframe.landmarks[i0[known]] = ids
        candidate.landmarks[i1[known]] = ids

    def window_correspondences(self, window: list[Keyframe], keyframe: Keyframe, used: np.ndarray,
                               frame_features: Features, frame_pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks of the window's other keyframes that a frame tracked on ``keyframe`` sees: their points in the
        keyframe's frame and the frame's pixels, for the frame's pose refinement (tracking on the local map).

        Only landmarks, the points two or more keyframes observed and the bundle adjustment kept, newest keyframe
        first; none that ``keyframe``'s own matches already give (``used``: the frame's features on its map)."""
        taken = np.zeros(len(frame_pixels), bool)
        taken[used] = True
        seen = np.zeros(0, np.int64)  # landmark ids already given
        T_kf_world = invert_pose(keyframe.pose_world)
        points, pixels = [], []
        for older in reversed(window):
            if older is keyframe:
                continue
            mapped = np.flatnonzero((older.landmarks >= 0) & np.isfinite(older.points[:, 0]))
            if len(mapped) == 0:
                continue
            matches = self.window_matcher(older.features.subset(mapped), frame_features)
            i0, i1 = mapped[matches.indices[:, 0]], matches.indices[:, 1]
            keep = ~taken[i1] & ~np.isin(older.landmarks[i0], seen)
            i0, i1 = i0[keep], i1[keep]
            taken[i1] = True
            seen = np.concatenate([seen, older.landmarks[i0]])
            points.append(transform_points(T_kf_world @ older.pose_world, older.points[i0]))
            pixels.append(frame_pixels[i1])
        if not points:
            return np.zeros((0, 3)), np.zeros((0, 2))
        return np.concatenate(points), np.concatenate(pixels)

    def associate(self, newest: Keyframe, others: list[Keyframe], K: np.ndarray, with_points: bool = False) -> int:
        """The newest keyframe also observes the landmarks of older keyframes it matches directly (descriptor
        match, gated by the landmark's reprojection at the current pose), which gives the bundle adjustment tracks
        longer than two keyframes and fuses a revisited area's points with the old ones.  ``with_points``: those of
        its features without a point of their own take the landmark's (in the newest keyframe's frame), so a
        keyframe made while turning keeps the local map it sees, not only what its predecessor saw.  Returns how
        many features were associated."""
        T_new_world = invert_pose(newest.pose_world)
        associated = 0
        for older in others:
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
            if with_points:
                empty = near & ~np.isfinite(newest.points[i1, 0])
                newest.points[i1[empty]] = transform_points(T_new_world, world[empty])
            associated += int(near.sum())
        return associated

    def adjust(self, window: list[Keyframe], K: np.ndarray, covisible: list[Keyframe] = (), depth: bool = False
               ) -> bool:
        """Local bundle adjustment over the window's keyframes (oldest first) and the landmarks two or more of them
        see (``bundle.adjust_bundle``); the oldest two keyframes stay fixed, which fixes position, orientation and
        scale, and so do the ``covisible`` older keyframes (their landmarks fused with the newest keyframe's).
        ``depth``: the keyframes' measured depths (``Keyframe.depth_z``, metres, the map's unit) are residuals too.
        Writes the adjusted poses and points back.  An observation that stays an outlier loses its link to
        the landmark but not the keyframe's own point: tracking's RANSAC still votes on it (deleting those points
        starved tracking in the hard stretches of 7-Scenes: SiLK lost 13 frames over three start offsets, not 6).
        Returns whether it ran."""
        cfg = self.config
        if cfg.bundle_iterations <= 0 or len(window) <= FIXED_KEYFRAMES:
            return False
        covisible = list(covisible)
        self.associate(window[-1], window[:-2] + covisible, K)
        # moving the covisible keyframes too: mixed on the design set, worse on 7-Scenes (BENCHMARKS.md, session 36)
        n_fixed = len(covisible) + FIXED_KEYFRAMES
        window = covisible + window  # oldest first (the newest estimate of a point wins below)
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
        depths = None
        if depth:
            measured = [k.depth_z if k.depth_z is not None else np.full(len(k.pixels), np.nan) for k in window]
            depths = np.concatenate(measured)[offsets[frame] + feature]
        problem = bundle.BundleProblem(
            poses_world=np.stack([k.pose_world for k in window]),
            fixed=np.arange(len(window)) < n_fixed,
            points_world=np.nan_to_num(points_world),
            frame_index=frame,
            point_index=point,
            pixels=np.concatenate([k.pixels for k in window])[offsets[frame] + feature],
            depths=depths,
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
