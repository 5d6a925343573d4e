"""Dense ground-truth correspondences between the output grids of two views: related by a homography, or seen
by two cameras with known depth (rendered scenes).

Grid cell ``(i, j)`` sits on view pixel ``(x, y) = (j + border, i + border)`` (see silk_ros.features.model).
A cell of view 0 corresponds to the view-1 cell nearest to its warped centre, kept only when that is
inside the view-1 grid and warping it back lands on the same view-0 cell (cycle-consistent, so the
relation is one-to-one and mutual).  A homography is defined up to scale, sign included: points count as
in front of the camera (z > 0) on the side of the vanishing line where the grid centre is.  With depth, a cell
keeps its partner only where the other view sees the same surface there (its depth agrees: not occluded).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from silk_ros.geometry.camera import Camera
from silk_ros.geometry.pose import transform_points

__all__ = ["DepthPairGeometry", "grid_correspondences", "depth_correspondences", "pair_correspondences"]

#: Relative depth disagreement above which a projected cell counts as occluded in the other view.
OCCLUSION_TOLERANCE = 0.03


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


def _mutual(fwd: torch.Tensor, inside0: torch.Tensor, bwd: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the cells whose partner maps back onto them: (gt01, gt10), -1 without a partner."""
    cells = torch.arange(n)
    back = torch.where(inside0, bwd[fwd.clamp(min=0)], torch.full_like(fwd, -1))
    ok = inside0 & (back == cells)
    gt01 = torch.where(ok, fwd, torch.full_like(fwd, -1))
    gt10 = torch.full((n,), -1, dtype=torch.long)
    gt10[gt01[ok]] = cells[ok]
    return gt01, gt10


def grid_correspondences(h_1_0: torch.Tensor, grid: int, border: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(gt01 (N,), gt10 (N,)) int64 flat cell indices, -1 where a cell has no cycle-consistent partner.

    ``h_1_0`` (3, 3) maps view-0 pixels to view-1 pixels; ``N = grid * grid``.
    """
    fwd, inside0 = _warp_to_cells(h_1_0, grid, border)
    bwd, _ = _warp_to_cells(torch.linalg.inv(h_1_0.to(torch.float64)), grid, border)
    return _mutual(fwd, inside0, bwd, grid * grid)


def _project_to_cells(depth_from: np.ndarray, depth_to: np.ndarray, camera_from: Camera, camera_to: Camera,
                      t_to_from: np.ndarray, grid: int, border: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat index of the target cell each source cell's surface point projects to, and whether the target view
    sees that point there (inside its grid, in front, depth agreeing within ``OCCLUSION_TOLERANCE``)."""
    cells = np.arange(grid, dtype=np.float64) + border
    xs, ys = np.meshgrid(cells, cells)
    z = depth_from[border:border + grid, border:border + grid].astype(np.float64).ravel()
    with np.errstate(invalid="ignore"):  # no surface (infinite depth): NaN pixels, never inside
        moved = transform_points(t_to_from, camera_from.backproject(np.column_stack([xs.ravel(), ys.ravel()]), z))
        x, y = (np.round(camera_to.project(moved)) - border).T
        inside = (x >= 0) & (x < grid) & (y >= 0) & (y < grid)
    xi, yi = np.where(inside, x, 0).astype(np.int64), np.where(inside, y, 0).astype(np.int64)
    seen = depth_to[yi + border, xi + border].astype(np.float64)
    inside &= np.abs(seen - moved[:, 2]) <= OCCLUSION_TOLERANCE * moved[:, 2]
    index = np.where(inside, yi * grid + xi, -1)
    return torch.from_numpy(index), torch.from_numpy(inside)


def depth_correspondences(depth0: np.ndarray, depth1: np.ndarray, camera0: Camera, camera1: Camera,
                          t_1_0: np.ndarray, grid: int, border: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(gt01, gt10) as :func:`grid_correspondences`, for two views of a scene: z-depth maps (H, W) at pixel
    centres, their (undistorted) cameras and ``t_1_0`` (4, 4) taking view-0 camera points to view 1."""
    fwd, inside0 = _project_to_cells(depth0, depth1, camera0, camera1, t_1_0, grid, border)
    bwd, _ = _project_to_cells(depth1, depth0, camera1, camera0, np.linalg.inv(t_1_0), grid, border)
    return _mutual(fwd, inside0, bwd, grid * grid)


@dataclass(frozen=True)
class DepthPairGeometry:
    """What relates two rendered views: z-depth maps at pixel centres, cameras, view-0 to view-1 motion."""

    depth0: np.ndarray
    depth1: np.ndarray
    camera0: Camera
    camera1: Camera
    t_1_0: np.ndarray


def pair_correspondences(geometry: np.ndarray | DepthPairGeometry, grid: int, border: int
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """(gt01, gt10) of a training pair, related by a homography H_1_0 (3, 3) or by rendered depth."""
    if isinstance(geometry, DepthPairGeometry):
        g = geometry
        return depth_correspondences(g.depth0, g.depth1, g.camera0, g.camera1, g.t_1_0, grid, border)
    return grid_correspondences(torch.as_tensor(geometry), grid, border)
