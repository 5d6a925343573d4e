"""Images and depth maps the odometry cannot use are named before it runs (issue 15 items 6 and 11)."""

from __future__ import annotations

import numpy as np
import pytest

from silk_ros.geometry.camera import Camera
from silk_ros.odometry import OdometryConfig, OdometryInputError, VisualOdometry
from silk_ros.odometry.input_checks import MIN_IMAGE_SIDE, depth_problem, image_size_problem


def test_small_images_get_the_minimum_and_why():
    assert image_size_problem(MIN_IMAGE_SIDE, MIN_IMAGE_SIDE) is None and image_size_problem(640, 480) is None
    message = image_size_problem(1, 1)
    assert "1x1" in message and f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}" in message and "keypoints" in message
    assert image_size_problem(640, MIN_IMAGE_SIDE - 1) is not None


def test_the_odometry_refuses_a_1x1_image_with_the_same_message():
    vo = VisualOdometry(OdometryConfig.from_settings(features="orb"))
    with pytest.raises(OdometryInputError, match="image is 1x1 px, the odometry needs at least"):
        vo.process(np.zeros((1, 1), np.uint8), 0.0, Camera.from_intrinsics(1.0, 1.0, 0.0, 0.0, 1, 1))


def test_depth_without_a_usable_pixel_says_what_its_pixels_are():
    assert depth_problem(np.full((4, 4), 1.5, np.float32), 0.1, 20.0) is None
    one_good = np.zeros((4, 4), np.float32)
    one_good[0, 0] = 2.0
    assert depth_problem(one_good, 0.1, 20.0) is None
    assert "16 zero of 16" in depth_problem(np.zeros((4, 4), np.float32), 0.1, 20.0)
    assert "16 NaN of 16" in depth_problem(np.full((4, 4), np.nan, np.float32), 0.1, 20.0)
    assert "16 infinite of 16" in depth_problem(np.full((4, 4), np.inf, np.float32), 0.1, 20.0)
    millimetres_as_metres = np.full((4, 4), 1500.0, np.float32)
    message = depth_problem(millimetres_as_metres, 0.1, 20.0)
    assert "16 outside the range of 16" in message and "[0.1, 20] m" in message
