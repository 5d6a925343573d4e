"""Trajectory error metrics: ATE with SE(3)/Sim(3) Umeyama alignment and RPE per frame step or per distance.

Definitions follow the TUM RGB-D benchmark (Sturm et al. 2012) and the ``evo`` package's defaults, which the
tests use as an oracle (``evo`` is GPL and is only imported by tests):

- ATE: associate estimate and ground truth by timestamp, align the estimate's positions onto the ground truth
  (Umeyama 1991: rotation + translation, and a scale for "sim3"), then take the statistics of
  ``|p_gt - (s R p_est + t)|``. Monocular estimates have no metric scale: use "sim3" for them.
- RPE: for index pairs (i, j), the error of the relative motion ``E = (Q_i^-1 Q_j)^-1 (P_i^-1 P_j)`` with Q the
  ground truth and P the estimate; translation error ``|t(E)|``, rotation error ``angle(R(E))``.
  ``unit="frames"``: j = i + delta for every i. ``unit="meters"``: j is the first frame after i whose
  ground-truth path length from i is closest to ``delta`` metres (within ``tol``, like ``evo``), i.e. KITTI-style
  segments of a fixed length starting at every frame.
"""

from __future__ import annotations

import numpy as np

from silk_ros.geometry.pose import rotation_angle_deg
from silk_ros.geometry.trajectory import Trajectory, associate


class MetricsError(ValueError):
    """Trajectories that cannot be compared (too few associated poses, degenerate geometry)."""


def umeyama(source: np.ndarray, target: np.ndarray, with_scale: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """Least-squares (R, t, s) with ``target ~= s * R @ source + t`` for (N, 3) point sets (Umeyama 1991)."""
    x = np.asarray(source, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 2 or x.shape[1] != 3:
        raise MetricsError(f"umeyama needs two (N, 3) arrays of equal shape, got {x.shape} and {y.shape}")
    if len(x) < 3:
        raise MetricsError(f"alignment needs at least 3 associated poses, got {len(x)}")
    mean_x, mean_y = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - mean_x, y - mean_y
    var_x = float(np.mean(np.sum(xc**2, axis=1)))
    if var_x < 1e-20:
        raise MetricsError("cannot align: the estimated positions are all the same point")
    cov = yc.T @ xc / len(x)
    U, D, Vt = np.linalg.svd(cov)
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1.0
    R = U @ S @ Vt
    scale = float(np.trace(np.diag(D) @ S) / var_x) if with_scale else 1.0
    t = mean_y - scale * R @ mean_x
    return R, t, scale


def _stats(errors: np.ndarray) -> dict[str, float]:
    return {
        "rmse": float(np.sqrt(np.mean(errors**2))),
        "mean": float(np.mean(errors)),
        "median": float(np.median(errors)),
        "std": float(np.std(errors)),
        "min": float(np.min(errors)),
        "max": float(np.max(errors)),
    }


def rotation_angles_deg(rotations: np.ndarray) -> np.ndarray:
    """Rotation angles in degrees of (N, 3, 3) rotations (via the SO(3) log: accurate for tiny angles)."""
    return np.array([rotation_angle_deg(R) for R in rotations], dtype=np.float64)


def align_trajectory(est: Trajectory, gt: Trajectory, method: str = "se3") -> tuple[Trajectory, np.ndarray, float]:
    """``est`` (already associated with ``gt``) moved onto ``gt``: (aligned, T_gtworld_estworld 4x4, scale)."""
    if method not in ("se3", "sim3", "none"):
        raise MetricsError(f"align must be 'se3', 'sim3' or 'none', got {method!r}")
    if len(est) != len(gt):
        raise MetricsError(f"align needs associated trajectories of equal length, got {len(est)} and {len(gt)}")
    T = np.eye(4)
    if method == "none":
        return est, T, 1.0
    R, t, scale = umeyama(est.positions, gt.positions, with_scale=method == "sim3")
    T[:3, :3], T[:3, 3] = R, t
    return est.transformed(T, scale), T, scale


def ate(est: Trajectory, gt: Trajectory, align: str = "se3", max_dt: float = 0.02) -> dict:
    """Absolute trajectory error (metres of the ground truth) after ``align`` = "se3" | "sim3" | "none".

    Returns rmse, mean, median, std, min, max (translation), rot_rmse_deg, scale, n, align, errors (per pose).
    """
    est_a, gt_a = associate(est, gt, max_dt)
    if len(est_a) == 0:
        raise MetricsError(f"no estimated pose is within {max_dt} s of a ground-truth pose")
    aligned, _, scale = align_trajectory(est_a, gt_a, align)
    errors = np.linalg.norm(gt_a.positions - aligned.positions, axis=1)
    rot = rotation_angles_deg(np.einsum("nji,njk->nik", gt_a.rotations, aligned.rotations))
    return {
        **_stats(errors),
        "rot_rmse_deg": float(np.sqrt(np.mean(rot**2))),
        "scale": scale,
        "n": len(errors),
        "align": align,
        "timestamps": gt_a.timestamps,
        "errors": errors,
    }


def pairs_by_frames(n: int, delta: int) -> np.ndarray:
    """(i, i + delta) for every i."""
    if delta < 1 or int(delta) != delta:
        raise MetricsError(f"a frame delta must be a positive integer, got {delta}")
    first = np.arange(0, max(n - int(delta), 0))
    return np.column_stack([first, first + int(delta)]).astype(np.int64)


def pairs_by_distance(positions: np.ndarray, delta: float, tol: float) -> np.ndarray:
    """(i, j > i) with the ground-truth path length from i to j closest to ``delta`` metres, kept if within ``tol``."""
    if not delta > 0:
        raise MetricsError(f"a distance delta must be positive, got {delta}")
    steps = np.linalg.norm(np.diff(positions, axis=0), axis=1)
    travelled = np.concatenate([[0.0], np.cumsum(steps)])
    pairs = []
    for i in range(len(travelled) - 1):
        ahead = travelled[i + 1 :] - travelled[i]
        k = int(np.argmin(np.abs(ahead - delta)))
        if abs(ahead[k] - delta) <= tol:
            pairs.append((i, i + 1 + k))
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def rpe(
    est: Trajectory,
    gt: Trajectory,
    delta: float = 1,
    unit: str = "frames",
    max_dt: float = 0.02,
    scale: float = 1.0,
    tol: float | None = None,
) -> dict:
    """Relative pose error over ``delta`` frames or ``delta`` metres of ground-truth path.

    ``scale`` multiplies the estimate's translations first (pass ATE's Sim(3) scale for monocular estimates).
    ``tol`` (metres, unit="meters" only) defaults to 10 % of ``delta``.
    Returns trans_rmse/mean/median/max (metres), rot_rmse_deg/mean/max, n, plus for metres trans_percent
    (mean |t(E)| / delta * 100) and rot_deg_per_m (mean angle / delta), as in the KITTI odometry benchmark.
    Per pair (arrays, for reports that point at the bad frames): rot_errors_deg and timestamps (the estimate's
    stamp of the pair's later pose).
    """
    if unit not in ("frames", "meters"):
        raise MetricsError(f"unit must be 'frames' or 'meters', got {unit!r}")
    est_a, gt_a = associate(est, gt, max_dt)
    if unit == "frames":
        pairs = pairs_by_frames(len(gt_a), delta)
    else:
        pairs = pairs_by_distance(gt_a.positions, float(delta), 0.1 * float(delta) if tol is None else tol)
    if len(pairs) == 0:
        raise MetricsError(
            f"no pose pair {delta} {unit} apart among {len(gt_a)} associated poses (path {gt_a.path_length():.3f} m)"
        )
    P = est_a.poses.copy()
    P[:, :3, 3] *= scale
    Q = gt_a.poses
    i, j = pairs[:, 0], pairs[:, 1]
    rel_est = np.linalg.inv(P[i]) @ P[j]
    rel_gt = np.linalg.inv(Q[i]) @ Q[j]
    E = np.linalg.inv(rel_gt) @ rel_est
    trans = np.linalg.norm(E[:, :3, 3], axis=1)
    rot = rotation_angles_deg(E[:, :3, :3])
    out = {
        "trans_rmse": float(np.sqrt(np.mean(trans**2))),
        "trans_mean": float(np.mean(trans)),
        "trans_median": float(np.median(trans)),
        "trans_max": float(np.max(trans)),
        "rot_rmse_deg": float(np.sqrt(np.mean(rot**2))),
        "rot_mean_deg": float(np.mean(rot)),
        "rot_max_deg": float(np.max(rot)),
        "n": len(pairs),
        "delta": delta,
        "unit": unit,
        "scale": scale,
        "rot_errors_deg": rot,
        "timestamps": est_a.timestamps[j],
    }
    if unit == "meters":
        out["trans_percent"] = float(np.mean(trans) / delta * 100.0)
        out["rot_deg_per_m"] = float(np.mean(rot) / delta)
    return out
