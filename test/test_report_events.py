"""The report says what went wrong first: lost frames, frames dropped in real time and large rotation errors are in
report.md's first lines and report.json's top-level summary; the plots mark lost frames, keyframes and large
rotation errors on the trajectory and on the error curve (markers with a legend)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from silk_ros.evaluation.report import (
    LARGE_ROTATION_ERROR_DEG,
    FrameEvents,
    compute_metrics,
    draw_report_figure,
    write_report,
)
from silk_ros.geometry.pose import make_pose, so3_exp
from silk_ros.geometry.trajectory import Trajectory

N = 40
GLITCH = 17  # the estimate's rotation is off by 5 deg at this frame only


@pytest.fixture
def run():
    """A circle of 40 poses, an estimate equal to it but for one 5-degree rotation glitch, and run statistics with
    two lost frames, three keyframes and three frames dropped in real time."""
    t = np.arange(N) * 0.1
    angle = t * 0.8
    gt_poses = np.stack([
        make_pose(so3_exp([0.0, -a, 0.0]), [2 * np.sin(a), 0.0, 2 * np.cos(a)]) for a in angle
    ])
    est_poses = gt_poses.copy()
    est_poses[GLITCH, :3, :3] = est_poses[GLITCH, :3, :3] @ so3_exp(np.radians([0.0, 5.0, 0.0]))
    stats = {"frames": N + 3, "lost_frames": 2, "keyframes": 3, "lost_stamps": [t[5], t[6]],
             "keyframe_stamps": [t[0], t[12], t[30]], "dropped_frames": 3, "metric": True}
    return Trajectory(t, est_poses), Trajectory(t, gt_poses), stats


def test_report_first_lines_carry_lost_dropped_and_large_rotations(tmp_path, run):
    est, gt, stats = run
    metrics = write_report(tmp_path, est, gt, stats, "glitchy run")
    head = (tmp_path / "report.md").read_text().splitlines()[:9]
    text = "\n".join(head)
    assert "**Lost:** 2 of 43 frames" in text
    assert "**Dropped in real time:** 3 of 43 frames got no odometry" in text
    # the glitch spoils the rotation from the frame before it and to the frame after it
    assert f"**Large rotation errors:** 2 of {N - 1} frame-to-frame rotations off by more than 2 deg" in text
    assert "worst at t = " in text and "1.700 s (5.0 deg)" in text and "1.800 s (5.0 deg)" in text
    report = json.loads((tmp_path / "report.json").read_text())
    assert list(report)[:2] == ["title", "summary"]
    summary = report["summary"]
    assert (summary["lost_frames"], summary["dropped_frames"], summary["real_time"]) == (2, 3, True)
    large = summary["large_rotation_errors"]
    assert large["threshold_deg"] == LARGE_ROTATION_ERROR_DEG and large["count"] == 2 and large["pairs"] == N - 1
    assert sorted(large["at"]) == pytest.approx([1.7, 1.8]) and large["max_deg"] == pytest.approx(5.0)
    assert summary["headline"].startswith("ATE SE3 RMSE")
    assert report["frame_events"]["large_rotation"] == pytest.approx([1.7, 1.8])
    assert metrics["plot_markers"] == report["plot_markers"] == {"keyframes": 3, "lost": 2, "large_rotation": 2}
    assert (tmp_path / "trajectory.png").stat().st_size > 10_000


def test_plot_marks_events_on_trajectory_and_error_curve(run):
    import matplotlib.pyplot as plt

    est, gt, stats = run
    metrics = compute_metrics(est, gt, stats, 0.02)
    fig, counts = draw_report_figure("glitchy run", est, gt, metrics, 0.02)
    try:
        assert counts == {"keyframes": 3, "lost": 2, "large_rotation": 2}
        for ax in fig.axes:  # the top view and the error plot
            lines = {line.get_gid(): line for line in ax.get_lines() if line.get_gid()}
            assert set(lines) == {"events:keyframes", "events:lost", "events:large_rotation"}
            assert len(lines["events:lost"].get_xdata()) == 2 and lines["events:lost"].get_marker() == "x"
            assert len(lines["events:keyframes"].get_xdata()) == 3
            legend = {text.get_text() for text in ax.get_legend().get_texts()}
            assert {"keyframe (3)", "rotation error > 2 deg (2)"} <= legend
        top, error = ({line.get_gid(): line for line in ax.get_lines()} for ax in fig.axes)
        assert "lost frame (true position) (2)" in {text.get_text() for text in fig.axes[0].get_legend().get_texts()}
        x_z = [0, 2]  # the circle lies in the x-z plane: the top view's axes
        np.testing.assert_allclose(top["events:lost"].get_xydata(), gt.positions[[5, 6]][:, x_z], atol=1e-9)
        np.testing.assert_allclose(top["events:keyframes"].get_xydata(), est.positions[[0, 12, 30]][:, x_z], atol=1e-9)
        np.testing.assert_allclose(error["events:lost"].get_xdata(), [0.5, 0.6])  # at the lost frames' times
        np.testing.assert_allclose(error["events:large_rotation"].get_xdata(), [1.7, 1.8])
    finally:
        plt.close(fig)


def test_deterministic_run_and_no_ground_truth(tmp_path, run):
    est, _, stats = run
    deterministic = {k: v for k, v in stats.items() if k != "dropped_frames"}
    metrics = write_report(tmp_path, est, None, deterministic, "no gt")
    head = "\n".join((tmp_path / "report.md").read_text().splitlines()[:8])
    assert "**Dropped in real time:** none (every frame was processed: not a real-time run)" in head
    assert "**Large rotation errors:** not computed (no per-frame RPE" in head
    assert metrics["summary"]["large_rotation_errors"]["count"] is None
    assert metrics["plot_markers"] == {"keyframes": 3, "lost": 2, "large_rotation": 0}


class _FakeOdometry:
    """Stands in for VisualOdometry: frame 1 is lost, frames 0 and 2 are keyframes."""

    keyframe_count = 2

    def reset(self):
        self.calls = 0

    def process(self, image, timestamp, camera, depth=None):
        state = "LOST" if timestamp == 1.0 else "TRACKING"
        return SimpleNamespace(timestamp=timestamp, state=SimpleNamespace(value=state), is_keyframe=timestamp != 1.0)


def test_frame_events_records_lost_frames_and_keyframes():
    vo = FrameEvents(_FakeOdometry())
    vo.reset()
    for t in (0.0, 1.0, 2.0):
        vo.process(None, t, None)
    assert vo.stats() == {"lost_stamps": [1.0], "keyframe_stamps": [0.0, 2.0]}
    assert vo.keyframe_count == 2  # everything else is the odometry's
    vo.reset()
    assert vo.stats() == {"lost_stamps": [], "keyframe_stamps": []}


def test_run_dataset_report_has_keyframe_markers(tmp_path):
    from silk_ros.evaluation.run_dataset import DEFAULT_CONFIG, load_config, run_dataset

    config = load_config(DEFAULT_CONFIG, features="orb")
    metrics = run_dataset("synthetic", None, tmp_path, "mono", config, max_frames=8, progress=False)
    events = metrics["frame_events"]
    assert events["keyframes"][0] == 0.0 and len(events["keyframes"]) == metrics["run"]["keyframes"]
    assert metrics["plot_markers"]["keyframes"] == len(events["keyframes"])
    assert "**Lost:**" in (tmp_path / "report.md").read_text().splitlines()[4]
