"""SiLK training losses: block-wise equals dense (values and gradients), labels from a known homography."""

import numpy as np
import torch
import torch.nn.functional as F

from training.correspondence import grid_correspondences
from training.losses import descriptor_loss, descriptor_loss_dense, mnn_labels, nearest_neighbours


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
