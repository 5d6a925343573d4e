"""Matches refined to sub-pixel by SiLK's descriptor correlation: the windows the extractor keeps, the refined
points against an exact homography, and what is left alone."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from silk_ros.bench.pair_data import read_grey
from silk_ros.datasets.paths import shared_data_root
from silk_ros.evaluation.matching_metrics import warp_points
from silk_ros.features import SilkExtractor
from silk_ros.features.types import DescriptorWindows, Features
from silk_ros.matching import build_matcher
from silk_ros.matching.refinement import refine_matched_points


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A held-out validation photo (never a benchmark image)."""
    path = next(iter(sorted((shared_data_root() / "train" / "bsds500" / "test").glob("*.jpg"))))
    return read_grey(path)


def _warped(photo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The photo seen under a mild homography (rotation, zoom, tilt and a sub-pixel shift) and that homography."""
    h, w = photo.shape
    angle = np.deg2rad(6.0)
    h_1_0 = np.array([[1.08 * np.cos(angle), -1.08 * np.sin(angle), 7.3],
                      [1.08 * np.sin(angle), 1.08 * np.cos(angle), -11.6],
                      [2e-5, -3e-5, 1.0]])
    centre = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1.0]])
    h_1_0 = np.linalg.inv(centre) @ h_1_0 @ centre
    return cv2.warpPerspective(photo, h_1_0, (w, h), flags=cv2.INTER_LINEAR), h_1_0


def test_windows_hold_the_dense_descriptors_around_each_keypoint(photo):
    """Windows come from the dense head; the keypoints and their descriptors are those of the extractor without."""
    plain = SilkExtractor(backend="torch", top_k=300, context_scale=0.0, refine_matches=False)
    windowed = SilkExtractor(backend="torch", top_k=300, context_scale=0.0, refine_matches=True)
    f_plain, f = plain.extract(photo), windowed.extract(photo)
    assert f_plain.windows is None and isinstance(f.windows, DescriptorWindows)
    np.testing.assert_array_equal(f.keypoints_xy, f_plain.keypoints_xy)
    np.testing.assert_allclose(f.descriptors, f_plain.descriptors, atol=1e-5)
    _, dense = windowed.dense(photo)
    dense /= np.linalg.norm(dense, axis=0, keepdims=True)
    grid_h, grid_w = dense.shape[1:]
    cell = np.round(f.windows.centre_xy).astype(int) - windowed.border
    np.testing.assert_allclose(f.windows.centre_xy, np.round(f.keypoints_xy), atol=0.5 + 1e-6)
    for i in (0, 17, 150, len(f) - 1):
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                row = np.clip(cell[i, 1] + dy, 0, grid_h - 1)
                col = np.clip(cell[i, 0] + dx, 0, grid_w - 1)
                np.testing.assert_allclose(f.windows.descriptors[i, dy + 2, dx + 2], dense[:, row, col], atol=1e-5)
    np.testing.assert_array_equal(f.windows.step_xy, 1.0)


def test_refined_matches_land_nearer_the_true_point(photo):
    """Against an exact homography: the matched points' median error falls (measured 0.33 -> 0.18 px), the first
    image's points stay where they were detected, and no refined point moves more than 1.5 cells."""
    warped, h_1_0 = _warped(photo)
    extractor = SilkExtractor(backend="torch", top_k=1000, refine_matches=True)
    f0, f1 = extractor.extract(photo), extractor.extract(warped)
    matches = build_matcher("ratio")(f0, f1)
    xy0, xy1 = matches.points(f0, f1)
    np.testing.assert_array_equal(xy0, f0.keypoints_xy[matches.indices[:, 0]])
    detected = f1.keypoints_xy[matches.indices[:, 1]]
    assert np.abs(xy1 - f1.windows.centre_xy[matches.indices[:, 1]]).max() <= 1.5 + 1e-5  # the 3x3 cells + a parabola
    truth = warp_points(xy0, h_1_0)
    before, after = np.linalg.norm(detected - truth, axis=1), np.linalg.norm(xy1 - truth, axis=1)
    correct = before < 3.0
    assert correct.sum() > 100
    assert np.median(after[correct]) < 0.75 * np.median(before[correct]), (np.median(before[correct]),
                                                                          np.median(after[correct]))


def test_features_without_windows_match_at_their_keypoints(photo):
    """ORB, SIFT, or SiLK with ``refine_matches: false``: the points are the keypoints, as before."""
    extractor = SilkExtractor(backend="torch", top_k=300, refine_matches=False)
    f0, f1 = extractor.extract(photo), extractor.extract(_warped(photo)[0])
    matches = build_matcher("mnn")(f0, f1)
    xy0, xy1 = matches.points(f0, f1)
    np.testing.assert_array_equal(xy1, f1.keypoints_xy[matches.indices[:, 1]])
    windowed = SilkExtractor(backend="torch", top_k=300, refine_matches=True).extract(photo)
    one_sided = refine_matched_points(windowed, f1, matches.indices)  # one side without windows: left alone
    np.testing.assert_array_equal(one_sided[1], xy1)


def test_windows_follow_subsets_and_pyramid_levels(photo):
    """A coarser level's windows step by its cell size in input pixels, centred on its keypoints' cells."""
    extractor = SilkExtractor(backend="torch", top_k=400, pyramid_levels=2, pyramid_scale=0.5, refine_matches=True)
    f = extractor.extract(photo)
    coarse = f.windows.step_xy[:, 0] > 1.5
    assert 0 < coarse.sum() < len(f)
    np.testing.assert_allclose(f.windows.step_xy[coarse], 2.0, atol=0.02)
    offset = np.abs(f.keypoints_xy - f.windows.centre_xy) / f.windows.step_xy
    assert offset.max() <= 0.5 + 1e-4
    subset = f.subset(np.array([3, 1, 2]))
    np.testing.assert_array_equal(subset.windows.centre_xy, f.windows.centre_xy[[3, 1, 2]])


def test_inconsistent_windows_are_refused():
    windows = DescriptorWindows(np.zeros((2, 5, 5, 8), np.float32), np.zeros((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="descriptor windows"):
        Features(np.zeros((3, 2), np.float32), np.zeros(3, np.float32), np.zeros((3, 8), np.float32), (10, 10), windows)
    with pytest.raises(ValueError, match="inconsistent DescriptorWindows"):
        DescriptorWindows(np.zeros((2, 3, 3, 8), np.float32), np.zeros((2, 2)), np.ones((2, 2)))
    small = Features(np.zeros((2, 2), np.float32), np.zeros(2, np.float32), np.zeros((2, 8), np.float32), (10, 10),
                     windows)
    other = DescriptorWindows(np.zeros((2, 5, 5, 4), np.float32), np.zeros((2, 2)), np.ones((2, 2)))
    large = Features(np.zeros((2, 2), np.float32), np.zeros(2, np.float32), np.zeros((2, 4), np.float32), (10, 10),
                     other)
    with pytest.raises(ValueError, match="one extractor"):
        refine_matched_points(small, large, np.array([[0, 1]]))
