"""Rigid-pose geometry shared by the odometry and its evaluation.

Conventions (COMMON.md): 4x4 float64 matrices, ``T_a_b`` maps points from frame b into frame a; a
perturbation ``delta = (x, y, z, rot_x, rot_y, rot_z)`` (ROS covariance order) acts on the left:
``T <- exp(delta) @ T``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "make_pose",
    "invert_pose",
    "skew",
    "so3_exp",
    "so3_log",
    "rotation_angle_deg",
    "project_to_so3",
    "kabsch_rotation",
    "reprojection_jacobian",
    "gauss_newton_covariance",
    "transform_points",
    "rotation_to_quaternion",
    "quaternion_to_rotation",
    "pose_from_xyz_quaternion",
]


def make_pose(rotation: np.ndarray | None = None, translation: np.ndarray | None = None) -> np.ndarray:
    """4x4 pose from a 3x3 rotation and a 3-vector translation (identity parts when omitted)."""
    pose = np.eye(4)
    if rotation is not None:
        pose[:3, :3] = rotation
    if translation is not None:
        pose[:3, 3] = np.asarray(translation, np.float64).reshape(3)
    return pose


def invert_pose(pose: np.ndarray) -> np.ndarray:
    """Exact inverse of a rigid transform (cheaper and better conditioned than ``np.linalg.inv``)."""
    rotation = pose[:3, :3]
    inverse = np.eye(4)
    inverse[:3, :3] = rotation.T
    inverse[:3, 3] = -rotation.T @ pose[:3, 3]
    return inverse


def transform_points(pose: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply ``pose`` (4x4) to (N, 3) points."""
    return points @ pose[:3, :3].T + pose[:3, 3]


def skew(v: np.ndarray) -> np.ndarray:
    x, y, z = np.asarray(v, np.float64).reshape(3)
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])


def so3_exp(omega: np.ndarray) -> np.ndarray:
    """Rotation matrix of a rotation vector (Rodrigues)."""
    omega = np.asarray(omega, np.float64).reshape(3)
    angle = float(np.linalg.norm(omega))
    if angle < 1e-12:
        return np.eye(3) + skew(omega)
    k = skew(omega / angle)
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


def so3_log(rotation: np.ndarray) -> np.ndarray:
    """Rotation vector of a rotation matrix (stable near 0 and pi)."""
    cos = np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0)
    angle = float(np.arccos(cos))
    w = np.array([rotation[2, 1] - rotation[1, 2], rotation[0, 2] - rotation[2, 0], rotation[1, 0] - rotation[0, 1]])
    if angle < 1e-7:
        return w / 2.0
    if np.pi - angle < 1e-4:
        # Near pi the antisymmetric part vanishes: take the axis from the symmetric part.
        sym = (rotation + np.eye(3)) / 2.0
        axis = sym[:, int(np.argmax(np.diag(sym)))]
        axis = axis / np.linalg.norm(axis)
        return axis * angle
    return w * (angle / (2.0 * np.sin(angle)))


def rotation_angle_deg(rotation: np.ndarray) -> float:
    return float(np.degrees(np.linalg.norm(so3_log(rotation))))


def project_to_so3(matrix: np.ndarray) -> np.ndarray:
    """Closest rotation (Frobenius) to a 3x3 matrix."""
    u, _, vt = np.linalg.svd(matrix)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


def kabsch_rotation(source: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Rotation R minimising sum w |target - R source|^2 over (N, 3) direction vectors (no translation)."""
    w = np.ones(len(source)) if weights is None else weights
    h = (source * w[:, None]).T @ target
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    return vt.T @ np.diag([1.0, 1.0, d]) @ u.T


def reprojection_jacobian(points_cam: np.ndarray, fx: float, fy: float) -> np.ndarray:
    """(2N, 6) Jacobian of pixel projections of camera-frame points w.r.t. a left pose perturbation.

    ``p' = exp(delta) p`` gives ``dp'/d delta = [I, -[p]x]``; chained with the pinhole derivative.
    """
    x, y, z = points_cam[:, 0], points_cam[:, 1], points_cam[:, 2]
    a, b = x / z, y / z  # the product of the pinhole and point derivatives, written out (no per-point 2x3 @ 3x6)
    J = np.empty((len(points_cam), 2, 6))
    J[:, 0, 0], J[:, 0, 1], J[:, 0, 2] = fx / z, 0.0, -fx * a / z
    J[:, 0, 3], J[:, 0, 4], J[:, 0, 5] = -fx * a * b, fx * (1.0 + a * a), -fx * b
    J[:, 1, 0], J[:, 1, 1], J[:, 1, 2] = 0.0, fy / z, -fy * b / z
    J[:, 1, 3], J[:, 1, 4], J[:, 1, 5] = -fy * (1.0 + b * b), fy * a * b, fy * a
    return J.reshape(-1, 6)


def gauss_newton_covariance(
    jacobian: np.ndarray, residuals: np.ndarray, min_sigma: float = 0.3, damping: float = 1e-9
) -> np.ndarray:
    """Laplace covariance ``sigma^2 (J^T J)^-1`` at a least-squares solution.

    ``sigma^2`` is the residual variance with the parameters' degrees of freedom removed, floored at
    ``min_sigma^2`` so that a perfect fit on few points never claims zero uncertainty. A tiny damping
    keeps a degenerate geometry (a planar or very distant scene) invertible: large, finite variances.
    """
    dof = max(residuals.size - jacobian.shape[1], 1)
    sigma2 = max(float(residuals @ residuals) / dof, min_sigma**2)
    information = jacobian.T @ jacobian
    scale = max(float(np.trace(information)) / jacobian.shape[1], 1e-12)
    covariance = sigma2 * np.linalg.inv(information + damping * scale * np.eye(jacobian.shape[1]))
    return (covariance + covariance.T) / 2.0


def rotation_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """3x3 rotation -> unit quaternion (x, y, z, w) with w >= 0 (Shepperd's method, numerically safe)."""
    r = np.asarray(rotation, dtype=np.float64)
    trace = r[0, 0] + r[1, 1] + r[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = [(r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, 0.25 * s]
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = 2.0 * math.sqrt(max(1.0 + r[0, 0] - r[1, 1] - r[2, 2], 1e-300))
        q = [0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s, (r[2, 1] - r[1, 2]) / s]
    elif r[1, 1] > r[2, 2]:
        s = 2.0 * math.sqrt(max(1.0 + r[1, 1] - r[0, 0] - r[2, 2], 1e-300))
        q = [(r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s, (r[0, 2] - r[2, 0]) / s]
    else:
        s = 2.0 * math.sqrt(max(1.0 + r[2, 2] - r[0, 0] - r[1, 1], 1e-300))
        q = [(r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s, (r[1, 0] - r[0, 1]) / s]
    q = np.array(q)
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def quaternion_to_rotation(q) -> np.ndarray:
    """Quaternion (x, y, z, w), normalised first -> 3x3 rotation."""
    x, y, z, w = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def pose_from_xyz_quaternion(values) -> np.ndarray:
    """``[x, y, z, qx, qy, qz, qw]`` (the ROS way of writing a transform) -> 4x4."""
    x, y, z, qx, qy, qz, qw = values
    out = np.eye(4)
    out[:3, :3] = quaternion_to_rotation([qx, qy, qz, qw])
    out[:3, 3] = [x, y, z]
    return out
