"""3D training pairs (``room_pairs``): correspondences from rendered depth are right, occluded cells have none,
and a sampler with rooms stays a pure function of the step that leaves the homography pairs as they were."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from silk_ros.datasets.paths import REPO_ROOT
from silk_ros.geometry.camera import Camera
from training.config import HomographyConfig, PhotometricConfig, TrainConfig
from training.correspondence import DepthPairGeometry, depth_correspondences, pair_correspondences
from training.data import PairSampler
from training.room_pairs import RoomPairSource

CROP, BORDER = 48, 3
GRID = CROP - 2 * BORDER
NO_AUGMENTATION = PhotometricConfig(brightness=0.0, contrast=(1.0, 1.0), gamma=(1.0, 1.0), noise_sigma=0.0,
                                    blur_prob=0.0, motion_blur_prob=0.0)


def _photos(count: int = 8) -> list[np.ndarray]:
    """Smooth random photos (blobs of ~10 px: the nearest-cell rounding of a correspondence barely shows)."""
    rng = np.random.default_rng(0)
    blobs = (cv2.GaussianBlur(rng.random((120, 160)), (0, 0), 5.0) for _ in range(count))
    return [cv2.normalize(b, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8) for b in blobs]


def test_depth_correspondences_of_a_sideways_step_in_front_of_a_wall():
    focal, z = 40.0, 2.0
    camera = Camera.from_intrinsics(focal, focal, (CROP - 1) / 2, (CROP - 1) / 2, CROP, CROP)
    wall = np.full((CROP, CROP), z, np.float32)
    t_1_0 = np.eye(4)
    t_1_0[0, 3] = -0.1  # the camera steps 0.1 m right: the wall moves focal * 0.1 / z = 2 px left
    gt01, gt10 = depth_correspondences(wall, wall, camera, camera, t_1_0, GRID, BORDER)
    for i, j in ((0, 5), (20, 20), (41, 2)):
        assert gt01[i * GRID + j] == i * GRID + (j - 2)
    assert int((gt01 >= 0).sum()) == GRID * (GRID - 2)  # the 2 columns leaving the view have no partner
    ok = gt01 >= 0
    assert torch.equal(gt10[gt01[ok]], torch.nonzero(ok).flatten())  # mutual

    occluded = wall.copy()
    occluded[:, 30:] = 1.0  # something 1 m away covers view 1's right part: the wall behind it is hidden
    hidden, _ = depth_correspondences(wall, occluded, camera, camera, t_1_0, GRID, BORDER)
    lands = (np.arange(GRID * GRID) % GRID) - 2 + BORDER  # view-1 column each view-0 cell lands on
    assert not (hidden.numpy()[lands >= 30] >= 0).any()
    assert (hidden.numpy()[(lands >= BORDER) & (lands < 30)] >= 0).all()


def test_room_pair_correspondences_see_the_same_surface():
    source = RoomPairSource(_photos(), CROP, BORDER, seed=0)
    for i in range(4):
        view0, view1, geometry = source.pair(np.random.default_rng(i), NO_AUGMENTATION)
        assert view0.shape == view1.shape == (CROP, CROP) and view0.dtype == np.float32
        gt01, gt10 = pair_correspondences(geometry, GRID, BORDER)
        ok = np.flatnonzero(gt01.numpy() >= 0)
        assert len(ok) > GRID * GRID / 10
        inner0 = view0[BORDER:-BORDER, BORDER:-BORDER].ravel()
        inner1 = view1[BORDER:-BORDER, BORDER:-BORDER].ravel()
        partner = gt01.numpy()[ok]
        same = np.abs(inner0[ok] - inner1[partner]).mean()
        shuffled = np.abs(inner0[ok] - inner1[np.random.default_rng(i).permutation(partner)]).mean()
        assert same < 0.3 * shuffled


def test_room_sampler_is_a_function_of_the_step_and_keeps_the_homography_pairs():
    photos = _photos()
    args = (photos, CROP, HomographyConfig(), PhotometricConfig(), 0)
    plain = PairSampler(*args)
    rooms = RoomPairSource(photos, CROP, BORDER, seed=0)
    mixed, again = (PairSampler(*args, rooms=rooms, room_share=0.5) for _ in range(2))
    kinds = []
    for step in range(6):
        a0, a1, ga = mixed.batch(step, 2)
        b0, b1, gb = again.batch(step, 2)
        assert np.array_equal(a0, b0) and np.array_equal(a1, b1)  # exact resume: no sampler state
        p0, p1, gp = plain.batch(step, 2)
        for k in range(2):
            kinds.append(isinstance(ga[k], DepthPairGeometry))
            if not kinds[-1]:  # a homography pair is the one the run without rooms draws
                assert np.array_equal(a0[k], p0[k]) and np.array_equal(ga[k], gp[k])
    assert any(kinds) and not all(kinds)


def test_room_pairs_is_a_share():
    tiny = REPO_ROOT / "training/configs/tiny.yaml"
    assert TrainConfig.from_yaml(tiny, ["room_pairs=0.5"]).room_pairs == 0.5
    for bad in ("room_pairs=-0.1", "room_pairs=1.5"):
        with pytest.raises(ValueError, match="room_pairs"):
            TrainConfig.from_yaml(tiny, [bad])
