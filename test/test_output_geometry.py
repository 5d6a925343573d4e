"""The node's output geometry without ROS: base-frame pose and covariance, twist, keypoints in input pixels."""

from __future__ import annotations

import numpy as np
import pytest

from silk_ros.features.types import Features
from silk_ros.geometry.camera import Camera
from silk_ros.geometry.pose import invert_pose, make_pose, so3_exp, so3_log
from silk_ros.matching.base import Matches
from silk_ros.odometry.output_geometry import (
    UNKNOWN_VARIANCE,
    BaseFrameOdometry,
    adjoint,
    base_twist,
    to_input_pixels,
    viewing_rays,
)
from silk_ros.odometry.types import FrameResult, TrackingState
from silk_ros.settings import NodeConfig

#: the node's default extrinsics: camera optical frame (z forward, x right, y down) -> body (x forward, y left, z up)
BASE_CAM = NodeConfig().base_from_camera_matrix()


def _result(pose=None, relative=None, covariance=None, timestamp=1.0, keyframe=False, state=TrackingState.TRACKING):
    features = Features.empty((240, 320), 32)
    return FrameResult(
        timestamp=timestamp,
        state=state,
        pose_world_cam=np.eye(4) if pose is None else pose,
        relative_pose=np.eye(4) if relative is None else relative,
        covariance=np.eye(6) * 1e-4 if covariance is None else covariance,
        features=features,
        keyframe_features=features,
        matches=Matches.empty(),
        inliers=0,
        is_keyframe=keyframe,
    )


def test_adjoint_moves_a_perturbation_between_frames():
    """T exp(d) T^-1 = exp(Ad_T d) to first order, for (x, y, z, rot_x, rot_y, rot_z) perturbations."""
    rng = np.random.default_rng(0)
    T = make_pose(so3_exp(rng.normal(size=3)), rng.normal(size=3))
    delta = rng.normal(size=6) * 1e-6
    moved = T @ make_pose(so3_exp(delta[3:]), delta[:3]) @ invert_pose(T)
    expected = adjoint(T) @ delta
    np.testing.assert_allclose(moved[:3, 3], expected[:3], atol=1e-11)
    np.testing.assert_allclose(so3_log(moved[:3, :3]), expected[3:], atol=1e-11)


def test_base_pose_and_covariance_follow_the_extrinsics():
    """A camera moving 1 m along its optical axis moves the base 1 m forward (x); that axis's variance goes along."""
    covariance = np.diag([1e-4, 1e-4, 4e-4, 1e-6, 1e-6, 1e-6])
    odometry = BaseFrameOdometry().update(_result(pose=make_pose(translation=[0, 0, 1]), covariance=covariance),
                                          BASE_CAM)
    np.testing.assert_allclose(odometry.pose[:3, 3], [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(odometry.pose[:3, :3], np.eye(3), atol=1e-12)
    assert odometry.covariance[0, 0] == pytest.approx(4e-4)


def test_frame_covariance_adds_to_the_keyframes_and_reset_forgets_it():
    output = BaseFrameOdometry()
    identity = np.eye(4)
    first = output.update(_result(covariance=np.eye(6) * 1.0, keyframe=True), identity)
    second = output.update(_result(covariance=np.eye(6) * 2.0), identity)
    third = output.update(_result(covariance=np.eye(6) * 2.0), identity)
    np.testing.assert_allclose(np.diag(first.covariance), 1.0)
    np.testing.assert_allclose(np.diag(second.covariance), 3.0)  # keyframe's + this frame's, not accumulated
    np.testing.assert_allclose(third.covariance, second.covariance)
    output.reset()
    np.testing.assert_allclose(np.diag(output.update(_result(covariance=np.eye(6)), identity).covariance), 1.0)


def test_twist_is_the_base_velocity_or_unknown():
    relative = make_pose(so3_exp([0, 0.05, 0]), [0, 0, 0.1])  # 0.1 m forward, turning about the camera's y (down)
    covariance = np.eye(6) * 1e-4
    twist = base_twist(_result(relative=relative, covariance=covariance, timestamp=1.1), BASE_CAM, 1.0)
    np.testing.assert_allclose(twist.linear, [1.0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(twist.angular, [0, 0, -0.5], atol=1e-9)  # camera y down = base -z
    np.testing.assert_allclose(twist.covariance, np.eye(6) * 1e-4 / 0.01, rtol=1e-9)
    for previous, state in ((None, TrackingState.TRACKING), (1.1, TrackingState.TRACKING), (1.0, TrackingState.LOST)):
        unknown = base_twist(_result(relative=relative, timestamp=1.1, state=state), BASE_CAM, previous)
        assert not unknown.linear.any() and not unknown.angular.any()
        np.testing.assert_array_equal(unknown.covariance, np.eye(6) * UNKNOWN_VARIANCE)


def test_keypoints_go_back_to_input_pixels_with_the_pixel_centre_convention():
    xy = np.array([[0.0, 0.0], [319.0, 239.0], [10.5, 20.25]], np.float32)
    same = to_input_pixels(xy, (240, 320), (240, 320, 3))
    assert same is xy
    doubled = to_input_pixels(xy, (240, 320), (480, 640))
    np.testing.assert_allclose(doubled, [[0.5, 0.5], [638.5, 478.5], [21.5, 41.0]])
    assert doubled.dtype == np.float32


def test_viewing_rays_at_unit_depth():
    camera = Camera.from_intrinsics(fx=200.0, fy=200.0, cx=160.0, cy=120.0, width=320, height=240)
    assert viewing_rays(camera, np.zeros((0, 2))) is None
    rays = viewing_rays(camera, np.array([[160.0, 120.0], [360.0, 120.0]]))
    np.testing.assert_allclose(rays, [[0, 0, 1], [1, 0, 1]], atol=1e-12)
