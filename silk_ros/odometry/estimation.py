"""Two-view geometry of the odometry, on undistorted pixel coordinates with the working camera's K.

Every solver returns ``T_1_0`` (frame 0 = keyframe, frame 1 = current; maps keyframe points into the current
camera) and an inlier mask over its input correspondences, or ``None`` when the geometry does not support an
estimate.  Thresholds are in working-resolution pixels, so MAGSAC++ and the parallax tests mean the same at
any image size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from ..geometry.pose import (
    gauss_newton_covariance,
    kabsch_rotation,
    make_pose,
    project_to_so3,
    reprojection_jacobian,
    skew,
    transform_points,
)

__all__ = [
    "Solution",
    "bearings",
    "project",
    "rotation_only",
    "rotation_parallax_px",
    "essential_pose",
    "more_essential_draws",
    "pnp_pose",
    "reprojection_inliers",
    "refine_pose",
    "huber_weights",
    "left_increment",
    "sampson_errors",
    "sampson_jacobian",
    "epipolar_support",
    "refine_pose_with_epipolar",
    "huber_gauss_newton",
    "refine_pose_with_depth",
    "triangulate",
    "pose_covariance",
    "rotation_covariance",
]


@dataclass
class Solution:
    T_1_0: np.ndarray
    inliers: np.ndarray  # bool mask over the input correspondences


def bearings(pixels: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Undistorted pixels (N, 2) -> rays (N, 3) with z = 1."""
    x = (pixels[:, 0] - K[0, 2]) / K[0, 0]
    y = (pixels[:, 1] - K[1, 2]) / K[1, 1]
    return np.column_stack([x, y, np.ones(len(pixels))])


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera points (N, 3) -> undistorted pixels (N, 2) (points behind the camera give inf/NaN)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        xy = points[:, :2] / points[:, 2:3]
    return xy * [K[0, 0], K[1, 1]] + [K[0, 2], K[1, 2]]


def rotation_parallax_px(R_1_0: np.ndarray, u0: np.ndarray, u1: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Per-correspondence image motion left after removing the rotation: what only translation can cause."""
    if len(u0) == 0:
        return np.zeros(0)
    predicted = project(bearings(u0, K) @ R_1_0.T, K)
    residual = np.linalg.norm(predicted - u1, axis=1)
    return np.where(np.isfinite(residual), residual, np.inf)


def sampling_order(count: int, seed: int) -> np.ndarray | None:
    """The order the correspondences go to OpenCV's robust estimators in (``ransac_seed``).  Their sampling is
    seeded inside OpenCV (the same draws on every run, whatever ``cv2.setRNGSeed``), so another order is another
    draw of the same estimator; seed 0 keeps the given order."""
    return None if seed == 0 else np.random.default_rng(seed).permutation(count)


def _permuted(order: np.ndarray | None, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """The correspondences in ``sampling_order`` (unchanged for seed 0)."""
    return arrays if order is None else tuple(a[order] for a in arrays)


def _unpermuted(mask: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    """A mask over permuted correspondences, back in their given order."""
    if order is None:
        return mask
    out = np.empty_like(mask)
    out[order] = mask
    return out


def rotation_only(
    u0: np.ndarray, u1: np.ndarray, K: np.ndarray, threshold: float, confidence: float, iterations: int,
    seed: int = 0,
) -> Solution | None:
    """Pure-rotation model: the infinite homography ``K R K^-1`` by MAGSAC++, projected onto SO(3) and refined
    by Kabsch on the inlier rays.  Fits any motion whose parallax is below ``threshold``."""
    if len(u0) < 8:
        return None
    order = sampling_order(len(u0), seed)
    H, mask = cv2.findHomography(
        *_permuted(order, u0, u1), method=cv2.USAC_MAGSAC, ransacReprojThreshold=2.0 * threshold,
        maxIters=iterations, confidence=confidence,
    )
    if H is None or mask is None or int(mask.sum()) < 4:
        return None
    M = np.linalg.inv(K) @ H @ K
    det = np.linalg.det(M)
    if abs(det) < 1e-12:
        return None
    R = project_to_so3(M / np.cbrt(det))
    inliers = _unpermuted(mask.ravel().astype(bool), order)
    for _ in range(2):
        b0, b1 = bearings(u0[inliers], K), bearings(u1[inliers], K)
        b0 /= np.linalg.norm(b0, axis=1, keepdims=True)
        b1 /= np.linalg.norm(b1, axis=1, keepdims=True)
        R = kabsch_rotation(b0, b1)
        inliers = rotation_parallax_px(R, u0, u1, K) < 2.0 * threshold
        if inliers.sum() < 4:
            return None
    return Solution(make_pose(R), inliers)


def essential_pose(
    u0: np.ndarray, u1: np.ndarray, K: np.ndarray, threshold: float, confidence: float, iterations: int,
    seed: int = 0,
) -> Solution | None:
    """Essential matrix by MAGSAC++ and the cheirality check of ``recoverPose``: rotation and unit translation.
    One draw, on ``sampling_order``'s order of the correspondences; ``more_essential_draws`` adds others."""
    return _essential_draw(u0, u1, K, threshold, confidence, iterations, _draw_order(len(u0), seed, 0))


def more_essential_draws(
    first: Solution | None, u0: np.ndarray, u1: np.ndarray, K: np.ndarray, threshold: float, confidence: float,
    iterations: int, seed: int, draws: int,
) -> Solution | None:
    """``first`` (``essential_pose``'s draw 0) or one of ``draws - 1`` further draws, each on another order of the
    correspondences, whichever puts the most matches within ``threshold`` of its epipolar geometry (Sampson
    distance; the earlier on a tie).  MAGSAC++ stops as soon as its confidence is reached, which at a new map's few
    pixels of parallax can be on a wrong pose: TUM desk's first map once came out 3.6 degrees and 128 degrees of
    direction off with 289 matches within 1 px, where the true pose has 305 or more."""
    if draws <= 1:
        return first
    best, best_support = None, -1
    for draw in range(draws):
        solution = first if draw == 0 else _essential_draw(u0, u1, K, threshold, confidence, iterations,
                                                           _draw_order(len(u0), seed, draw))
        if solution is None:
            continue
        support = epipolar_support(solution.T_1_0, u0, u1, K, threshold)
        if support > best_support:
            best, best_support = solution, support
    return best


def _draw_order(count: int, seed: int, draw: int) -> np.ndarray | None:
    """The ``draw``-th order of the correspondences for ``seed``: the first is ``sampling_order``'s."""
    return sampling_order(count, seed) if draw == 0 else np.random.default_rng((seed, draw)).permutation(count)


def _essential_draw(u0: np.ndarray, u1: np.ndarray, K: np.ndarray, threshold: float, confidence: float,
                    iterations: int, order: np.ndarray | None) -> Solution | None:
    if len(u0) < 8:
        return None
    u0, u1 = _permuted(order, u0, u1)
    try:
        E, mask = cv2.findEssentialMat(
            u0, u1, K, method=cv2.USAC_MAGSAC, prob=confidence, threshold=threshold, maxIters=iterations
        )
    except cv2.error:  # OpenCV 5.1's five-point solver asserts on degenerate samples: no estimate this frame
        return None
    if E is None or mask is None or E.shape != (3, 3):
        return None
    count, R, t, pose_mask = cv2.recoverPose(E, u0, u1, K, mask=mask.copy())
    if count < 8:
        return None
    inliers = _unpermuted(pose_mask.ravel() > 0, order)
    return Solution(make_pose(R, t.ravel() / max(np.linalg.norm(t), 1e-12)), inliers)


def pnp_pose(
    points0: np.ndarray, u1: np.ndarray, K: np.ndarray, threshold: float, confidence: float, iterations: int,
    seed: int = 0,
) -> Solution | None:
    """Metric (or map-scaled) pose from keyframe points (N, 3) and their current pixels: MAGSAC++ P3P, then
    Levenberg-Marquardt on the inliers."""
    if len(points0) < 6:
        return None
    order = sampling_order(len(points0), seed)
    sampled_points, sampled_pixels = _permuted(order, points0, u1)
    ok, rvec, tvec, inliers = cv2.solvePnPRansac(
        sampled_points.astype(np.float64), sampled_pixels.astype(np.float64), K, None,
        iterationsCount=iterations, reprojectionError=threshold, confidence=confidence, flags=cv2.USAC_MAGSAC,
    )
    if not ok or inliers is None or len(inliers) < 6:
        return None
    index = inliers.ravel() if order is None else order[inliers.ravel()]
    rvec, tvec = cv2.solvePnPRefineLM(points0[index], u1[index], K, None, rvec, tvec)
    T = make_pose(cv2.Rodrigues(rvec)[0], tvec.ravel())
    # Re-select inliers at the refined pose (MAGSAC's own set is soft).
    return Solution(T, reprojection_inliers(T, points0, u1, K, threshold))


def reprojection_inliers(
    T_1_0: np.ndarray, points0: np.ndarray, u1: np.ndarray, K: np.ndarray, threshold: float
) -> np.ndarray:
    """Correspondences in front of the camera that reproject within ``2 * threshold`` px at pose ``T_1_0``."""
    camera_points = transform_points(T_1_0, points0)
    error = np.linalg.norm(project(camera_points, K) - u1, axis=1)
    return np.isfinite(error) & (error < 2.0 * threshold) & (camera_points[:, 2] > 0)


def refine_pose(
    points0: np.ndarray, u1: np.ndarray, K: np.ndarray, T_guess: np.ndarray, threshold: float, rounds: int = 2,
    first_gate_px: float | None = None,
) -> Solution | None:
    """Pose from a good guess: Levenberg-Marquardt on the correspondences that reproject within ``2 * threshold``
    at the current pose, re-selected each round.  Unlike RANSAC it cannot jump to another consensus set, so
    extra, less certain correspondences (older keyframes' points) refine the guess instead of replacing it.
    ``first_gate_px`` widens the first selection for a guess that is only a prediction (a motion model)."""
    T = T_guess.copy()
    mask = np.zeros(len(points0), bool)
    for step in range(rounds + 1):
        gate = first_gate_px / 2.0 if step == 0 and first_gate_px else threshold
        mask = reprojection_inliers(T, points0, u1, K, gate)
        if mask.sum() < 6:
            return None
        if step == rounds:
            break
        rvec, tvec = cv2.Rodrigues(T[:3, :3])[0], T[:3, 3].reshape(3, 1).copy()
        rvec, tvec = cv2.solvePnPRefineLM(points0[mask], u1[mask], K, None, rvec, tvec)
        T = make_pose(cv2.Rodrigues(rvec)[0], tvec.ravel())
    return Solution(T, mask)


def huber_weights(errors: np.ndarray, k: float) -> np.ndarray:
    """Iteratively-reweighted-least-squares weights of the Huber loss with scale ``k`` (1 inside, ``k/|e|`` out)."""
    magnitude = np.abs(errors)
    return np.where(magnitude <= k, 1.0, k / np.maximum(magnitude, 1e-12))


def left_increment(T: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """``exp(delta) @ T`` for ``delta = [translation, rotation vector]``: the perturbation whose derivative
    ``geometry.pose.reprojection_jacobian`` gives (first order), for the Gauss-Newton updates here and in ``bundle``."""
    return make_pose(cv2.Rodrigues(np.asarray(delta[3:], np.float64))[0], delta[:3]) @ T


def sampson_errors(T_1_0: np.ndarray, u0: np.ndarray, u1: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Signed first-order geometric distance (px) of each match to the epipolar geometry of ``T_1_0``."""
    return _sampson(T_1_0, u0, u1, K, jacobian=False)[0]


def sampson_jacobian(T_1_0: np.ndarray, u0: np.ndarray, u1: np.ndarray, K: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``sampson_errors`` (N,) and their (N, 6) derivative w.r.t. ``left_increment``'s perturbation, analytic: with
    ``E = [t]x R``, the perturbation moves it by ``[omega]x E + [rho]x R`` (first order)."""
    return _sampson(T_1_0, u0, u1, K, jacobian=True)


def _sampson(T_1_0: np.ndarray, u0: np.ndarray, u1: np.ndarray, K: np.ndarray, jacobian: bool
             ) -> tuple[np.ndarray, np.ndarray | None]:
    K_inv = np.linalg.inv(K)
    R, E = T_1_0[:3, :3], skew(T_1_0[:3, 3]) @ T_1_0[:3, :3]
    F = K_inv.T @ E @ K_inv
    x0 = np.column_stack([u0, np.ones(len(u0))])
    x1 = np.column_stack([u1, np.ones(len(u1))])
    Fx0, Ftx1 = x0 @ F.T, x1 @ F
    numerator = np.sum(x1 * Fx0, axis=1)
    denominator = np.maximum(np.sqrt(Fx0[:, 0] ** 2 + Fx0[:, 1] ** 2 + Ftx1[:, 0] ** 2 + Ftx1[:, 1] ** 2), 1e-12)
    errors = numerator / denominator
    if not jacobian:
        return errors, None
    axes = [skew(e) for e in np.eye(3)]
    dF = np.stack([K_inv.T @ a @ R @ K_inv for a in axes] + [K_inv.T @ a @ E @ K_inv for a in axes])  # (6, 3, 3)
    dFx0 = (x0 @ dF.reshape(18, 3).T).reshape(-1, 6, 3)  # dF x0 of each direction (plain products: BLAS)
    dFtx1 = (x1 @ dF.transpose(1, 0, 2).reshape(3, 18)).reshape(-1, 6, 3)  # dF^T x1
    d_numerator = np.sum(dFx0 * x1[:, None, :], axis=2)
    d_squared = 2.0 * (Fx0[:, None, 0] * dFx0[:, :, 0] + Fx0[:, None, 1] * dFx0[:, :, 1]
                       + Ftx1[:, None, 0] * dFtx1[:, :, 0] + Ftx1[:, None, 1] * dFtx1[:, :, 1])
    J = d_numerator / denominator[:, None] - (errors / (2.0 * denominator**2))[:, None] * d_squared
    return errors, J


def pose_support(T_1_0: np.ndarray, u0: np.ndarray, u1: np.ndarray, K: np.ndarray, threshold: float,
                 points0: np.ndarray) -> int:
    """How many observations pose ``T_1_0`` explains: the matches ``u0 -> u1`` within ``threshold`` px of its
    epipolar geometry, plus the matches' map points ``points0`` (NaN where none) it reprojects onto their pixels
    (``reprojection_inliers``).  Compares candidate poses of one frame on the same evidence."""
    on_map_count = int(reprojection_inliers(T_1_0, points0, u1, K, threshold).sum())
    if np.linalg.norm(T_1_0[:3, 3]) < 1e-12:  # no baseline, no epipolar geometry: every match would fit it
        return on_map_count
    return epipolar_support(T_1_0, u0, u1, K, threshold) + on_map_count


def epipolar_support(T_1_0: np.ndarray, u0: np.ndarray, u1: np.ndarray, K: np.ndarray, threshold: float) -> int:
    """How many matches ``u0 -> u1`` lie within ``threshold`` px (Sampson distance) of ``T_1_0``'s epipolar geometry."""
    return int((np.abs(sampson_errors(T_1_0, u0, u1, K)) < threshold).sum())


def supported_as_well(T_candidate: np.ndarray, T_reference: np.ndarray, u0: np.ndarray, u1: np.ndarray,
                      K: np.ndarray, threshold: float, points0: np.ndarray) -> bool:
    """Whether ``T_candidate`` explains the matches about as well as ``T_reference`` (``pose_support``): short of it by
    at most a count's standard deviation, so two poses that agree tie whatever the noise, and a wrong one is caught."""
    reference = pose_support(T_reference, u0, u1, K, threshold, points0)
    return pose_support(T_candidate, u0, u1, K, threshold, points0) >= reference - np.sqrt(reference)


def refine_pose_with_epipolar(
    points0: np.ndarray, u1_points: np.ndarray, u0: np.ndarray, u1: np.ndarray, K: np.ndarray,
    T_guess: np.ndarray, threshold: float, iterations: int = 5,
) -> np.ndarray:
    """Monocular tracking pose from the map points' reprojection *and* the epipolar (Sampson) distance of every
    2D-2D match, jointly, by Huber-weighted Gauss-Newton from a good guess (correspondences gated at the guess).

    A monocular map is triangulated from a short baseline and covers only part of the matches, and PnP on it alone
    trades rotation for translation; the matches without a map point still fix rotation and direction, the map
    fixes the scale."""
    on_map = reprojection_inliers(T_guess, points0, u1_points, K, threshold)
    epipolar = np.abs(sampson_errors(T_guess, u0, u1, K)) < 2.0 * threshold
    if on_map.sum() < 6:
        return T_guess
    p0, q1, a0, a1 = points0[on_map], u1_points[on_map], u0[epipolar], u1[epipolar]

    def linearised(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        camera = transform_points(T, p0)
        epipolar_errors, epipolar_J = sampson_jacobian(T, a0, a1, K)
        return (np.concatenate([(project(camera, K) - q1).ravel(), epipolar_errors]),
                np.concatenate([reprojection_jacobian(camera, K[0, 0], K[1, 1]), epipolar_J]))

    return huber_gauss_newton(linearised, T_guess, threshold, iterations)


def huber_gauss_newton(linearised: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], T: np.ndarray,
                       threshold: float, iterations: int) -> np.ndarray:
    """A pose minimising Huber(residuals, ``threshold``) by iteratively-reweighted Gauss-Newton from ``T``;
    ``linearised(T)`` gives the residuals (M,) and their analytic (M, 6) Jacobian w.r.t. ``left_increment``'s
    perturbation (forward differences took 7 residual passes a step, 5 % of a monocular frame on a Zen 3)."""
    for _ in range(iterations):
        r, J = linearised(T)
        weight = huber_weights(r, threshold)
        JtW = J.T * weight
        delta = np.linalg.solve(JtW @ J + 1e-9 * np.eye(6), -JtW @ r)
        T = left_increment(T, delta)
        if np.linalg.norm(delta) < 1e-9:
            break
    return T


def refine_pose_with_depth(
    points0: np.ndarray, u1: np.ndarray, z1: np.ndarray, K: np.ndarray, T_guess: np.ndarray, threshold: float,
    inverse_depth_sigma: float, iterations: int = 5,
) -> np.ndarray:
    """RGB-D tracking pose from the map points' reprojection *and* the depth the current frame measured at their
    pixels (``z1``, m, NaN where none), jointly, by Huber-weighted Gauss-Newton from a good guess (the correspondences
    are the caller's inliers).

    Reprojection fixes the frame's translation along the viewing rays weakly (a few keypoints near the centre, a
    narrow field of view); the frame's own depth measures it directly.  The depth enters as ORB-SLAM's RGB-D
    residual, an inverse-depth error (1/z_predicted - 1/z_measured) / ``inverse_depth_sigma`` counted like a pixel:
    a stereo disparity error, so its weight in metres falls as z^2, as structured-light and stereo depth noise grows.
    Two rounds: the depths that disagree with the first solution by more than ``threshold`` (a depth edge's
    background) are dropped for the second."""
    if len(points0) < 6:
        return T_guess
    measured = np.isfinite(z1)
    inverse_z1 = 1.0 / np.where(measured, z1, 1.0)

    def errors(camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Reprojection (N, 2) and disparity (N,) errors of the points moved into the frame (``camera``)."""
        return project(camera, K) - u1, (1.0 / camera[:, 2] - inverse_z1) / inverse_depth_sigma

    def linearised(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        camera = transform_points(T, points0)
        reprojection, disparity = errors(camera)
        inverse_z = 1.0 / camera[measured, 2]
        d_z = np.column_stack([np.zeros((len(inverse_z), 2)), np.ones(len(inverse_z)),  # dz of [I, -[p]x]
                               camera[measured, 1], -camera[measured, 0], np.zeros(len(inverse_z))])
        return (np.concatenate([reprojection.ravel(), disparity[measured]]),
                np.concatenate([reprojection_jacobian(camera, K[0, 0], K[1, 1]),
                                -(inverse_z**2)[:, None] * d_z / inverse_depth_sigma]))

    T = T_guess
    for _ in range(2):
        T = huber_gauss_newton(linearised, T, threshold, iterations)
        measured &= np.abs(errors(transform_points(T, points0))[1]) <= threshold
    return T


def triangulate(u0: np.ndarray, u1: np.ndarray, K: np.ndarray, T_1_0: np.ndarray) -> tuple[np.ndarray, ...]:
    """Linear triangulation in frame 0: points (N, 3), max reprojection error (px), ray angle (degrees)."""
    if len(u0) == 0:
        return np.zeros((0, 3)), np.zeros(0), np.zeros(0)
    P0 = K @ np.eye(3, 4)
    P1 = K @ T_1_0[:3]
    homogeneous = cv2.triangulatePoints(P0, P1, u0.T.astype(np.float64), u1.T.astype(np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        points = (homogeneous[:3] / homogeneous[3]).T
    points1 = transform_points(T_1_0, points)
    error = np.maximum(
        np.linalg.norm(project(points, K) - u0, axis=1), np.linalg.norm(project(points1, K) - u1, axis=1)
    )
    centre1 = -T_1_0[:3, :3].T @ T_1_0[:3, 3]
    ray0, ray1 = points, points - centre1
    cos = np.sum(ray0 * ray1, axis=1) / np.maximum(np.linalg.norm(ray0, axis=1) * np.linalg.norm(ray1, axis=1), 1e-12)
    angle = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    valid = (points[:, 2] > 0) & (points1[:, 2] > 0) & np.isfinite(error)
    error = np.where(valid, error, np.inf)
    return points, error, np.where(valid, angle, 0.0)


def pose_covariance(points1: np.ndarray, u1: np.ndarray, K: np.ndarray, min_sigma: float) -> np.ndarray:
    """Gauss-Newton covariance of the current pose from its inlier points (current frame) and pixels."""
    residuals = (project(points1, K) - u1).ravel()
    J = reprojection_jacobian(points1, K[0, 0], K[1, 1])
    return gauss_newton_covariance(J, residuals, min_sigma)


def rotation_covariance(
    R_1_0: np.ndarray, u0: np.ndarray, u1: np.ndarray, K: np.ndarray, min_sigma: float, translation_sigma: float
) -> np.ndarray:
    """Covariance of a rotation-only update: rotation block from the ray residuals, the translation block is
    the translation that would stay below the parallax threshold (``translation_sigma``)."""
    rays = bearings(u0, K) @ R_1_0.T
    residuals = (project(rays, K) - u1).ravel()
    J = reprojection_jacobian(rays, K[0, 0], K[1, 1])[:, 3:]
    covariance = np.zeros((6, 6))
    covariance[3:, 3:] = gauss_newton_covariance(J, residuals, min_sigma)
    covariance[:3, :3] = np.eye(3) * translation_sigma**2
    return covariance
