"""Keypoint depth from a depth image: neighbourhood median, rejection across depth edges and holes, and the
odometry settings that control it."""

from __future__ import annotations

import numpy as np
import pytest

from silk_ros.odometry import ConfigError, OdometryConfig
from silk_ros.odometry.depth import keypoint_depth

#: Keypoints live in a 240x320 working image; the depth image is 480x640 (two depth pixels per image pixel).
IMAGE_SIZE = (240, 320)


def step_depth(near: float = 1.0, far: float = 3.0) -> np.ndarray:
    """A wall at ``near`` metres on the left half, the background at ``far`` on the right (edge at column 320)."""
    depth = np.full((480, 640), far, np.float32)
    depth[:, :320] = near
    return depth


def test_depth_step_rejects_keypoints_on_the_edge_and_keeps_both_sides():
    depth = step_depth()
    keypoints = np.array([[50.0, 100.0], [250.0, 100.0], [159.5, 100.0], [158.5, 60.0], [160.0, 60.0]], np.float32)
    z = keypoint_depth(depth, keypoints, IMAGE_SIZE, radius=2)
    assert z[0] == pytest.approx(1.0) and z[1] == pytest.approx(3.0)
    # Within two depth pixels of the edge the neighbourhood holds both 1 m and 3 m: no depth rather than a guess.
    assert np.all(np.isnan(z[2:]))
    # The nearest sample alone (radius 0) would have given these keypoints one side's depth.
    nearest = keypoint_depth(depth, keypoints, IMAGE_SIZE, radius=0)
    assert np.all(np.isin(nearest[2:], [1.0, 3.0]))


def test_small_relative_spread_is_kept_and_the_median_resists_a_flying_pixel():
    # A slanted floor: 2 m + 1 mm per depth column (0.25 % over a 5x5 neighbourhood) is not an edge.
    cols = np.arange(640, dtype=np.float32)
    depth = np.tile(2.0 + 0.001 * cols, (480, 1)).astype(np.float32)
    depth[201, 201] = 2.6  # one flying pixel, 18 % off, inside the neighbourhood of the keypoint at (100, 100)
    keypoints = np.array([[100.0, 100.0], [300.0, 200.0]], np.float32)
    z = keypoint_depth(depth, keypoints, IMAGE_SIZE, radius=2, max_relative_spread=0.25)
    expected = 2.0 + 0.001 * np.round((keypoints[:, 0] + 0.5) * 2 - 0.5)
    assert z == pytest.approx(expected, abs=1e-6)  # the median, not the outlier
    # With the default 10 % the flying pixel marks that neighbourhood as a discontinuity.
    strict = keypoint_depth(depth, keypoints, IMAGE_SIZE, radius=2, max_relative_spread=0.1)
    assert np.isnan(strict[0]) and strict[1] == pytest.approx(expected[1], abs=1e-6)


def test_holes_and_out_of_range_depths_need_enough_valid_pixels():
    depth = np.full((480, 640), 2.0, np.float32)
    depth[180:220, 180:220] = np.nan  # a hole (no return)
    depth[400:, 600:] = 50.0  # beyond depth_max
    depth[100:103, 398:403] = 0.0  # 15 of the 25 pixels around (200, 50) are invalid (zero = no reading)
    keypoints = np.array([[100.0, 100.0], [310.0, 230.0], [200.0, 50.0], [40.0, 40.0]], np.float32)
    z = keypoint_depth(depth, keypoints, IMAGE_SIZE, radius=2, min_valid_fraction=0.5)
    assert np.isnan(z[0]) and np.isnan(z[1]) and np.isnan(z[2])
    assert z[3] == pytest.approx(2.0)
    # Ten valid pixels of 25 are enough when the fraction asked for is lower.
    assert keypoint_depth(depth, keypoints[2:3], IMAGE_SIZE, radius=2, min_valid_fraction=0.4)[0] == pytest.approx(2.0)
    assert keypoint_depth(depth, np.zeros((0, 2), np.float32), IMAGE_SIZE).shape == (0,)


def test_keypoints_at_the_image_border_use_the_clipped_neighbourhood():
    depth = np.full((480, 640), 1.5, np.float32)
    keypoints = np.array([[0.0, 0.0], [319.0, 239.0]], np.float32)
    assert keypoint_depth(depth, keypoints, IMAGE_SIZE) == pytest.approx([1.5, 1.5])


def test_depth_settings_are_validated():
    with pytest.raises(ConfigError, match="depth_window_radius"):
        OdometryConfig.from_settings(depth_window_radius=-1)
    with pytest.raises(ConfigError, match="depth_min_valid_fraction"):
        OdometryConfig.from_settings(depth_min_valid_fraction=1.5)
    with pytest.raises(ConfigError, match="depth_max_relative_spread"):
        OdometryConfig.from_settings(depth_max_relative_spread=0.0)
    with pytest.raises(ConfigError, match="window_keyframes"):
        OdometryConfig.from_settings(window_keyframes=0)
