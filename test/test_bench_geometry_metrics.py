"""Shared matching metrics: pose from an essential matrix, AUC, homography corner error, MMA, repeatability."""

import numpy as np
import pytest

from silk_ros.evaluation.matching_metrics import (
    accuracy_at,
    auc,
    estimate_homography,
    estimate_relative_pose,
    homography_corner_error,
    mean_matching_accuracy,
    relative_pose_error,
    relative_pose_error_from_matches,
    repeatability,
    translation_angle_error_deg,
    warp_points,
)


def _rotation(axis, angle):
    import cv2

    return cv2.Rodrigues(np.asarray(axis, float) * angle)[0]


def test_relative_pose_recovered_from_exact_projections():
    rng = np.random.default_rng(0)
    k = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    points = rng.uniform([-2, -1.5, 4], [2, 1.5, 8], size=(200, 3))
    r = _rotation([0.2, 1.0, 0.1], np.radians(8))
    t = np.array([0.5, 0.05, 0.1])
    cam1 = points @ r.T + t
    p0 = points[:, :2] / points[:, 2:] * 500 + [320, 240]
    p1 = cam1[:, :2] / cam1[:, 2:] * 500 + [320, 240]
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = r, t
    r_est, t_est, inliers = estimate_relative_pose(p0, p1, k, k)
    err, r_err, t_err = relative_pose_error(pose, r_est, t_est)
    assert inliers.mean() > 0.95
    assert err < 0.5 and err == max(r_err, t_err)
    assert relative_pose_error(pose, None, None)[0] == float("inf")
    assert relative_pose_error_from_matches(p0, p1, k, k, pose) == pytest.approx(err)
    assert relative_pose_error_from_matches(p0[:4], p1[:4], k, k, pose) == float("inf")


def test_translation_angle_is_sign_free():
    assert translation_angle_error_deg(np.array([1.0, 0, 0]), np.array([-1.0, 0, 0])) == pytest.approx(0.0)
    assert translation_angle_error_deg(np.array([0, 1.0, 0]), np.array([1.0, 0, 0])) == pytest.approx(90.0)


def test_error_auc_matches_hand_computation():
    # Errors 1 and 3 (and one failure) with threshold 2: recall 1/3 from error 1 to 2 -> area 1/3, / 2.
    aucs = dict(zip((2.0, 4.0), auc([1.0, 3.0, float("inf")], (2.0, 4.0)), strict=True))
    assert aucs[2.0] == pytest.approx((0.5 * 1 * (1 / 3) + 1 * (1 / 3)) / 2)
    # Up to 4: triangle to (1, 1/3), ramp to (3, 2/3), flat to 4.
    area = 0.5 * (1 / 3) + 2 * (1 / 3 + 2 / 3) / 2 + 1 * (2 / 3)
    assert aucs[4.0] == pytest.approx(area / 4)
    assert accuracy_at([0.5, 2.5, float("inf")], (1, 3)) == {1: pytest.approx(1 / 3), 3: pytest.approx(2 / 3)}


def test_homography_metrics_on_a_known_warp():
    h = np.array([[1.1, 0.05, 10], [-0.03, 0.95, 5], [1e-4, 0, 1]])
    rng = np.random.default_rng(1)
    p0 = rng.uniform(0, 400, size=(100, 2))
    p1 = warp_points(p0, h)
    p1[:10] += 20  # outliers
    h_est, inliers = estimate_homography(p0, p1)
    assert inliers[10:].all() and not inliers[:10].any()
    assert homography_corner_error(h_est, h, (480, 640)) < 1e-3
    assert homography_corner_error(None, h, (480, 640)) == float("inf")
    mma = mean_matching_accuracy(p0, p1, h, (1, 3))
    assert mma[1] == pytest.approx(0.9) and mma[3] == pytest.approx(0.9)
    k1 = np.concatenate([warp_points(p0[:50], h) + 0.5, rng.uniform(0, 400, size=(50, 2))])
    rep = repeatability(p0[:50], k1, h, (480, 640), (480, 640), threshold_px=1.0)
    assert 0.5 <= rep <= 1.0
    assert repeatability(p0[:50], warp_points(p0[:50], h), h, (480, 640), (480, 640), 1.0) == pytest.approx(1.0)
