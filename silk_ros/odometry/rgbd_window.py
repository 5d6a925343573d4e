"""RGB-D local map: a frame's or new keyframe's pose refined against the depth points of the last keyframes.

Chaining keyframe to keyframe keeps each relative error in the trajectory; measured points of older keyframes
still in view tie the frame to where the map already is.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..geometry.pose import invert_pose, transform_points
from ..matching import Matcher, Matches
from . import estimation as est
from .config import OdometryConfig
from .keyframe import Keyframe, Observation

__all__ = ["refine_in_window"]


def refine_in_window(
    window: Iterable[Keyframe],
    keyframe: Keyframe,
    matches: Matches,
    frame: Observation,
    T_cur_kf: np.ndarray,
    window_matcher: Matcher,
    config: OdometryConfig,
) -> np.ndarray:
    """Pose ``T_cur_kf`` of a frame or new keyframe (``frame``, matched to the ``keyframe`` it was tracked on by
    ``matches``) against the local map, refined (LM from the tracked pose, inliers gated by reprojection) on the
    union of the 2D-3D matches to every window keyframe's depth points, in the world.

    Starting from the tracked pose (not RANSAC) the extra correspondences refine it but cannot swap it for another
    consensus set.  Monocular maps are not used: their depths are triangulated from short baselines, and PnP on
    them trades rotation for translation (with it, KITTI 07 SiLK went from ATE 0.47 to 2.1 m), which is also why
    monocular keyframe poses come from the essential matrix.  Keeps ``T_cur_kf`` when the window supports too few
    inliers.
    """
    others = [k for k in window if k is not keyframe and k.map_size > 0]
    if config.window_keyframes < 2 or not others:
        return T_cur_kf
    world, observed = [], []  # map points in the world, and the frame's features that see them
    pairs = [(keyframe, matches)] + [(k, window_matcher(k.features, frame.features)) for k in others]
    for reference, reference_matches in pairs:
        i0, i1 = reference_matches.indices[:, 0], reference_matches.indices[:, 1]
        known = np.isfinite(reference.points[i0, 0])
        world.append(transform_points(reference.pose_world, reference.points[i0[known]]))
        observed.append(i1[known])
    world, observed = np.concatenate(world), np.concatenate(observed)
    image = frame.pixels[observed]
    T_cur_world = T_cur_kf @ invert_pose(keyframe.pose_world)
    solution = est.refine_pose(world, image, frame.K, T_cur_world, config.ransac_threshold_px)
    if solution is None or solution.inliers.sum() < config.init_min_points:
        return T_cur_kf
    T_cur_world = solution.T_1_0
    if config.tracking_inverse_depth_sigma > 0 and frame.depth_points is not None:
        inliers = solution.inliers
        T_cur_world = est.refine_pose_with_depth(
            world[inliers], image[inliers], frame.depth_points[observed[inliers], 2], frame.K, T_cur_world,
            config.ransac_threshold_px, config.tracking_inverse_depth_sigma,
        )
    return T_cur_world @ keyframe.pose_world  # T_cur_world @ T_world_kf
