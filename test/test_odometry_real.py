"""Odometry on real data: the first 30 frames of 7-Scenes redkitchen seq-01 (Kinect RGB-D, handheld) through the
``silk-vo run-dataset`` command, and EuRoC V1_01 at rest (monocular: no translation may be invented)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from silk_ros.cli import main
from silk_ros.datasets import open_sequence
from silk_ros.odometry import OdometryConfig, VisualOdometry, run_sequence
from silk_ros.weights import WeightsError, shipped_weights


def has_trained_silk() -> bool:
    try:
        shipped_weights("silk-mu")
        return True
    except WeightsError:
        return False


#: 30 frames (1 s, ~0.1 m of camera path). Measured: ORB 0.004-0.009 m, SiLK 0.005-0.02 m ATE (SE(3), metric).
ATE_BOUND_M = 0.03


@pytest.mark.parametrize("features", ["orb", "silk"])
def test_7scenes_rgbd_30_frames_through_run_dataset(data_root, tmp_path, features):
    if features == "silk" and not has_trained_silk():
        pytest.skip("trained SiLK weights are not shipped in this checkout")
    path = data_root / "sequences" / "7scenes_redkitchen"
    out = tmp_path / features
    code = main(["run-dataset", "7scenes", str(path), "--mode", "rgbd", "--features", features,
                 "--max-frames", "30", "--out", str(out), "--no-progress"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    for name in ("trajectory.tum", "report.md", "trajectory.png"):
        assert (out / name).stat().st_size > 0
    assert report["frames"] == 30
    assert report["lost_frames"] == 0
    assert report["headline"]["align"] == "se3"  # metric run: judged without scale alignment
    assert report["ate"]["se3"]["rmse"] < ATE_BOUND_M, report["ate"]
    assert set(report["timings_ms"]) >= {"extract", "match", "pose", "total"}


def test_euroc_at_rest_accumulates_no_path(data_root):
    sequence = open_sequence("euroc", data_root / "sequences" / "euroc" / "V1_01_easy_head", max_frames=40)
    vo = VisualOdometry(OdometryConfig.from_settings(features="orb", mode="mono"))
    trajectory, stats = run_sequence(vo, sequence, progress=False)
    # Ground truth moves 1.7 cm over 95 frames (vibration); monocular odometry must not turn noise into motion.
    assert trajectory.path_length() < 0.03
    assert stats["lost_frames"] == 0


def test_bench_vo_reports_the_median_over_start_frames(data_root, tmp_path):
    """``silk-vo bench vo --starts``: monocular moving runs of >= 100 frames are repeated from later frames and the
    median reported; the at-rest sequence is not (its target is a path length, not a trajectory shape)."""
    json_path = tmp_path / "vo.json"
    code = main([
        "bench", "vo", "--data", str(data_root), "--features", "orb", "--sequences",
        "kitti07-mono,euroc-v101-rest-mono", "--max-frames", "110", "--starts", "5", "--out", str(tmp_path / "runs"),
        "--json", str(json_path), "--record", "",
    ])
    assert code == 0
    results = json.loads(json_path.read_text())
    row = results["start_offsets"]["kitti07-mono"]["orb"]
    assert row["starts"] == [0, 5] and len(row["ate_rmse_m"]) == 2 and len(row["lost_frames"]) == 2
    assert row["ate_rmse_m"][0] == results["runs"]["kitti07-mono"]["orb"]["ate_rmse_m"]
    assert min(row["ate_rmse_m"]) <= row["median_ate_rmse_m"] <= max(row["ate_rmse_m"])
    assert "euroc-v101-rest-mono" not in results["start_offsets"]


def test_bench_vo_runs_the_attention_front_end_on_the_descriptors_it_was_trained_on(data_root, tmp_path):
    """Session 28: ``make bench``'s ``--features silk,silk+attention,...`` stopped at silk+attention with a ConfigError
    since context descriptors became the default (the shipped matcher takes the network's own 32-d descriptors)."""
    json_path = tmp_path / "vo.json"
    code = main([
        "bench", "vo", "--data", str(data_root), "--features", "silk+attention", "--sequences", "tum-desk-mono",
        "--max-frames", "12", "--out", str(tmp_path / "runs"), "--json", str(json_path), "--record", "",
    ])
    assert code == 0
    run = json.loads(json_path.read_text())["runs"]["tum-desk-mono"]["silk+attention"]
    assert run["lost_frames"] == 0 and run["ate_rmse_m"] < 0.05, run


def test_bench_vo_perturbed_runs_report_median_worst_and_spread(data_root, tmp_path):
    """``silk-vo bench vo --perturb N``: each moving sequence N more times (start frame, thread count, input dither
    changed), with the median, the worst and their ratio as a target; the at-rest sequence is left out."""
    from silk_ros.bench.vo import Dithered

    json_path = tmp_path / "vo.json"
    code = main([
        "bench", "vo", "--data", str(data_root), "--features", "orb", "--sequences",
        "tum-desk-mono,euroc-v101-rest-mono", "--perturb", "4", "--out", str(tmp_path / "runs"),
        "--json", str(json_path), "--record", "",
    ])
    assert code == 0
    results = json.loads(json_path.read_text())
    row = results["perturbed"]["tum-desk-mono"]["orb"]
    assert len(row["ate_rmse_m"]) == 5 and len(row["lost_frames"]) == 5 and len(row["variants"]) == 5
    # 20 frames: too short for later starts (start 20 was past its end), so threads and dither vary alone
    assert all(variant.startswith("start 0") for variant in row["variants"])
    assert row["ate_rmse_m"][0] == results["runs"]["tum-desk-mono"]["orb"]["ate_rmse_m"]
    assert row["worst_ate_rmse_m"] == max(row["ate_rmse_m"])
    assert row["spread"] == row["worst_ate_rmse_m"] / row["median_ate_rmse_m"] >= 1.0
    assert any("worst-of-5" in key for key in results["targets"])
    assert "euroc-v101-rest-mono" not in results["perturbed"]
    # The dither is seeded, at most one grey level, and leaves everything but the image alone.
    sequence = open_sequence("tum", data_root / "sequences/tum_rgbd/rgbd_dataset_freiburg2_desk_mini", max_frames=2)
    plain, noisy, again = list(sequence), list(Dithered(sequence, 3)), list(Dithered(sequence, 3))
    for a, b, c in zip(plain, noisy, again, strict=True):
        difference = b.image.astype(int) - a.image.astype(int)
        assert np.abs(difference).max() == 1 and np.array_equal(b.image, c.image) and b.timestamp == a.timestamp
