"""SiLK training losses: block-wise equals dense (values and gradients), labels from a known homography."""

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from silk_ros.datasets.paths import REPO_ROOT
from training.correspondence import grid_correspondences
from training.losses import descriptor_loss, descriptor_loss_dense, mnn_labels, nearest_neighbours, pair_loss


def _descriptors(n: int, dim: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, dim, generator=g, dtype=torch.float64), dim=1)


def test_blockwise_descriptor_loss_matches_dense_value_and_gradient():
    n = 20 * 20
    d0 = _descriptors(n, 16, 0).requires_grad_()
    d1 = _descriptors(n, 16, 1).requires_grad_()
    idx0 = torch.randperm(n, generator=torch.Generator().manual_seed(2))[:300]
    idx1 = torch.randperm(n, generator=torch.Generator().manual_seed(3))[:300]
    dense = descriptor_loss_dense(d0, d1, idx0, idx1, 0.1)
    g_dense = torch.autograd.grad(dense, (d0, d1))
    blocked = descriptor_loss(d0, d1, idx0, idx1, 0.1, block=37)  # ragged last block on purpose
    g_block = torch.autograd.grad(blocked, (d0, d1))
    torch.testing.assert_close(blocked, dense, rtol=1e-10, atol=1e-10)
    for a, b in zip(g_block, g_dense, strict=True):
        assert a.abs().max() > 0
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_blockwise_nearest_neighbours_match_full_argmax():
    d0, d1 = _descriptors(333, 8, 4), _descriptors(290, 8, 5)
    nn01, nn10 = nearest_neighbours(d0, d1, block=50)
    sim = d0 @ d1.T
    assert torch.equal(nn01, sim.argmax(1))
    assert torch.equal(nn10, sim.argmax(0))


def test_correspondences_of_a_known_homography():
    grid, border = 10, 3
    # Pure translation by (+2, -1) pixels: cell (i, j) -> (i - 1, j + 2).
    shift = torch.tensor([[1.0, 0, 2], [0, 1, -1], [0, 0, 1]], dtype=torch.float64)
    gt01, gt10 = grid_correspondences(shift, grid, border)
    for i in range(grid):
        for j in range(grid):
            expect = (i - 1) * grid + (j + 2) if i >= 1 and j + 2 < grid else -1
            assert gt01[i * grid + j] == expect
    valid = gt01 >= 0
    assert valid.sum() == 9 * 8
    assert torch.equal(gt10[gt01[valid]], torch.nonzero(valid).flatten())  # mutual
    # A 2x zoom about the grid centre is not one-to-one: only cycle-consistent cells survive.
    c = border + (grid - 1) / 2
    zoom = torch.tensor([[2.0, 0, -c], [0, 2.0, -c], [0, 0, 1]], dtype=torch.float64)
    z01, z10 = grid_correspondences(zoom, grid, border)
    ok = z01 >= 0
    assert 0 < ok.sum() < grid * grid
    assert torch.equal(z10[z01[ok]], torch.nonzero(ok).flatten())
    assert (z10 >= 0).sum() == ok.sum()


def test_mnn_labels_mark_exactly_the_correct_mutual_matches():
    n, grid, border = 64, 8, 3
    shift = torch.tensor([[1.0, 0, 1], [0, 1, 0], [0, 0, 1]], dtype=torch.float64)
    gt01, gt10 = grid_correspondences(shift, grid, border)
    d0 = _descriptors(n, 32, 6)
    d1 = torch.zeros_like(d0)
    valid = gt01 >= 0
    d1[gt01[valid]] = d0[valid]  # perfect descriptors where a correspondence exists
    rest = gt10 < 0
    d1[rest] = _descriptors(int(rest.sum()), 32, 7)
    label0, label1, mutual0 = mnn_labels(d0, d1, gt01, gt10, block=7)
    assert torch.equal(label0[valid], torch.ones(int(valid.sum()), dtype=torch.bool))
    assert not label0[~valid].any()
    assert torch.equal(label1, gt10 >= 0)
    assert mutual0.sum() >= label0.sum()
    # Shuffled descriptors: (almost) nothing is correct any more.
    perm = torch.from_numpy(np.random.default_rng(0).permutation(n))
    wrong0, _, _ = mnn_labels(d0, d1[perm], gt01, gt10, block=7)
    assert wrong0.sum() < label0.sum() / 4


# ---------------------------------------------------------------- SiLK's recipe (issue 14, items 1-4 and 7)
def _pair_reference(logits0, desc0, logits1, desc1, gt01, gt10, temperature, mask):
    """pair_loss written with the dense similarity and exact argmax labels (SiLK's definitions)."""
    d0 = F.normalize(desc0.flatten(1).T, dim=1)
    d1 = F.normalize(desc1.flatten(1).T, dim=1)
    idx0 = torch.nonzero(gt01 >= 0).flatten()
    desc = descriptor_loss_dense(d0, d1, idx0, gt01[idx0], temperature)
    label0, label1, _ = mnn_labels(d0.detach(), d1.detach(), gt01, gt10, block=10_000)
    m0, m1 = (gt01 >= 0, gt10 >= 0) if mask == "correspondences" else (slice(None), slice(None))
    bce = F.binary_cross_entropy_with_logits
    kp = 0.5 * (bce(logits0.flatten()[m0], label0[m0].double()) + bce(logits1.flatten()[m1], label1[m1].double()))
    return desc, kp, label0


def _random_pair(grid: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    desc0 = torch.randn(8, grid, grid, generator=g, dtype=torch.float64)
    # View 1 = view 0 shifted by one cell, plus noise: many but not all mutual nearest neighbours are correct.
    desc1 = torch.roll(desc0, shifts=1, dims=2) + 0.9 * torch.randn(8, grid, grid, generator=g, dtype=torch.float64)
    logits0 = torch.randn(grid, grid, generator=g, dtype=torch.float64)
    logits1 = torch.randn(grid, grid, generator=g, dtype=torch.float64)
    shift = torch.tensor([[1.0, 0, 1], [0, 1, 0], [0, 0, 1]], dtype=torch.float64)
    gt01, gt10 = grid_correspondences(shift, grid, 3)
    return [t.requires_grad_() for t in (logits0, desc0, logits1, desc1)], gt01, gt10


@pytest.mark.parametrize("mask", ["correspondences", "all"])
def test_fused_pair_loss_equals_silk_definitions_value_gradient_and_labels(mask):
    tensors, gt01, gt10 = _random_pair(grid=15, seed=3)
    fused = pair_loss(*tensors, gt01, gt10, temperature=0.05, block=16, keypoint_mask=mask)  # ragged blocks
    desc, kp, label0 = _pair_reference(*tensors, gt01, gt10, 0.05, mask)
    assert 0 < fused.correct < fused.correspondences  # a mix of correct and wrong matches
    assert fused.correct == int(label0.sum())
    torch.testing.assert_close(fused.descriptor, desc.item(), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(fused.keypoint, kp.item(), rtol=1e-9, atol=1e-9)
    for a, b in zip(torch.autograd.grad(fused.loss, tensors), torch.autograd.grad(desc + kp, tensors), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-11)


def test_keypoint_loss_trains_only_cells_with_a_partner_under_silk_mask():
    tensors, gt01, gt10 = _random_pair(grid=12, seed=4)
    logits0 = tensors[0]
    no_partner = (gt01 < 0).reshape(12, 12)
    assert no_partner.any()
    silk = torch.autograd.grad(pair_loss(*tensors, gt01, gt10, 0.05, 32).loss, logits0)[0]
    assert torch.all(silk[no_partner] == 0) and torch.any(silk[~no_partner] != 0)
    everywhere = torch.autograd.grad(pair_loss(*tensors, gt01, gt10, 0.05, 32, keypoint_mask="all").loss, logits0)[0]
    assert torch.all(everywhere[no_partner] > 0)  # label 0 outside the overlap: pushed down


def test_descriptor_loss_sums_both_directions_at_the_given_temperature():
    # Two cells per view, descriptors at 0 and 90 degrees: cos = [[1, 0], [0, 1]], correspondences 0-0, 1-1.
    d = torch.eye(2, dtype=torch.float64)
    idx = torch.arange(2)
    t = 0.05
    logit = torch.tensor(1 / t, dtype=torch.float64)
    one_direction = -torch.log(torch.exp(logit) / (torch.exp(logit) + 1))
    loss = descriptor_loss(d, d, idx, idx, temperature=t, block=1)
    torch.testing.assert_close(loss, 2 * one_direction)  # the sum of the two directions, logits cos / 0.05


def test_shipped_training_configs_use_silk_temperature_and_reduction():
    from training.config import TrainConfig

    for name in ("mu.yaml", "mu_cpu.yaml"):
        config = TrainConfig.from_yaml(REPO_ROOT / "training/configs" / name)
        # SiLK: unit descriptors scaled by sqrt(2), temperature 0.1 -> logits cos / 0.05.
        assert config.temperature == pytest.approx(0.1 / 2)
        assert config.descriptor_weight == 1.0 and config.keypoint_mask == "correspondences"
        assert config.homography.scale_first and config.homography.plane_distance == 1.0


def test_correspondences_survive_a_vanishing_line_between_origin_and_centre():
    """Issue 14, item 1: oriented by pixel (0, 0), such a homography put every cell behind the camera."""
    grid, border = 40, 3
    centre = border + (grid - 1) / 2
    # A strong tilt: w = 1 + 0.06 (x - centre) is 0 at x = centre - 16.7, between pixel 0 and the centre.
    to_centre = torch.tensor([[1.0, 0, -centre], [0, 1, -centre], [0, 0, 1]], dtype=torch.float64)
    tilt = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0.06, 0, 1]], dtype=torch.float64)
    h = torch.linalg.inv(to_centre) @ tilt @ to_centre
    assert h[2, 0] * 0 + h[2, 1] * 0 + h[2, 2] < 0 < h[2, 0] * centre + h[2, 1] * centre + h[2, 2]
    gt_ok, _ = grid_correspondences(h, grid, border)
    assert (gt_ok >= 0).sum() > grid * grid / 4
    flipped, _ = grid_correspondences(-h, grid, border)  # the same homography, w(0, 0) = +1 as before the fix
    assert torch.equal(flipped, gt_ok)


def test_training_pairs_are_oriented_at_the_crop_centre():
    from training.config import HomographyConfig, PhotometricConfig
    from training.data import make_pair

    image = (np.random.default_rng(0).random((200, 200)) * 255).astype(np.uint8)
    for i in range(20):
        _, _, h = make_pair(image, 48, np.random.default_rng(i), HomographyConfig(), PhotometricConfig())
        centre = np.array([23.5, 23.5, 1.0])
        assert (h @ centre)[2] == pytest.approx(1.0)


def test_homography_sampler_perspective_matches_silk():
    """Issue 14, item 5: SiLK scales first and tilts a plane at distance 1 (median strength ~0.42)."""
    from training.config import HomographyConfig
    from training.data import perspective_strength, sample_homography

    def strengths(config):
        return np.array([perspective_strength(sample_homography(np.random.default_rng(i), config))
                         for i in range(3000)])

    silk = strengths(HomographyConfig())
    earlier = strengths(HomographyConfig(plane_distance=2.0, scale_first=False))
    assert 0.38 < np.median(silk) < 0.46 and 0.53 < np.percentile(silk, 90) < 0.63
    assert 0.25 < np.median(earlier) < 0.33 and np.percentile(earlier, 90) < 0.41


def test_context_descriptors_in_training_are_those_the_extractor_gives():
    """A network trained with ``context_scale`` learns exactly the descriptors the odometry matches: the dense joined
    map of training, read at the extractor's keypoints (sub-pixel off: keypoints sit on cells), equals the
    extractor's context descriptors, edge bands (clamped to the coarse grid) included."""
    from silk_ros.features import SilkExtractor
    from silk_ros.weights import WeightsError, shipped_weights
    from training.losses import shrunk_views, with_context

    try:
        extractor = SilkExtractor(weights=str(shipped_weights("silk-mu")), backend="torch", top_k=300, nms_radius=0,
                                  subpixel=False, context_scale=0.5, context_weight=0.7)
    except WeightsError:
        pytest.skip("shipped SiLK weights not present")
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur((rng.random((96, 128)) * 255).astype(np.uint8), (5, 5), 1.5)
    features = extractor.extract(image, color_order="grey")
    model, border = extractor.model, extractor.border
    views = torch.from_numpy(image.astype(np.float32)[None, None] / 255.0)
    with torch.no_grad():
        _, desc = model(views)
        _, small = model(shrunk_views(views, 0.5, border))
        joined = with_context(desc, small, border, (96, 128), 0.7)[0]
    cells = np.round(features.keypoints_xy).astype(int) - border
    assert (cells[:, 0] < 8).any() or (cells[:, 0] > joined.shape[2] - 8).any()  # some keypoints in an edge band
    dense = joined[:, cells[:, 1], cells[:, 0]].T.numpy()
    assert dense.shape == features.descriptors.shape == (len(cells), 64)
    np.testing.assert_allclose(dense, features.descriptors, atol=1e-5)
