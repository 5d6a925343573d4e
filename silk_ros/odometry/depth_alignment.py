"""Depth-only tracking for RGB-D frames the features cannot pose: projective point-to-plane ICP (KinectFusion's)
from the last posed frame's depth to this frame's.

Blank walls, motion blur and fast turns leave a learned detector without enough correct matches while the depth
camera still sees the room's shape.  The alignment starts from the constant-velocity guess, runs coarse to fine on
grids of the depth image, and is accepted only when the scene's shape fixes all six degrees of freedom (one plane
fixes three: a wall leaves the slide along it and the turn about its normal free; two planes five) and the points
land on the other frame's surface (not a wrong minimum).  Its covariance is what the frame reports."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry.camera import Camera
from ..geometry.pose import gauss_newton_covariance, transform_points
from .estimation import huber_weights, left_increment

__all__ = ["DepthAlignment", "DepthGrid", "align_depth", "FINEST_COLUMNS"]

#: Columns of the finest grid (rows follow the image's aspect): 160 x 120 points for 4:3 images.
FINEST_COLUMNS = 160
#: Coarse to fine: grid step multipliers and Gauss-Newton iterations at each.
LEVELS = ((4, 10), (2, 6), (1, 4))
#: Huber threshold of the point-to-plane residual (m): a structured-light sensor's noise at ~3 m.
HUBER_M = 0.02
#: A point pairs with the dst point it projects onto only when they are this close (m), coarse to fine.
MAX_PAIR_DISTANCE_M = (0.3, 0.15, 0.08)
#: Accepted alignments pair at least this share of the source's valid points on the finest grid.
MIN_PAIRED_FRACTION = 0.3
#: Accepted alignments put at least this share of the source's points that land on measured depth onto its surface
#: (within the finest pairing distance).  An ICP that slid into a wrong minimum pairs well on some planes and lands
#: the rest in front of or behind the others: on the RGB-D design set's blank-walled shake, alignments started from a
#: constant-velocity guess some degrees off (a scratch run aligning every frame) landed 0.45-0.91 of them when 0.17-0.95
#: m wrong, and 0.98-1.0 when within 3 cm (64 of 64).
MIN_SURFACE_AGREEMENT = 0.95
#: Accepted alignments' weakest constraint (``DepthAlignment.weakest_constraint``): above a bare wall's ~0.
MIN_CONSTRAINT = 0.005
#: Floor of the residual's standard deviation in the covariance (m): a perfect fit still has sensor noise.
MIN_SIGMA_M = 0.005
#: Neighbouring points' residuals are not independent (one surface, one sensor's noise pattern): the covariance counts
#: the paired points as this many.  On the RGB-D design set's blank-walled shake (room8, ~13,000 points paired) the
#: aligned frames' errors were 2-8x the Laplace standard deviation of independent points: 13,000 / 8^2 ~ 200.
EFFECTIVE_POINTS = 200


@dataclass(frozen=True)
class DepthGrid:
    """A depth image sampled on a regular grid of the camera's pixels: points (rows, cols, 3) in the camera frame
    (NaN where no valid depth), and their normals (NaN where the neighbours are missing)."""

    points: np.ndarray
    normals: np.ndarray
    #: grid step in the camera's pixels (cell (r, c) is centred on pixel ((c + 0.5) step - 0.5, (r + 0.5) step - 0.5))
    step: float

    @classmethod
    def from_depth(cls, depth: np.ndarray, camera: Camera, step: float, depth_min: float,
                   depth_max: float) -> DepthGrid:
        cols, rows = max(int(camera.width / step), 3), max(int(camera.height / step), 3)
        xs = (np.arange(cols) + 0.5) * step - 0.5
        ys = (np.arange(rows) + 0.5) * step - 0.5
        grid_x, grid_y = np.meshgrid(xs, ys)
        # nearest depth sample (the depth image may have another resolution than the camera's image)
        sx, sy = depth.shape[1] / camera.width, depth.shape[0] / camera.height
        di = np.clip(np.round((grid_y + 0.5) * sy - 0.5).astype(int), 0, depth.shape[0] - 1)
        dj = np.clip(np.round((grid_x + 0.5) * sx - 0.5).astype(int), 0, depth.shape[1] - 1)
        z = depth[di, dj].astype(np.float64)
        z[~(np.isfinite(z) & (z >= depth_min) & (z <= depth_max))] = np.nan
        pixels = np.column_stack([grid_x.ravel(), grid_y.ravel()])
        points = camera.backproject(pixels, z.ravel()).reshape(rows, cols, 3)
        return cls(points, _normals(points), float(step))

    def downsampled(self, factor: int) -> DepthGrid:
        """Every ``factor``-th point (the cell centres stay on the same pixel lattice's centres, approximately)."""
        if factor == 1:
            return self
        points = self.points[factor // 2::factor, factor // 2::factor]
        return DepthGrid(points, _normals(points), self.step * factor)

    def cell(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Grid row and column of ``pixels`` (nearest cell) and whether they fall inside the grid."""
        col = np.round((pixels[:, 0] + 0.5) / self.step - 0.5)
        row = np.round((pixels[:, 1] + 0.5) / self.step - 0.5)
        rows, cols = self.points.shape[:2]
        inside = np.isfinite(col) & np.isfinite(row) & (col >= 0) & (row >= 0) & (col < cols) & (row < rows)
        return np.where(inside, row, 0).astype(int), np.where(inside, col, 0).astype(int), inside


def _normals(points: np.ndarray) -> np.ndarray:
    """Unit normals from the cross product of the neighbours' differences, facing the camera."""
    normals = np.full_like(points, np.nan)
    across = points[1:-1, 2:] - points[1:-1, :-2]
    down = points[2:, 1:-1] - points[:-2, 1:-1]
    n = np.cross(across, down)
    norm = np.linalg.norm(n, axis=2, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = n / norm
    facing = np.sum(n * points[1:-1, 1:-1], axis=2, keepdims=True) > 0
    normals[1:-1, 1:-1] = np.where(facing, -n, n)
    return normals


@dataclass(frozen=True)
class DepthAlignment:
    """The pose of the destination camera relative to the source one, and how well the depth fixed it."""

    T_dst_src: np.ndarray
    #: 6x6 covariance of a left perturbation (x y z rot_x rot_y rot_z) in the destination camera frame: Laplace
    #: covariance of ``EFFECTIVE_POINTS`` independent points
    covariance: np.ndarray
    #: source points paired on the finest grid, and their share of the source's valid points
    paired: int
    paired_fraction: float
    #: share of the source points landing on measured depth that land on its surface (``MIN_SURFACE_AGREEMENT``)
    surface_agreement: float
    #: smallest eigenvalue of the per-point information with rotations in metres at the scene's depth: ~0.1-0.3 when
    #: the scene's planes face three ways, ~0 when it is one plane
    weakest_constraint: float


def align_depth(src: DepthGrid, dst: DepthGrid, camera: Camera, T_guess: np.ndarray) -> DepthAlignment | None:
    """Point-to-plane ICP of ``src``'s points onto ``dst``'s surface from ``T_guess`` (T_dst_src), coarse to fine;
    pairs by projection into ``dst``.  None when fewer than ``MIN_PAIRED_FRACTION`` of the source's points pair, when
    fewer than ``MIN_SURFACE_AGREEMENT`` of those landing on measured depth land on the surface, or when the depth
    leaves a direction unconstrained (``MIN_CONSTRAINT``)."""
    T = T_guess.copy()
    for (factor, iterations), max_distance in zip(LEVELS, MAX_PAIR_DISTANCE_M, strict=True):
        source, target = src.downsampled(factor), dst.downsampled(factor)
        points = source.points.reshape(-1, 3)
        points = points[np.isfinite(points).all(axis=1)]
        for _ in range(iterations):
            residual, jacobian = _Pairing(T, points, target, camera, max_distance).point_to_plane()
            if len(residual) < 6:
                return None
            JtW = jacobian.T * huber_weights(residual, HUBER_M)
            delta = np.linalg.solve(JtW @ jacobian + 1e-9 * np.eye(6), -JtW @ residual)
            T = left_increment(T, delta)
            if np.linalg.norm(delta) < 1e-7:
                break
    pairing = _Pairing(T, points, target, camera, max_distance)
    residual, jacobian = pairing.point_to_plane()
    if len(residual) < 6:
        return None
    weight = np.sqrt(huber_weights(residual, HUBER_M))
    weighted_J, weighted_r = jacobian * weight[:, None], residual * weight
    covariance = gauss_newton_covariance(weighted_J, weighted_r, min_sigma=MIN_SIGMA_M)
    alignment = DepthAlignment(
        T, covariance * max(len(residual) / EFFECTIVE_POINTS, 1.0), len(residual), len(residual) / len(points),
        pairing.surface_agreement(), _weakest_constraint(weighted_J, pairing.moved),
    )
    if (alignment.paired_fraction < MIN_PAIRED_FRACTION or alignment.surface_agreement < MIN_SURFACE_AGREEMENT
            or alignment.weakest_constraint < MIN_CONSTRAINT):
        return None
    return alignment


class _Pairing:
    """The source ``points`` moved by ``T`` and the target points they project onto: ``seen`` where that is a measured
    point, ``close`` where it is within ``max_distance`` as well."""

    def __init__(self, T: np.ndarray, points: np.ndarray, target: DepthGrid, camera: Camera, max_distance: float):
        self.moved = transform_points(T, points)
        row, col, inside = target.cell(camera.project(self.moved))
        self.target_points, self.normals = target.points[row, col], target.normals[row, col]
        self.seen = inside & np.isfinite(self.target_points).all(axis=1)
        with np.errstate(invalid="ignore"):
            self.close = self.seen & (np.linalg.norm(self.moved - self.target_points, axis=1) < max_distance)

    def point_to_plane(self) -> tuple[np.ndarray, np.ndarray]:
        """Residuals n.(T p - q) of the close pairs with a normal, and their Jacobian w.r.t. ``left_increment``'s
        (translation, rotation)."""
        paired = self.close & np.isfinite(self.normals).all(axis=1)
        p, q, n = self.moved[paired], self.target_points[paired], self.normals[paired]
        # d(n.(exp(delta) p - q))/d delta = [n, p x n]
        return np.sum(n * (p - q), axis=1), np.hstack([n, np.cross(p, n)])

    def surface_agreement(self) -> float:
        """Share of the points landing on a measured target point that land close to it."""
        return float(self.close.sum() / self.seen.sum()) if self.seen.any() else 0.0


def _weakest_constraint(jacobian: np.ndarray, points: np.ndarray) -> float:
    """Smallest eigenvalue of J^T J / N with the rotation columns in metres at the scene's median depth (a turn of
    ``theta`` moves the scene by ~``theta * depth``), so that both kinds of motion count alike."""
    depth = float(np.nanmedian(points[:, 2])) if np.isfinite(points[:, 2]).any() else 1.0
    scaled = jacobian / np.r_[1.0, 1.0, 1.0, depth, depth, depth]
    information = scaled.T @ scaled / max(len(scaled), 1)
    return float(np.linalg.eigvalsh(information)[0])

