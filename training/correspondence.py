"""Dense ground-truth correspondences between the output grids of two views related by a homography.

Grid cell ``(i, j)`` sits on view pixel ``(x, y) = (j + border, i + border)`` (see silk_ros.features.model).
A cell of view 0 corresponds to the view-1 cell nearest to its warped centre, kept only when that is
inside the view-1 grid and warping it back lands on the same view-0 cell (cycle-consistent, so the
relation is one-to-one and mutual).  A homography is defined up to scale, sign included: points count as
in front of the camera (z > 0) on the side of the vanishing line where the grid centre is.
"""

from __future__ import annotations

import torch

__all__ = ["grid_correspondences"]


def _warp_to_cells(h: torch.Tensor, grid: int, border: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat index of the nearest target cell of every source cell, and whether it is inside the grid."""
    ys, xs = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64),
                            indexing="ij")
    pts = torch.stack([xs.flatten() + border, ys.flatten() + border, torch.ones(grid * grid, dtype=torch.float64)])
    h = h.to(torch.float64)
    centre = border + (grid - 1) / 2.0
    h = h * torch.sign(h[2, 0] * centre + h[2, 1] * centre + h[2, 2])
    warped = h @ pts
    z = warped[2]
    x = torch.round(warped[0] / z) - border
    y = torch.round(warped[1] / z) - border
    inside = (z > 0) & (x >= 0) & (x < grid) & (y >= 0) & (y < grid)
    index = torch.where(inside, y * grid + x, torch.full_like(x, -1)).long()
    return index, inside


def grid_correspondences(h_1_0: torch.Tensor, grid: int, border: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(gt01 (N,), gt10 (N,)) int64 flat cell indices, -1 where a cell has no cycle-consistent partner.

    ``h_1_0`` (3, 3) maps view-0 pixels to view-1 pixels; ``N = grid * grid``.
    """
    fwd, inside0 = _warp_to_cells(h_1_0, grid, border)
    bwd, inside1 = _warp_to_cells(torch.linalg.inv(h_1_0.to(torch.float64)), grid, border)
    n = grid * grid
    cells = torch.arange(n)
    back = torch.where(inside0, bwd[fwd.clamp(min=0)], torch.full_like(fwd, -1))
    ok = inside0 & (back == cells)
    gt01 = torch.where(ok, fwd, torch.full_like(fwd, -1))
    gt10 = torch.full((n,), -1, dtype=torch.long)
    gt10[gt01[ok]] = cells[ok]
    return gt01, gt10
