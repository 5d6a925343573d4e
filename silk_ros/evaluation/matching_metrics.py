"""Geometry metrics shared by the matching benchmarks (homography, pose pairs, matchers).

Conventions: points are (N, 2) float pixel coordinates, pixel-centre convention.  Homographies map
image-0 pixels to image-1 pixels.  ``T_0to1`` is a 4x4 pose that maps camera-0 points into camera 1
(SuperGlue's pairs-file convention).  Angles are in degrees.

Protocols:
* Homography (SuperPoint / SiLK HPatches): corner error = mean distance between the four image corners
  ``(0, 0), (w-1, 0), (0, h-1), (w-1, h-1)`` warped by the estimated and the true homography;
  accuracy@t = fraction of pairs with corner error <= t; AUC@t = area under the cumulative error curve
  up to t, normalised by t.
* Relative pose (SuperGlue): the essential matrix from normalised matches (OpenCV RANSAC), pose error =
  max(rotation angle error, translation direction angle error), where the translation angle is taken
  up to sign (an essential matrix fixes t only up to scale and sign); AUC@t as above.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "warp_points",
    "homography_corners",
    "homography_corner_error",
    "estimate_homography",
    "match_reprojection_errors",
    "mean_matching_accuracy",
    "repeatability",
    "auc",
    "accuracy_at",
    "rotation_error_deg",
    "translation_angle_error_deg",
    "relative_pose_error",
    "estimate_relative_pose",
    "relative_pose_error_from_matches",
]


def warp_points(points: np.ndarray, homography: np.ndarray) -> np.ndarray:
    """Apply a 3x3 homography to (N, 2) points."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    if len(points) == 0:
        return points.copy()
    homog = np.concatenate([points, np.ones((len(points), 1))], axis=1) @ np.asarray(homography, np.float64).T
    return homog[:, :2] / homog[:, 2:3]


def homography_corners(width: int, height: int) -> np.ndarray:
    return np.array([[0, 0], [width - 1, 0], [0, height - 1], [width - 1, height - 1]], np.float64)


def homography_corner_error(h_est: np.ndarray | None, h_true: np.ndarray, image_size: tuple[int, ...]) -> float:
    """Mean corner distance in image-1 pixels for image 0 of ``image_size`` (height, width[, ...]);
    ``inf`` when no homography was estimated."""
    if h_est is None or not np.all(np.isfinite(h_est)):
        return float("inf")
    corners = homography_corners(int(image_size[1]), int(image_size[0]))
    return float(np.linalg.norm(warp_points(corners, h_est) - warp_points(corners, h_true), axis=1).mean())


def estimate_homography(
    points0: np.ndarray, points1: np.ndarray, threshold_px: float = 3.0, seed: int = 0
) -> tuple[np.ndarray | None, np.ndarray]:
    """OpenCV RANSAC homography (None with fewer than 4 matches or on failure) and the inlier mask."""
    n = len(points0)
    if n < 4:
        return None, np.zeros(n, bool)
    cv2.setRNGSeed(seed)
    h, mask = cv2.findHomography(
        np.asarray(points0, np.float64), np.asarray(points1, np.float64), cv2.RANSAC, threshold_px,
        maxIters=10000, confidence=0.9999,
    )
    if h is None:
        return None, np.zeros(n, bool)
    return h, mask.ravel().astype(bool)


def match_reprojection_errors(points0: np.ndarray, points1: np.ndarray, homography: np.ndarray) -> np.ndarray:
    """Distance (image-1 pixels) between each matched point and its true position."""
    return np.linalg.norm(warp_points(points0, homography) - np.asarray(points1, np.float64).reshape(-1, 2), axis=1)


def mean_matching_accuracy(
    points0: np.ndarray, points1: np.ndarray, homography: np.ndarray, thresholds: tuple[float, ...] = (1, 2, 3)
) -> dict[float, float]:
    """Fraction of matches within each pixel threshold (0 when there are no matches)."""
    if len(points0) == 0:
        return {t: 0.0 for t in thresholds}
    errors = match_reprojection_errors(points0, points1, homography)
    return {t: float((errors <= t).mean()) for t in thresholds}


def _inside(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    return (points[:, 0] >= 0) & (points[:, 0] <= w - 1) & (points[:, 1] >= 0) & (points[:, 1] <= h - 1)


def repeatability(
    keypoints0: np.ndarray,
    keypoints1: np.ndarray,
    homography: np.ndarray,
    size0: tuple[int, int],
    size1: tuple[int, int],
    threshold_px: float,
) -> float:
    """SuperPoint's repeatability: keypoints seen by both images that have a detection within the threshold.

    Only keypoints whose warp lands inside the other image count; the score is
    ``(repeated0 + repeated1) / (n0 + n1)`` over those keypoints.
    """
    k0 = np.asarray(keypoints0, np.float64).reshape(-1, 2)
    k1 = np.asarray(keypoints1, np.float64).reshape(-1, 2)
    k0 = k0[_inside(warp_points(k0, homography), size1)]
    k1 = k1[_inside(warp_points(k1, np.linalg.inv(homography)), size0)]
    if len(k0) == 0 or len(k1) == 0:
        return 0.0
    w0 = warp_points(k0, homography)
    dist = np.linalg.norm(w0[:, None, :] - k1[None, :, :], axis=2)
    repeated0 = int((dist.min(axis=1) <= threshold_px).sum())
    repeated1 = int((dist.min(axis=0) <= threshold_px).sum())
    return (repeated0 + repeated1) / (len(k0) + len(k1))


def auc(errors: np.ndarray | list[float], thresholds: tuple[float, ...]) -> list[float]:
    """Area under the recall-vs-error curve up to each threshold, divided by it (SuperGlue's pose AUC),
    one value per threshold.  Failed estimates carry an infinite error and count as never recalled.
    """
    errors = np.sort(np.asarray(errors, np.float64))
    if len(errors) == 0:
        return [0.0 for _ in thresholds]
    recall = (np.arange(len(errors)) + 1) / len(errors)
    errors = np.concatenate([[0.0], errors])
    recall = np.concatenate([[0.0], recall])
    aucs = []
    for t in thresholds:
        last = int(np.searchsorted(errors, t))
        x = np.concatenate([errors[:last], [t]])
        y = np.concatenate([recall[:last], [recall[last - 1]]])
        aucs.append(float(np.trapezoid(y, x) / t))
    return aucs


def accuracy_at(errors: np.ndarray | list[float], thresholds: tuple[float, ...]) -> dict[float, float]:
    errors = np.asarray(errors, np.float64)
    if len(errors) == 0:
        return {t: 0.0 for t in thresholds}
    return {t: float((errors <= t).mean()) for t in thresholds}


def rotation_error_deg(r_est: np.ndarray, r_true: np.ndarray) -> float:
    cos = (np.trace(r_est.T @ r_true) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def translation_angle_error_deg(t_est: np.ndarray, t_true: np.ndarray) -> float:
    """Angle between translation directions, up to sign (0..90 degrees); 0 when the true t is zero."""
    n_est, n_true = np.linalg.norm(t_est), np.linalg.norm(t_true)
    if n_true < 1e-12:
        return 0.0
    if n_est < 1e-12:
        return 90.0
    cos = float(np.dot(t_est.ravel(), t_true.ravel()) / (n_est * n_true))
    angle = float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))
    return min(angle, 180.0 - angle)


def relative_pose_error(
    t_0to1_true: np.ndarray, r_est: np.ndarray | None, t_est: np.ndarray | None
) -> tuple[float, float, float]:
    """(pose error = max of both, rotation error, translation angle error); inf when no pose was found."""
    if r_est is None or t_est is None:
        return float("inf"), float("inf"), float("inf")
    r_err = rotation_error_deg(r_est, t_0to1_true[:3, :3])
    t_err = translation_angle_error_deg(t_est, t_0to1_true[:3, 3])
    return max(r_err, t_err), r_err, t_err


def estimate_relative_pose(
    points0: np.ndarray,
    points1: np.ndarray,
    k0: np.ndarray,
    k1: np.ndarray,
    threshold_px: float = 0.5,
    confidence: float = 0.99999,
    seed: int = 0,
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
    """SuperGlue's ``estimate_pose``: essential matrix on normalised points, the RANSAC threshold is
    ``threshold_px`` divided by the mean focal length; of the returned candidates the one whose
    ``recoverPose`` keeps the most points in front wins.  Returns (R, t, inlier mask) or (None, None, mask)."""
    n = len(points0)
    if n < 5:
        return None, None, np.zeros(n, bool)
    p0 = (np.asarray(points0, np.float64) - k0[[0, 1], [2, 2]][None]) / k0[[0, 1], [0, 1]][None]
    p1 = (np.asarray(points1, np.float64) - k1[[0, 1], [2, 2]][None]) / k1[[0, 1], [0, 1]][None]
    norm_threshold = threshold_px / np.mean([k0[0, 0], k1[1, 1], k0[0, 0], k1[1, 1]])
    cv2.setRNGSeed(seed)
    try:
        e, mask = cv2.findEssentialMat(p0, p1, np.eye(3), threshold=norm_threshold, prob=confidence, method=cv2.RANSAC)
    except cv2.error:  # OpenCV 5.1's five-point solver asserts on a degenerate sample: a failed pair, not a crash
        return None, None, np.zeros(n, bool)
    if e is None:
        return None, None, np.zeros(n, bool)
    best = None
    for candidate in np.split(e, len(e) // 3):
        count, r, t, _ = cv2.recoverPose(candidate, p0, p1, np.eye(3), 1e9, mask=mask.copy())
        if best is None or count > best[0]:
            best = (count, r, t.ravel(), mask.ravel().astype(bool))
    return best[1], best[2], best[3]


def relative_pose_error_from_matches(
    points0: np.ndarray,
    points1: np.ndarray,
    k0: np.ndarray,
    k1: np.ndarray,
    t_0to1_true: np.ndarray,
    threshold_px: float = 0.5,
) -> float:
    """SuperGlue's pose error of one pair from its matches: max(rotation, translation angle), inf on failure."""
    r, t, _ = estimate_relative_pose(points0, points1, k0, k1, threshold_px)
    return relative_pose_error(t_0to1_true, r, t)[0]
