"""Timestamped camera trajectories and the TUM text format.

Convention (shared by every reader, the odometry and the metrics): ``poses[i]`` is ``T_world_cam``, the
4x4 float64 camera-to-world transform of the camera OPTICAL frame (x right, y down, z forward) at
``timestamps[i]`` (float seconds, strictly increasing).

TUM format: one line per pose, ``timestamp tx ty tz qx qy qz qw`` (translation of the camera in the
world, Hamilton quaternion of the rotation camera-to-world); ``#`` lines are comments.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation


class TrajectoryError(ValueError):
    """Malformed trajectory data (the message says which file/line/value)."""


def _check_poses(poses: np.ndarray) -> None:
    if not np.all(np.isfinite(poses)):
        bad = int(np.flatnonzero(~np.isfinite(poses).reshape(len(poses), -1).all(axis=1))[0])
        raise TrajectoryError(f"pose {bad} contains NaN or infinity")
    if len(poses) and not np.allclose(poses[:, 3, :], [0.0, 0.0, 0.0, 1.0], atol=1e-9):
        raise TrajectoryError("poses must be homogeneous 4x4 matrices with last row [0, 0, 0, 1]")


class Trajectory:
    """Camera poses ``T_world_cam`` (N, 4, 4) at ``timestamps`` (N,) seconds."""

    def __init__(self, timestamps: Sequence[float] | np.ndarray, poses: Sequence[np.ndarray] | np.ndarray):
        stamps = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        mats = np.asarray(poses, dtype=np.float64)
        if mats.size == 0:
            mats = mats.reshape(0, 4, 4)
        if mats.ndim != 3 or mats.shape[1:] != (4, 4):
            raise TrajectoryError(f"poses must have shape (N, 4, 4), got {mats.shape}")
        if len(stamps) != len(mats):
            raise TrajectoryError(f"{len(stamps)} timestamps but {len(mats)} poses")
        if not np.all(np.isfinite(stamps)):
            raise TrajectoryError("timestamps contain NaN or infinity")
        if len(stamps) > 1 and np.any(np.diff(stamps) <= 0):
            i = int(np.flatnonzero(np.diff(stamps) <= 0)[0])
            raise TrajectoryError(
                f"timestamps must be strictly increasing: t[{i}]={float(stamps[i])!r} >= "
                f"t[{i + 1}]={float(stamps[i + 1])!r}"
            )
        _check_poses(mats)
        self.timestamps = stamps
        self.poses = mats

    # ----------------------------------------------------------------------------------------- basics
    def __len__(self) -> int:
        return len(self.timestamps)

    def __repr__(self) -> str:
        span = f", {self.timestamps[0]:.3f}..{self.timestamps[-1]:.3f} s" if len(self) else ""
        return f"Trajectory({len(self)} poses{span})"

    @property
    def positions(self) -> np.ndarray:
        """Camera centres in the world, (N, 3)."""
        return self.poses[:, :3, 3].copy()

    @property
    def rotations(self) -> np.ndarray:
        """Camera-to-world rotations, (N, 3, 3)."""
        return self.poses[:, :3, :3].copy()

    def subset(self, indices: Any) -> Trajectory:
        """The poses at ``indices`` (int array, slice or boolean mask), order kept."""
        return Trajectory(self.timestamps[indices], self.poses[indices])

    def transformed(self, T_new_world: np.ndarray, scale: float = 1.0) -> Trajectory:
        """Poses re-expressed in another world frame: T' = T_new_world @ S(scale) @ T (similarity if scale != 1)."""
        T = np.asarray(T_new_world, dtype=np.float64)
        poses = self.poses.copy()
        poses[:, :3, 3] *= scale
        return Trajectory(self.timestamps, np.einsum("ij,njk->nik", T, poses))

    def relative_to_first(self) -> Trajectory:
        """The trajectory with its first pose at the identity (world = first camera, as KITTI does)."""
        if len(self) == 0:
            return self
        return self.transformed(np.linalg.inv(self.poses[0]))

    def distances(self) -> np.ndarray:
        """Cumulative distance travelled at each pose (N,), starting at 0."""
        if len(self) == 0:
            return np.zeros(0)
        steps = np.linalg.norm(np.diff(self.positions, axis=0), axis=1)
        return np.concatenate([[0.0], np.cumsum(steps)])

    def path_length(self) -> float:
        """Total distance travelled by the camera centre, metres (or the estimate's units)."""
        return float(self.distances()[-1]) if len(self) else 0.0

    # ----------------------------------------------------------------------------------------- TUM I/O
    @classmethod
    def read_tum(cls, path: str | Path, duplicates: str = "keep_first") -> Trajectory:
        """Read a TUM trajectory file (8 numbers per line, ``#`` comments, blank lines ignored).

        Rows are sorted by time. Real files repeat a timestamp now and then (TUM fr2/desk does, with two
        different poses); ``duplicates="keep_first"`` keeps the first such row, ``"error"`` refuses the file.
        """
        if duplicates not in ("keep_first", "error"):
            raise TrajectoryError(f"duplicates must be 'keep_first' or 'error', got {duplicates!r}")
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"trajectory file not found: {path}")
        rows = []
        for lineno, line in enumerate(path.read_text().splitlines(), start=1):
            text = line.split("#", 1)[0].replace(",", " ").strip()
            if not text:
                continue
            fields = text.split()
            if len(fields) != 8:
                raise TrajectoryError(f"{path}:{lineno}: expected 8 numbers 'timestamp tx ty tz qx qy qz qw', "
                                      f"got {len(fields)}")
            try:
                rows.append([float(f) for f in fields])
            except ValueError as err:
                raise TrajectoryError(f"{path}:{lineno}: {err}") from None
        data = np.array(rows, dtype=np.float64).reshape(-1, 8)
        data = data[np.argsort(data[:, 0], kind="stable")]
        repeated = np.concatenate([[False], np.diff(data[:, 0]) == 0])
        if np.any(repeated) and duplicates == "error":
            raise TrajectoryError(f"{path}: timestamp {float(data[repeated][0, 0])!r} appears more than once")
        data = data[~repeated]
        try:
            return cls(data[:, 0], tum_rows_to_poses(data[:, 1:]))
        except TrajectoryError as err:
            raise TrajectoryError(f"{path}: {err}") from None

    def write_tum(self, path: str | Path) -> Path:
        """Write in TUM format (timestamps with 9 decimals: ns-exact for ROS stamps)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        quats = Rotation.from_matrix(self.rotations).as_quat() if len(self) else np.zeros((0, 4))
        lines = ["# timestamp tx ty tz qx qy qz qw  (T_world_cam, camera optical frame)"]
        for t, p, q in zip(self.timestamps, self.positions, quats, strict=True):
            lines.append(f"{t:.9f} " + " ".join(f"{v:.9g}" for v in (*p, *q)))
        path.write_text("\n".join(lines) + "\n")
        return path


def tum_rows_to_poses(rows: np.ndarray) -> np.ndarray:
    """(N, 7) ``tx ty tz qx qy qz qw`` -> (N, 4, 4) poses (quaternions are normalised; zero ones rejected)."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 7)
    norms = np.linalg.norm(rows[:, 3:], axis=1)
    if np.any(~(norms > 1e-9)):
        raise TrajectoryError(f"row {int(np.flatnonzero(~(norms > 1e-9))[0])} has a zero or NaN quaternion")
    poses = np.tile(np.eye(4), (len(rows), 1, 1))
    if len(rows):
        poses[:, :3, :3] = Rotation.from_quat(rows[:, 3:] / norms[:, None]).as_matrix()
        poses[:, :3, 3] = rows[:, :3]
    return poses


def read_tum(path: str | Path, duplicates: str = "keep_first") -> Trajectory:
    """Module-level alias of :meth:`Trajectory.read_tum`."""
    return Trajectory.read_tum(path, duplicates)


def associate_indices(stamps_a: np.ndarray, stamps_b: np.ndarray, max_dt: float) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one nearest-timestamp pairs (i, j) with ``|a[i] - b[j]| <= max_dt``; no interpolation.

    Each ``a`` stamp takes its nearest ``b`` stamp; when several take the same ``b`` only the closest keeps it.
    Both stamp arrays must be sorted. Returns index arrays in increasing order.
    """
    a = np.asarray(stamps_a, dtype=np.float64)
    b = np.asarray(stamps_b, dtype=np.float64)
    if len(a) == 0 or len(b) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    right = np.clip(np.searchsorted(b, a), 0, len(b) - 1)
    left = np.clip(right - 1, 0, len(b) - 1)
    nearest = np.where(np.abs(b[left] - a) <= np.abs(b[right] - a), left, right)
    dt = np.abs(b[nearest] - a)
    candidates = np.flatnonzero(dt <= max_dt)
    best_for_b: dict[int, int] = {}
    for i in candidates:
        j = int(nearest[i])
        if j not in best_for_b or dt[i] < dt[best_for_b[j]]:
            best_for_b[j] = int(i)
    pairs = sorted((i, j) for j, i in best_for_b.items())
    idx_a = np.array([p[0] for p in pairs], dtype=np.int64)
    idx_b = np.array([p[1] for p in pairs], dtype=np.int64)
    return idx_a, idx_b


def associate(est: Trajectory, gt: Trajectory, max_dt: float = 0.02) -> tuple[Trajectory, Trajectory]:
    """The poses of ``est`` and ``gt`` whose timestamps pair up within ``max_dt`` seconds (same length, same order)."""
    if max_dt < 0:
        raise TrajectoryError(f"max_dt must be >= 0, got {max_dt}")
    idx_est, idx_gt = associate_indices(est.timestamps, gt.timestamps, max_dt)
    return est.subset(idx_est), gt.subset(idx_gt)
