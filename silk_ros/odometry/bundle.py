"""Local bundle adjustment: keyframe poses and the points they share, by robust Levenberg-Marquardt.

Why: a monocular keyframe's pose comes from two views only (its predecessor and itself), and its map from
the same short baseline, so each keyframe adds its own rotation/translation error and its own scale error to the
chain.  Adjusting the last few keyframes together on every point seen by two or more of them lets the older,
already-settled keyframes correct the newest one, which is where the next frames are tracked from.

RGB-D keyframes add what their depth image measured (``BundleProblem.depths``): a third residual per observation,
the inverse-depth error in units of ``INVERSE_DEPTH_SIGMA`` (as a stereo disparity error: ORB-SLAM's RGB-D residual),
weighed like a pixel of reprojection error.  Its error in metres grows as z^2, as structured-light and stereo depth
does, so near points pin the scale and far ones count less.

The gauge (where the map is, and for monocular how large) is fixed by holding the oldest keyframes constant.
Each iteration solves the normal equations with the points eliminated (Schur complement: a 6F x 6F system for
F free keyframes, 3x3 blocks for the points), with analytic Jacobians and Huber weights (iteratively
re-weighted), so a window of five keyframes and a thousand points costs a few milliseconds per iteration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry.pose import invert_pose, reprojection_jacobian
from .estimation import huber_weights, left_increment, project

__all__ = ["BundleProblem", "BundleResult", "INVERSE_DEPTH_SIGMA", "adjust_bundle", "huber_cost",
           "reprojection_errors"]

#: Noise of a depth measurement as an inverse depth (1/m), counted like one pixel of reprojection error: 2 cm at
#: 2 m, 0.5 cm at 1 m.  Kinect v1 measures about half that (1 cm at 2 m), a RealSense D435 about twice (2 % at 2 m);
#: this sits between, so neither the depth nor the pixels are ignored.
INVERSE_DEPTH_SIGMA = 0.005


@dataclass
class BundleProblem:
    """Keyframe poses, points in the world and the pixels that observe them.

    ``poses_world``: (F, 4, 4) T_world_kf; ``fixed``: (F,) bool, poses held constant; ``points_world``: (P, 3);
    ``frame_index``/``point_index``: (O,) which keyframe sees which point; ``pixels``: (O, 2) undistorted pixels;
    ``depths``: (O,) the depth (m) the observing keyframe measured for the point, NaN where none (RGB-D), or None.
    """

    poses_world: np.ndarray
    fixed: np.ndarray
    points_world: np.ndarray
    frame_index: np.ndarray
    point_index: np.ndarray
    pixels: np.ndarray
    depths: np.ndarray | None = None


@dataclass
class BundleResult:
    poses_world: np.ndarray  # (F, 4, 4)
    points_world: np.ndarray  # (P, 3)
    inliers: np.ndarray  # (O,) observations within 2 x threshold at the solution, in front of their camera
    #: median reprojection error (px) of all observations before and after
    initial_median_px: float
    final_median_px: float
    iterations: int


def _errors(poses_cw: np.ndarray, points: np.ndarray, problem: BundleProblem, K: np.ndarray):
    """Per observation: camera-frame point (O, 3), residual (O, 2) in pixels (O, 3 with ``depths``: the disparity
    error last, 0 where no depth was measured), its length (O,) and whether the point is in front of the camera
    with a finite error (O,)."""
    frame, point = problem.frame_index, problem.point_index
    camera = (poses_cw[frame, :3, :3] @ points[point][:, :, None])[:, :, 0] + poses_cw[frame, :3, 3]
    residual = project(camera, K) - problem.pixels
    if problem.depths is not None:
        measured = np.isfinite(problem.depths)
        with np.errstate(divide="ignore", invalid="ignore"):
            disparity = (1.0 / camera[:, 2] - 1.0 / np.where(measured, problem.depths, 1.0)) / INVERSE_DEPTH_SIGMA
        residual = np.concatenate([residual, np.where(measured, disparity, 0.0)[:, None]], axis=1)
    error = np.linalg.norm(residual, axis=1)
    return camera, residual, error, (camera[:, 2] > 1e-9) & np.isfinite(error)


def _jacobian(camera: np.ndarray, problem: BundleProblem, K: np.ndarray) -> np.ndarray:
    """(O, 2 or 3, 6) derivative of each observation's residual w.r.t. a left perturbation of its camera pose;
    the first three columns are also the derivative w.r.t. the camera-frame point."""
    J = reprojection_jacobian(camera, K[0, 0], K[1, 1]).reshape(-1, 2, 6)
    if problem.depths is None:
        return J
    x, y, z = camera[:, 0], camera[:, 1], camera[:, 2]
    d_depth = np.stack([np.zeros_like(z), np.zeros_like(z), np.ones_like(z), y, -x, np.zeros_like(z)], axis=1)
    scale = np.where(np.isfinite(problem.depths), -1.0 / (INVERSE_DEPTH_SIGMA * z**2), 0.0)
    return np.concatenate([J, (scale[:, None] * d_depth)[:, None, :]], axis=1)


def _median_px(error: np.ndarray) -> float:
    finite = error[np.isfinite(error)]
    return float(np.median(finite)) if len(finite) else float("inf")


def reprojection_errors(problem: BundleProblem, K: np.ndarray, poses_world: np.ndarray, points_world: np.ndarray):
    """Per observation of a solution (T_world_kf poses, world points): the pixel error and whether the point is in
    front of its camera with a finite error, as the adjustment itself measures them."""
    poses_cw = np.stack([invert_pose(T) for T in poses_world])
    _, _, error, visible = _errors(poses_cw, np.asarray(points_world, dtype=np.float64), problem, K)
    return error, visible


def huber_cost(errors: np.ndarray, visible: np.ndarray, active: np.ndarray, k: float) -> float:
    """Huber cost of the active observations; one behind its camera counts as 10 x ``k`` off (bounded)."""
    e = np.where(visible, errors, 10.0 * k)[active]
    return float(np.sum(np.where(e <= k, e**2, 2.0 * k * e - k**2)))


def adjust_bundle(problem: BundleProblem, K: np.ndarray, threshold: float, iterations: int = 10) -> BundleResult:
    """Minimise the Huber-robust reprojection error (Huber scale ``threshold`` px) over the free poses and every
    point, then again without the observations beyond ``2 * threshold`` (Huber bounds an outlier's pull but does
    not remove it).  Observations behind their camera carry no weight; the final outliers are reported."""
    poses_cw = np.stack([invert_pose(T) for T in problem.poses_world])
    points = problem.points_world.astype(np.float64).copy()
    initial_median = _median_px(_errors(poses_cw, points, problem, K)[2])
    active = np.ones(len(problem.frame_index), bool)
    done = 0
    for _ in range(2):
        poses_cw, points, steps = _levenberg_marquardt(poses_cw, points, problem, K, threshold, iterations, active)
        done += steps
        _, _, error, visible = _errors(poses_cw, points, problem, K)
        active = visible & (error < 2.0 * threshold)
    return BundleResult(
        np.stack([invert_pose(T) for T in poses_cw]), points, active, initial_median, _median_px(error), done
    )


def _sum_by(index: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """Sum of ``values`` (N, ...) grouped by ``index`` (N,) into (size, ...): ``np.add.at`` by ``bincount``, faster."""
    flat = values.reshape(len(values), int(np.prod(values.shape[1:])))  # -1 cannot be inferred when N = 0
    sums = [np.bincount(index, weights=flat[:, k], minlength=size) for k in range(flat.shape[1])]
    return np.stack(sums, axis=1).reshape((size, *values.shape[1:]))


def _levenberg_marquardt(poses_cw, points, problem: BundleProblem, K, threshold: float, iterations: int, active):
    """Damped Gauss-Newton on the active observations, the points eliminated by the Schur complement; returns the
    camera-from-world poses, the points and the number of accepted steps."""
    frame, point = problem.frame_index, problem.point_index
    free = np.flatnonzero(~problem.fixed)
    slot = -np.ones(len(poses_cw), int)
    slot[free] = np.arange(len(free))
    n_free, n_points = len(free), len(points)
    moving = slot[frame] >= 0
    camera, residual, error, visible = _errors(poses_cw, points, problem, K)
    cost = huber_cost(error, visible, active, threshold)
    damping = 1e-4
    accepted = 0
    for _ in range(iterations):
        use = visible & active
        weight = np.where(use, huber_weights(error, threshold), 0.0)
        r = np.where(use[:, None], residual, 0.0)
        J_pose = _jacobian(np.where(use[:, None], camera, 1.0), problem, K)
        J_point = J_pose[:, :, :3] @ poses_cw[frame, :3, :3]  # d pixel / d camera point, times R
        wJp = weight[:, None, None] * J_point
        H_pp = _sum_by(point, wJp.transpose(0, 2, 1) @ J_point, n_points)
        g_p = _sum_by(point, (wJp.transpose(0, 2, 1) @ r[:, :, None])[:, :, 0], n_points)
        H_cc = np.zeros((6 * n_free, 6 * n_free))
        g_c = np.zeros(6 * n_free)
        H_cp = np.zeros((n_points, 6 * n_free, 3))
        if n_free:
            wJc = weight[moving, None, None] * J_pose[moving]
            wJc_t = wJc.transpose(0, 2, 1)
            blocks = wJc_t @ J_pose[moving]
            grads = (wJc_t @ r[moving][:, :, None])[:, :, 0]
            cross = wJc_t @ J_point[moving]
            for f in range(n_free):
                mine = slot[frame[moving]] == f
                H_cc[6 * f : 6 * f + 6, 6 * f : 6 * f + 6] = blocks[mine].sum(axis=0)
                g_c[6 * f : 6 * f + 6] = grads[mine].sum(axis=0)
                H_cp[:, 6 * f : 6 * f + 6, :] = _sum_by(point[moving][mine], cross[mine], n_points)
        improved = False
        for _ in range(5):  # raise the damping until the step lowers the cost
            H_pp_inv = np.linalg.inv(H_pp + damping * H_pp * np.eye(3) + 1e-9 * np.eye(3))
            if n_free:
                H_cc_damped = H_cc + damping * np.diag(np.diag(H_cc)) + 1e-9 * np.eye(6 * n_free)
                HcpHinv = H_cp @ H_pp_inv
                schur = H_cc_damped - (HcpHinv @ H_cp.transpose(0, 2, 1)).sum(axis=0)
                step_c = np.linalg.solve(schur, (HcpHinv @ g_p[:, :, None]).sum(axis=0)[:, 0] - g_c)
                step_p = -(H_pp_inv @ (g_p + H_cp.transpose(0, 2, 1) @ step_c)[:, :, None])[:, :, 0]
            else:
                step_c = np.zeros(0)
                step_p = -(H_pp_inv @ g_p[:, :, None])[:, :, 0]
            trial_poses = poses_cw.copy()
            for f, index in enumerate(free):
                delta = step_c[6 * f : 6 * f + 6]
                trial_poses[index] = left_increment(poses_cw[index], delta)
            trial_points = points + step_p
            trial_camera, trial_residual, trial_error, trial_visible = _errors(trial_poses, trial_points, problem, K)
            trial_cost = huber_cost(trial_error, trial_visible, active, threshold)
            if trial_cost < cost:
                poses_cw, points, camera, residual = trial_poses, trial_points, trial_camera, trial_residual
                error, visible, cost = trial_error, trial_visible, trial_cost
                damping = max(damping / 10.0, 1e-8)
                improved = True
                break
            damping *= 10.0
        if not improved:
            break
        accepted += 1
    return poses_cw, points, accepted
