"""Metric scale of monocular odometry (issue 15, item 1): the ground-plane and depth-ratio estimators, the output
they scale, the scale state every report and the node show, and the odometry on the synthetic room (camera
~1.4 m above the floor, exact depth and poses) with and without a scale source."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_odometry import RenderedFrames, silk_options

from silk_ros.datasets import open_sequence
from silk_ros.evaluation.metrics import ate
from silk_ros.evaluation.run_dataset import load_config, run_dataset
from silk_ros.geometry.pose import make_pose, so3_exp
from silk_ros.odometry import ConfigError, OdometryConfig, VisualOdometry, run_sequence
from silk_ros.odometry.keyframe import Keyframe
from silk_ros.odometry.metric_scale import (
    SCALE_SETTLING,
    MetricScale,
    depth_ratio,
    ground_plane,
    local_map,
    units_note,
)


def scene_points(rng: np.random.Generator, height: float, pitch_deg: float, ground: int = 150,
                 noise: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame points of a street-like scene seen by a camera ``height`` above the ground, pitched down:
    ground points (relative depth noise ``noise``), a wall beside the camera, boxes 0.7 m high (their tops and
    fronts), and things above the camera.  Returns (points, the ground's true normal in the camera frame)."""
    pitch = np.radians(pitch_deg)
    # world: x right, y forward, z up; camera optical axes (x right, y down, z forward) pitched down by ``pitch``
    forward = np.array([0.0, np.cos(pitch), -np.sin(pitch)])
    right = np.array([1.0, 0.0, 0.0])
    down = np.cross(forward, right)
    R_world_cam = np.column_stack([right, down, forward])
    centre = np.array([0.0, 0.0, height])
    parts = [
        np.column_stack([rng.uniform(-4, 4, ground), rng.uniform(3, 20, ground), np.zeros(ground)]),  # ground
        np.column_stack([np.full(200, 3.0), rng.uniform(2, 20, 200), rng.uniform(0.3, 3, 200)]),  # wall beside
        np.column_stack([rng.uniform(-2, 2, 60), rng.uniform(4, 8, 60), np.full(60, 0.7)]),  # box tops
        np.column_stack([rng.uniform(-2, 2, 40), np.full(40, 4.0), rng.uniform(0.15, 0.6, 40)]),  # box fronts
        np.column_stack([rng.uniform(-4, 4, 80), rng.uniform(3, 20, 80), rng.uniform(2, 4, 80)]),  # above
    ]
    world = np.concatenate(parts)
    cam = (world - centre) @ R_world_cam
    cam[:ground] *= 1.0 + rng.normal(0.0, noise, (ground, 1))  # depth error along the ray
    return cam, R_world_cam.T @ np.array([0.0, 0.0, -1.0])


@pytest.mark.parametrize("pitch_deg", [0.0, 15.0])
def test_ground_plane_is_the_lowest_plane_not_the_wall_or_the_box_tops(pitch_deg):
    rng = np.random.default_rng(1)
    points, normal = scene_points(rng, 1.65, pitch_deg)
    scale = 0.37  # map units are not metres: the plane's distance is in map units
    plane = ground_plane(points * scale)
    assert plane is not None
    assert plane.distance / scale == pytest.approx(1.65, rel=0.03)
    assert np.degrees(np.arccos(np.clip(plane.normal @ normal, -1, 1))) < 3.0
    # Inliers: ground points below the optical centre (a pitched camera sees the far ground above it), nothing else.
    below = points[:150, 1] > 0
    assert plane.inliers[:150][below].mean() > 0.8 and not plane.inliers[150:].any()


def test_no_ground_plane_without_ground_points_below_the_camera():
    rng = np.random.default_rng(2)
    points, _ = scene_points(rng, 1.65, 5.0, ground=0)
    assert ground_plane(points) is None  # the box tops have the wall's lower points beneath them
    assert ground_plane(np.full((50, 3), np.nan)) is None


def test_the_local_map_pools_the_window_keyframes_points_once():
    rng = np.random.default_rng(4)
    older = _keyframe(rng.normal(size=(6, 3)), make_pose(np.eye(3), [0.0, 0.0, -2.0]))
    newest = _keyframe(rng.normal(size=(4, 3)), np.eye(4))
    older.landmarks[:2] = newest.landmarks[:2] = [7, 8]  # seen by both: counted once, as the newest has it
    points = local_map(newest, [older, newest])
    assert len(points) == 4 + 4
    np.testing.assert_allclose(points[4:], older.points[2:] + [0.0, 0.0, -2.0])


def test_depth_ratio_is_the_median_ratio_of_measured_to_map_depth():
    map_depth = np.array([1.0, 2.0, 4.0, np.nan, 3.0] * 4)
    measured = 0.25 * map_depth
    measured[0] = 99.0  # one wrong depth sample does not move the median
    assert depth_ratio(map_depth, measured) == pytest.approx(0.25)
    assert depth_ratio(map_depth[:5], measured[:5]) is None  # too few points


def _keyframe(points: np.ndarray, pose: np.ndarray) -> Keyframe:
    n = len(points)
    return Keyframe(features=None, pixels=np.zeros((n, 2)), pose_world=pose, points=points, timestamp=0.0)


def test_output_is_held_until_measured_then_metric_and_continuous():
    """Map units are 1/2 m here: the ground lies 3.3 units below a camera 1.65 m high."""
    rng = np.random.default_rng(3)
    points, _ = scene_points(rng, 1.65, 0.0, noise=0.0)
    points = points * 2.0
    scale = MetricScale(camera_height=1.65)
    assert scale.state(False).describe().startswith("not measured yet") and not scale.state(False).metric
    moved = make_pose(np.eye(3), [0.0, 0.0, 4.0])  # 4 map units forward = 2 m
    assert np.allclose(scale.output_pose(moved), np.eye(4))  # no scale yet: the translation is held
    first = _keyframe(points, np.eye(4))
    scale.update(first, 20)
    assert scale.state(False).metric and scale.state(False).describe() == "metric (camera_height 1.65 m)"
    assert scale.scale == pytest.approx(0.5, rel=1e-6)
    np.testing.assert_allclose(scale.output_pose(moved)[:3, 3], [0.0, 0.0, 2.0], atol=1e-9)
    for k in range(1, SCALE_SETTLING):  # settling: each applies from the map's start
        scale.update(_keyframe(points, make_pose(np.eye(3), [0.0, 0.0, 4.0 * k])), 20)
    # After settling, the map's unit drifts (its points twice as far): the scale changes, the output does not jump.
    pose = make_pose(so3_exp(np.array([0.0, 0.1, 0.0])), [0.0, 0.0, 20.0])
    before = scale.output_pose(pose)
    for _ in range(8):
        scale.update(_keyframe(points * 2.0, pose), 20)
        np.testing.assert_allclose(scale.output_pose(pose), before, atol=1e-9)
    assert scale.scale == pytest.approx(0.25, rel=1e-6)  # the median followed the drift
    step = pose @ make_pose(np.eye(3), [0.0, 0.0, 4.0])
    assert np.linalg.norm(scale.output_pose(step)[:3, 3] - before[:3, 3]) == pytest.approx(1.0)
    covariance = np.diag([4.0, 4.0, 4.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(np.diag(scale.output_covariance(covariance)), [0.25] * 3 + [1.0] * 3)


def test_scale_settings_are_validated_and_documented():
    assert OdometryConfig().camera_height == 0.0 and OdometryConfig().depth_scale is False
    with pytest.raises(ConfigError, match="camera_height"):
        OdometryConfig.from_settings(camera_height=-1.0)
    with pytest.raises(ConfigError, match="two scale sources"):
        OdometryConfig.from_settings(camera_height=1.65, depth_scale=True)
    with pytest.raises(ConfigError, match="depth_scale"):
        OdometryConfig.from_settings(mode="rgbd", depth_scale=True)
    metric, note = units_note(False, 0.0, False)
    assert not metric and "ARBITRARY" in note and "camera_height" in note
    assert units_note(False, 1.65, False)[0] and "camera_height 1.65 m" in units_note(False, 1.65, False)[1]
    assert units_note(True, 0.0, False) == (True, "odometry in metres (RGB-D: depth)")


@pytest.fixture(scope="module")
def room30():
    return RenderedFrames(open_sequence("synthetic", None, n_frames=30))


@pytest.fixture(scope="module")
def mono_run(room30):
    """``mono_run(**settings)``: a monocular SiLK run on the room -> (trajectory, stats, SE(3) ATE, Sim(3) ATE),
    each run once per module."""
    runs = {}

    def run(**settings):
        key = tuple(sorted(settings.items()))
        if key not in runs:
            vo = VisualOdometry(OdometryConfig.from_settings(mode="mono", **silk_options(), **settings))
            trajectory, stats = run_sequence(vo, room30, progress=False)
            runs[key] = (trajectory, stats, ate(trajectory, room30.ground_truth, align="se3"),
                         ate(trajectory, room30.ground_truth, align="sim3"))
        return runs[key]

    return run


def test_monocular_without_a_scale_source_is_in_arbitrary_units_and_says_so(mono_run):
    trajectory, stats, se3, sim3 = mono_run()
    assert stats["metric"] is False and stats["scale"] == "arbitrary (monocular, no scale source)"
    # Measured: the map unit is ~1/6 m here (ratio 5.9), SE(3) ATE 3.2 m.
    assert 1.0 / sim3["scale"] > 2.0 and se3["rmse"] > 1.0


def test_camera_height_gives_metres_on_the_synthetic_room(mono_run):
    """The room's camera is 1.25-1.55 m above the floor (a vertical wave): camera_height 1.4 is its mean."""
    trajectory, stats, se3, sim3 = mono_run(camera_height=1.4)
    assert stats["metric"] is True and stats["scale"] == "metric (camera_height 1.4 m)"
    # Measured: estimate/true 1.04, SE(3) ATE 0.09 m (3.2 m without); bounds with margin for other CPUs (and for
    # the camera's +-0.15 m wave, which camera_height does not know about).
    assert 0.75 < 1.0 / sim3["scale"] < 1.35, sim3["scale"]
    assert se3["rmse"] < 0.4, se3["rmse"]


def test_depth_scale_gives_metres_with_monocular_tracking(mono_run):
    trajectory, stats, se3, sim3 = mono_run(depth_scale=True)
    assert stats["metric"] is True and stats["scale"] == "metric (depth ratio)"
    # Measured: estimate/true 1.009, SE(3) ATE 0.016 m; and the tracking itself stayed monocular:
    assert 0.9 < 1.0 / sim3["scale"] < 1.1 and se3["rmse"] < 0.06, (sim3["scale"], se3["rmse"])
    unscaled, _, _, unscaled_sim3 = mono_run()
    assert sim3["rmse"] == pytest.approx(unscaled_sim3["rmse"], rel=0.5)  # same shape: the output is scaled only


def test_report_says_the_units_first(tmp_path):
    config = load_config(None, features="orb")
    metrics = run_dataset("synthetic", None, tmp_path / "mono", "mono", config, max_frames=8, progress=False)
    assert metrics["summary"]["units"] == "arbitrary (monocular, no scale source)"
    assert metrics["summary"]["scale_ratio"] is not None and metrics["metric_scale"] is False
    head = "\n".join((tmp_path / "mono" / "report.md").read_text().splitlines()[:8])
    assert "arbitrary units" in head and "**Units:** ARBITRARY, not metres" in head
    report = json.loads((tmp_path / "mono" / "report.json").read_text())
    assert report["summary"]["units"] == "arbitrary (monocular, no scale source)"
    rgbd = run_dataset("synthetic", None, tmp_path / "rgbd", "auto", config, max_frames=4, progress=False)
    assert rgbd["summary"]["units"] == "metric (depth)" and rgbd["headline"]["align"] == "se3"
    assert "**Units:** metres: metric (depth)" in (tmp_path / "rgbd" / "report.md").read_text()
