"""``silk-vo bench bundle``: the bundle problems the monocular odometry really poses are recorded, our solver
improves them, and (where the benchmark's GTSAM is installed) GTSAM's solution of the same problems agrees."""

from __future__ import annotations

import numpy as np
import pytest

from silk_ros.bench import bundle as bench

FRAMES = 40
#: two rooms: one room's dozen problems is too few for a median (room 0 alone: 6.8 -> 8.0 mm with the session-13
#: features while its mean falls; rooms 1 and 2: 11.0 -> 7.2 and 14.4 -> 10.4 mm)
ROOMS = (0, 1)


@pytest.fixture(scope="module")
def recorded(data_root):
    texture_dir = data_root / bench.TEXTURE_DIR
    if not texture_dir.is_dir():
        pytest.skip(f"training photos not found at {texture_dir}")
    problems, stats = [], []
    for seed in ROOMS:
        found, _, replay = bench.record_problems(FRAMES, seed=seed, texture_dir=texture_dir)
        problems += found
        stats.append(replay)
    return problems, stats


def test_records_the_odometry_problems(recorded):
    problems, stats = recorded
    assert [s["lost_frames"] for s in stats] == [0] * len(ROOMS)
    assert len(problems) >= 5, "every new monocular keyframe past the fixed two is bundle-adjusted"
    for rec in problems:
        problem = rec.problem
        assert problem.fixed[:2].all() and not problem.fixed.all()
        assert len(problem.points_world) >= 40 and len(problem.frame_index) >= 2 * len(problem.points_world)
        assert rec.threshold > 0 and rec.iterations > 0
        # every keyframe is matched to its frame, so to the ground truth
        assert np.isfinite(rec.timestamps).all()
        assert all(bench._gt_pose(rec.ground_truth, t) is not None for t in rec.timestamps)


def test_our_solver_lowers_the_error(recorded):
    problems, _ = recorded
    rows = bench.solve_all(problems, ["ours"])
    for row in rows:
        assert row["ours"]["huber_cost"] < 0.9 * row["initial"]["huber_cost"]
        assert row["ours"]["inliers"] >= 0.95 * row["observations"]
    summary = bench.summarise(rows, ["ours"])
    assert summary["ours"]["huber_cost_mean"] < 0.6 * summary["initial"]["huber_cost_mean"]
    assert summary["ours"]["all_median_px_median"] < summary["initial"]["all_median_px_median"]
    # The free keyframes do not drift from the ground truth (the gauge from the fixed keyframes), over both rooms.
    # Since session 15 the keyframes enter the adjustment with the tracked pose where it explains more matches than
    # the essential matrix's, already near the ground truth: rooms 0 and 1, position median 7.3 -> 8.4 mm (mean 9.1
    # -> 9.6), rotation median 0.28 -> 0.23 degrees (session-14 keyframes: position 6.8 -> 8.0 mm in room 0, 11.0 ->
    # 7.2 mm in room 1).  Since session 17 the frames are also tracked on the window's landmarks
    # (``landmark_tracking``): position median 7.9 -> 7.6 mm, rotation median 0.260 -> 0.268 degrees.
    assert summary["ours"]["gt_rotation_deg_median"] < 1.15 * summary["initial"]["gt_rotation_deg_median"]
    assert summary["ours"]["gt_position_mm_median"] < 1.3 * summary["initial"]["gt_position_mm_median"]
    assert summary["ours"]["problems_with_gt"] == len(rows)


def test_gtsam_agrees_with_ours(recorded):
    pytest.importorskip("gtsam")
    problems, _ = recorded
    rows = bench.solve_all(problems, ["ours", "gtsam"])
    for row in rows:
        ours, gtsam = row["ours"], row["gtsam"]
        assert gtsam["gap_position_mm"] < 5.0 and gtsam["gap_rotation_deg"] < 0.2
        assert abs(gtsam["inlier_median_px"] - ours["inlier_median_px"]) < 0.01
        assert gtsam["huber_cost"] < 1.2 * ours["huber_cost"]
    agreement = bench.summarise(rows, ["ours", "gtsam"])["gtsam"]["agreement_with_ours"]
    assert agreement["position_mm_median"] < 0.1
    assert agreement["rotation_deg_median"] < 0.01


def test_command_reports_every_solver(recorded, monkeypatch):
    """``run`` on the recorded problems (re-recording is stubbed): the table has a row per solver, and the
    smart-factor variant (where GTSAM is installed) lands near ours too."""
    import argparse
    import importlib.util

    problems, stats = recorded
    solvers = ["ours"] + (["gtsam", "gtsam-smart"] if importlib.util.find_spec("gtsam") else [])

    class Named:
        name = "synthetic/seed0"

    monkeypatch.setattr(bench, "record_problems", lambda *a, **k: (problems, Named(), stats[0]))
    args = argparse.Namespace(frames=FRAMES, seeds="0", motions="smooth", data=None, features="silk",
                              config=str(bench.DEFAULT_CONFIG), solvers=",".join(solvers), repeats=1)
    results, markdown = bench.run(args)
    assert results["problems"] == len(problems)
    for name in ("initial guess", *solvers):
        assert f"\n| {name} | " in markdown
    assert "avx512f" in markdown and "load average" in markdown
    if "gtsam-smart" in solvers:
        smart = results["summary"]["gtsam-smart"]
        assert smart["agreement_with_ours"]["position_mm_median"] < 20.0
        assert smart["huber_cost_mean"] < results["summary"]["initial"]["huber_cost_mean"]
