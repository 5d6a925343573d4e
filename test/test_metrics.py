"""Trajectory I/O, association and our ATE/RPE checked against evo (GPL, test-only oracle) on real trajectories."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from silk_ros.datasets import open_sequence
from silk_ros.evaluation.metrics import MetricsError, ate, rpe, umeyama
from silk_ros.geometry.trajectory import Trajectory, TrajectoryError, associate, read_tum

evo_metrics = pytest.importorskip("evo.core.metrics")
evo_sync = pytest.importorskip("evo.core.sync")
evo_trajectory = pytest.importorskip("evo.core.trajectory")


def perturbed(gt: Trajectory, seed: int, scale: float = 1.0, noise: float = 0.05) -> Trajectory:
    """An 'estimate': gt with accumulated rotational/translational drift, noise, a rigid offset and a scale."""
    rng = np.random.default_rng(seed)
    poses = []
    drift = np.eye(4)
    for pose in gt.poses:
        step = np.eye(4)
        step[:3, :3] = Rotation.from_rotvec(rng.normal(0, 0.002, 3)).as_matrix()
        step[:3, 3] = rng.normal(0, noise / 5, 3)
        drift = drift @ step
        p = drift @ pose
        p[:3, 3] += rng.normal(0, noise, 3)
        poses.append(p)
    offset = np.eye(4)
    offset[:3, :3] = Rotation.from_euler("xyz", [0.3, -0.2, 1.0]).as_matrix()
    offset[:3, 3] = [5.0, -2.0, 1.0]
    est = Trajectory(gt.timestamps + rng.uniform(-0.003, 0.003, len(gt)), poses).transformed(offset, scale)
    return est


def to_evo(traj: Trajectory):
    return evo_trajectory.PoseTrajectory3D(poses_se3=list(traj.poses), timestamps=traj.timestamps.copy())


def evo_ate(est: Trajectory, gt: Trajectory, with_scale: bool) -> dict:
    ref, e = evo_sync.associate_trajectories(to_evo(gt), to_evo(est), max_diff=0.02)
    e = copy.deepcopy(e)
    e.align(ref, correct_scale=with_scale)
    metric = evo_metrics.APE(evo_metrics.PoseRelation.translation_part)
    metric.process_data((ref, e))
    return metric.get_all_statistics()


def evo_rpe(est: Trajectory, gt: Trajectory, delta, unit, relation) -> dict:
    ref, e = evo_sync.associate_trajectories(to_evo(gt), to_evo(est), max_diff=0.02)
    evo_unit = evo_metrics.Unit.frames if unit == "frames" else evo_metrics.Unit.meters
    metric = evo_metrics.RPE(relation, delta=delta, delta_unit=evo_unit, rel_delta_tol=0.1, all_pairs=True,
                             pairs_from_reference=True)
    metric.process_data((ref, e))
    return metric.get_all_statistics()


@pytest.fixture(scope="module")
def kitti_gt(data_root) -> Trajectory:
    return open_sequence("kitti", data_root / "sequences" / "kitti_odometry").ground_truth


@pytest.fixture(scope="module")
def tum_gt(data_root) -> Trajectory:
    gt = Trajectory.read_tum(data_root / "sequences/tum_rgbd/rgbd_dataset_freiburg2_desk_mini/groundtruth.txt")
    return gt.subset(slice(0, 3000, 3))  # 30 s at ~33 Hz keeps the test fast


@pytest.mark.parametrize("align,with_scale,scale", [("se3", False, 1.0), ("sim3", True, 0.37)])
@pytest.mark.parametrize("which", ["kitti", "tum"])
def test_ate_matches_evo(which, align, with_scale, scale, request):
    gt = request.getfixturevalue(f"{which}_gt")
    est = perturbed(gt, seed=1, scale=scale)
    ours = ate(est, gt, align=align)
    theirs = evo_ate(est, gt, with_scale)
    assert ours["n"] == len(gt)
    for key in ("rmse", "mean", "median", "std", "min", "max"):
        assert ours[key] == pytest.approx(theirs[key], rel=1e-6), key
    if align == "sim3":
        assert ours["scale"] == pytest.approx(1.0 / scale, rel=0.05)  # the estimate was shrunk by `scale`
    assert ours["rmse"] > 0.01  # the perturbation is real, so the comparison is not 0 == 0


@pytest.mark.parametrize("delta,unit", [(1, "frames"), (10, "frames"), (5.0, "meters"), (1.0, "meters")])
def test_rpe_matches_evo_on_kitti(kitti_gt, delta, unit):
    est = perturbed(kitti_gt, seed=2)
    ours = rpe(est, kitti_gt, delta=delta, unit=unit)
    trans = evo_rpe(est, kitti_gt, delta, unit, evo_metrics.PoseRelation.translation_part)
    rot = evo_rpe(est, kitti_gt, delta, unit, evo_metrics.PoseRelation.rotation_angle_deg)
    assert ours["trans_rmse"] == pytest.approx(trans["rmse"], rel=1e-6)
    assert ours["trans_mean"] == pytest.approx(trans["mean"], rel=1e-6)
    assert ours["trans_max"] == pytest.approx(trans["max"], rel=1e-6)
    assert ours["rot_rmse_deg"] == pytest.approx(rot["rmse"], rel=1e-6)
    assert ours["rot_max_deg"] == pytest.approx(rot["max"], rel=1e-6)
    assert ours["n"] > 10


def test_rpe_matches_evo_on_tum_meters(tum_gt):
    est = perturbed(tum_gt, seed=3, noise=0.01)
    ours = rpe(est, tum_gt, delta=0.5, unit="meters")
    theirs = evo_rpe(est, tum_gt, 0.5, "meters", evo_metrics.PoseRelation.translation_part)
    assert ours["trans_rmse"] == pytest.approx(theirs["rmse"], rel=1e-6)
    assert ours["trans_percent"] == pytest.approx(theirs["mean"] / 0.5 * 100, rel=1e-6)


def test_perfect_estimate_has_zero_error(kitti_gt):
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("z", 40, degrees=True).as_matrix()
    T[:3, 3] = [1, 2, 3]
    moved = kitti_gt.transformed(T, scale=0.5)
    assert ate(moved, kitti_gt, align="sim3")["rmse"] < 1e-9
    assert ate(moved, kitti_gt, align="sim3")["scale"] == pytest.approx(2.0)
    assert ate(moved, kitti_gt, align="se3")["rmse"] > 1.0  # a scale error SE(3) cannot explain
    assert rpe(moved, kitti_gt, scale=2.0)["trans_rmse"] < 1e-9
    assert rpe(kitti_gt, kitti_gt, 5, "meters")["rot_rmse_deg"] < 1e-6


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(50, 3))
    R = Rotation.from_rotvec([0.3, -1.2, 0.5]).as_matrix()
    dst = 2.5 * src @ R.T + [1.0, -2.0, 0.5]
    R_est, t_est, s_est = umeyama(src, dst, with_scale=True)
    np.testing.assert_allclose(R_est, R, atol=1e-12)
    np.testing.assert_allclose(t_est, [1.0, -2.0, 0.5], atol=1e-12)
    assert s_est == pytest.approx(2.5)
    # a reflection is never returned, even for mirrored data
    R_m, _, _ = umeyama(src, src * [1, 1, -1], with_scale=False)
    assert np.linalg.det(R_m) == pytest.approx(1.0)


def test_tum_round_trip_and_association(tmp_path, tum_gt):
    path = tum_gt.write_tum(tmp_path / "traj.tum")
    back = read_tum(path)
    np.testing.assert_allclose(back.timestamps, tum_gt.timestamps, atol=1e-9)
    np.testing.assert_allclose(back.poses, tum_gt.poses, atol=1e-7)
    # association: every other pose, shifted 4 ms, pairs back to the originals one-to-one
    shifted = Trajectory(tum_gt.timestamps[::2] + 0.004, tum_gt.poses[::2])
    est_sub, gt_sub = associate(shifted, tum_gt, max_dt=0.005)
    assert len(est_sub) == len(shifted)
    np.testing.assert_allclose(gt_sub.timestamps, tum_gt.timestamps[::2])
    assert len(associate(shifted, tum_gt, max_dt=0.001)[0]) == 0
    assert tum_gt.path_length() == pytest.approx(np.sum(np.linalg.norm(np.diff(tum_gt.positions, axis=0), axis=1)))


def test_real_tum_file_with_a_repeated_timestamp(data_root):
    path = data_root / "sequences/tum_rgbd/rgbd_dataset_freiburg2_desk_mini/groundtruth.txt"
    gt = read_tum(path)
    assert len(gt) == 20956  # 20957 rows, one timestamp (1311868229.5760) appears twice
    assert np.all(np.diff(gt.timestamps) > 0)
    with pytest.raises(TrajectoryError, match="1311868229.576"):
        read_tum(path, duplicates="error")


def test_bad_trajectories_raise_clear_errors(tmp_path):
    with pytest.raises(TrajectoryError, match="strictly increasing"):
        Trajectory([0.0, 0.0], np.stack([np.eye(4)] * 2))
    with pytest.raises(TrajectoryError, match="2 timestamps but 3 poses"):
        Trajectory([0.0, 1.0], np.stack([np.eye(4)] * 3))
    bad = np.stack([np.eye(4)] * 2)
    bad[1, 0, 3] = np.nan
    with pytest.raises(TrajectoryError, match="pose 1"):
        Trajectory([0.0, 1.0], bad)
    (tmp_path / "short.txt").write_text("0.0 1 2 3 0 0 0 1\n1.0 1 2 3 0 0 1\n")
    with pytest.raises(TrajectoryError, match="short.txt:2: expected 8 numbers"):
        read_tum(tmp_path / "short.txt")
    with pytest.raises(FileNotFoundError, match="nowhere.txt"):
        read_tum(tmp_path / "nowhere.txt")
    still = Trajectory([0.0, 1.0, 2.0], np.stack([np.eye(4)] * 3))
    with pytest.raises(MetricsError, match="same point"):
        ate(still, still, align="se3")
    far = Trajectory([100.0, 101.0, 102.0], still.poses)
    with pytest.raises(MetricsError, match="no estimated pose"):
        ate(far, still)
    with pytest.raises(MetricsError, match="no pose pair"):
        rpe(still, still, delta=10)


def test_write_report_mono_and_metric(tmp_path, kitti_gt):
    from silk_ros.evaluation.report import write_report

    est = perturbed(kitti_gt, seed=4, scale=0.25, noise=0.2)
    stats = {"frames": 160, "lost_frames": 2, "states": {"tracking": 158, "lost": 2}, "keyframes": 31,
             "timings": {"extract": {"mean_ms": 40.0}, "total": {"mean_ms": 50.0}}}
    mono = write_report(tmp_path / "mono", est, kitti_gt, {**stats, "metric": False}, "mono run")
    for name in ("trajectory.tum", "report.json", "report.md", "trajectory.png"):
        assert (tmp_path / "mono" / name).stat().st_size > 100, name
    assert mono["headline"]["align"] == "sim3"
    assert mono["headline"]["rmse_m"] == pytest.approx(evo_ate(est, kitti_gt, with_scale=True)["rmse"], rel=1e-6)
    assert mono["ate"]["sim3"]["scale"] == pytest.approx(4.0, rel=0.05)
    assert mono["rpe"]["per_frame"]["scale"] == mono["ate"]["sim3"]["scale"]  # mono RPE is judged after scaling
    assert mono["fps"]["total"] == pytest.approx(20.0) and mono["lost_frames"] == 2
    assert mono["associated_poses"] == 160
    assert read_tum(tmp_path / "mono/trajectory.tum").poses == pytest.approx(est.poses, abs=1e-6)
    md = (tmp_path / "mono/report.md").read_text()
    assert f"{mono['headline']['rmse_m']:.4f}" in md and "| total | 50.00 | 20.0 |" in md
    metric = write_report(tmp_path / "metric", kitti_gt.transformed(np.eye(4)), kitti_gt,
                          {"metric": True, "timings_ms": {"total": [10.0, 30.0]}}, "metric run")
    assert metric["headline"]["align"] == "se3" and metric["headline"]["rmse_m"] < 1e-9
    assert metric["timings_ms"]["total"] == 20.0


def test_write_report_without_ground_truth_or_enough_motion(tmp_path):
    from silk_ros.evaluation.report import write_report

    poses = np.stack([np.eye(4)] * 5)
    poses[:, 0, 3] = np.arange(5) * 0.01
    est = Trajectory(np.arange(5) * 0.1, poses)
    metrics = write_report(tmp_path / "nogt", est, None, {}, "no ground truth")
    assert metrics["headline"] is None and metrics["estimate_path_length"] == pytest.approx(0.04)
    assert (tmp_path / "nogt/trajectory.png").is_file()
    short = write_report(tmp_path / "short", est, est, {"metric": True}, "too short for segments")
    assert "rpe_meters" in short["errors"] and short["headline"]["rmse_m"] < 1e-12


def test_summary_says_why_there_is_no_ate_when_ground_truth_exists(tmp_path):
    """ORB on blank painted walls finds nothing to track: the run has ground truth but no ATE, and the one-line
    summary says why (not "no ground truth")."""
    from silk_ros.evaluation.run_dataset import run_dataset, summary_line
    from silk_ros.odometry import OdometryConfig

    config = OdometryConfig.from_settings(features="orb", mode="mono")
    sequence = open_sequence("synthetic", None, n_frames=80, texture="low", max_frames=5, with_depth=False)
    metrics = run_dataset("synthetic", None, tmp_path, "mono", config, progress=False, sequence=sequence)
    line = summary_line(metrics)
    assert metrics["ground_truth_poses"] == 5 and "no ground truth" not in line
    assert "no ATE: cannot align: the estimated positions are all the same point" in line, line
