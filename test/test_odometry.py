"""Odometry on the package's synthetic room (exact poses and depth): trajectory accuracy (RGB-D metric, monocular
up to scale), no translation at rest or under pure rotation, covariance properties, loss and recovery, the ORB
and SIFT baselines, configuration and input errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from silk_ros.datasets import open_sequence
from silk_ros.datasets.synthetic import render
from silk_ros.evaluation.metrics import ate
from silk_ros.geometry.pose import make_pose, rotation_angle_deg, so3_exp
from silk_ros.geometry.trajectory import Trajectory
from silk_ros.matching import MutualNearestNeighbour
from silk_ros.odometry import (
    ConfigError,
    OdometryConfig,
    OdometryInputError,
    TrackingState,
    VisualOdometry,
    run_sequence,
)
from silk_ros.weights import WeightsError, shipped_weights

REPO = Path(__file__).resolve().parents[1]


def silk_options() -> dict:
    """Trained SiLK weights when shipped in this checkout, else the random-weight network (plumbing only)."""
    try:
        shipped_weights("silk-mu")
        return {"features": "silk"}
    except WeightsError:
        return {"features": "silk", "weights": "untrained", "allow_untrained": True}


class RenderedFrames:
    """The synthetic sequence rendered once per test module (ray casting costs ~0.7 s CPU per frame)."""

    def __init__(self, sequence, count: int | None = None):
        self.name = sequence.name
        self.camera = sequence.camera
        self.quads = sequence.quads
        self.frames = [sequence[i] for i in range(count or len(sequence))]
        self.ground_truth = Trajectory(
            np.array([f.timestamp for f in self.frames]), sequence.ground_truth.poses[: len(self.frames)]
        )

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i):
        return self.frames[i]

    def __iter__(self):
        return iter(self.frames)

    def head(self, count: int) -> RenderedFrames:
        head = object.__new__(RenderedFrames)
        head.name, head.camera, head.quads = self.name, self.camera, self.quads
        head.frames = self.frames[:count]
        head.ground_truth = self.ground_truth.subset(np.arange(count))
        return head


@pytest.fixture(scope="module")
def room():
    return RenderedFrames(open_sequence("synthetic", None, n_frames=30), count=20)


def check_covariance(covariance: np.ndarray) -> None:
    assert covariance.shape == (6, 6)
    assert np.all(np.isfinite(covariance))
    assert np.any(covariance != 0)
    assert np.allclose(covariance, covariance.T)
    assert np.linalg.eigvalsh(covariance).min() > 0


def test_rgbd_synthetic_matches_ground_truth_metric(room):
    vo = VisualOdometry(OdometryConfig.from_settings(features="orb", mode="rgbd"))
    trajectory, stats = run_sequence(vo, room, progress=False)
    error = ate(trajectory, room.ground_truth, align="se3")
    # 30 frames, ~1.4 m of camera path: centimetre accuracy with metric scale, without alignment scale.
    assert error["rmse"] < 0.03, error
    assert stats["lost_frames"] == 0
    assert abs(trajectory.path_length() - room.ground_truth.path_length()) < 0.15 * room.ground_truth.path_length()


def test_rgbd_synthetic_with_silk(room):
    vo = VisualOdometry(OdometryConfig.from_settings(mode="rgbd", **silk_options()))
    trajectory, stats = run_sequence(vo, room, progress=False, keep_results=True)
    assert ate(trajectory, room.ground_truth, align="se3")["rmse"] < 0.03
    for result in stats["results"]:
        check_covariance(result.covariance)
        assert set(result.timings_ms) == {"extract", "match", "pose", "total"}
        assert result.timings_ms["total"] >= result.timings_ms["extract"]


def run_rgbd_with_a_long_depth_frame(room, count: int, bad: int, **settings) -> tuple[VisualOdometry, list]:
    """RGB-D ORB odometry on the first ``count`` frames, frame ``bad``'s depth image reading twice the distance."""
    vo = VisualOdometry(OdometryConfig.from_settings(features="orb", mode="rgbd", **settings))
    results = []
    for i in range(count):
        frame = room[i]
        depth = frame.depth * (2.0 if i == bad else 1.0)
        results.append(vo.process(frame.image, frame.timestamp, frame.camera, depth.astype(np.float32)))
    return vo, results


@pytest.mark.parametrize("gate", [0.1, 0.0])
def test_rgbd_pose_contradicting_the_frames_depth_is_lost(room, gate):
    """A frame whose measured depth contradicts the pose its pixels give (here: a depth image reading twice the
    distance, an inverse-depth error of ~0.2 1/m) is lost with the lost covariance, not tracked; the next frame
    with sound depth is tracked again at the right pose.  ``depth_gate_inverse_m: 0`` turns the check off."""
    vo, results = run_rgbd_with_a_long_depth_frame(room, 4, 2, depth_gate_inverse_m=gate)
    if not gate:  # tracked on the wrong depth (the next frame then starts from it: 7.7 cm off when measured)
        assert results[2].state in (TrackingState.TRACKING, TrackingState.DEGRADED)
        return
    assert results[2].state == TrackingState.LOST
    assert np.all(np.diag(results[2].covariance) >= vo.config.lost_variance)
    assert results[3].state in (TrackingState.TRACKING, TrackingState.DEGRADED)
    truth = np.linalg.inv(room.ground_truth.poses[0]) @ room.ground_truth.poses[3]
    assert np.linalg.norm(results[3].pose_world_cam[:3, 3] - truth[:3, 3]) < 0.02


@pytest.mark.parametrize("coast", [True, False])
def test_rgbd_lost_frame_coasts_on_the_last_motion(room, coast):
    """RGB-D, ``coast_lost_frames``: a lost frame (its depth contradicts its pose) is placed by the last two tracked
    frames' motion, nearer the camera than the held pose; off, the pose holds still."""
    _, results = run_rgbd_with_a_long_depth_frame(room, 5, 4, coast_lost_frames=coast)
    assert results[4].state == TrackingState.LOST
    truth = np.linalg.inv(room.ground_truth.poses[0]) @ room.ground_truth.poses[4]
    held_error = np.linalg.norm(results[3].pose_world_cam[:3, 3] - truth[:3, 3])
    error = np.linalg.norm(results[4].pose_world_cam[:3, 3] - truth[:3, 3])
    if coast:
        assert error < 0.5 * held_error, (error, held_error)
    else:
        np.testing.assert_allclose(results[4].pose_world_cam, results[3].pose_world_cam, atol=1e-12)


@pytest.mark.parametrize("align", [True, False])
def test_rgbd_blank_frames_are_tracked_by_their_depth(room, align):
    """Two frames without texture (blank images) but with the room's depth: with ``depth_alignment`` each is posed by
    aligning its depth to the last posed frame's (DEGRADED, method "depth", within 2 cm of the truth, a covariance
    larger than a tracked frame's), and feature tracking resumes after them; off, they are lost."""
    vo = VisualOdometry(OdometryConfig.from_settings(features="orb", mode="rgbd", depth_alignment=align))
    blank = np.full_like(room[0].image, 127)
    results = [vo.process(blank if i in (5, 6) else room[i].image, room[i].timestamp, room.camera, room[i].depth)
               for i in range(10)]
    truth = [np.linalg.inv(room.ground_truth.poses[0]) @ pose for pose in room.ground_truth.poses[:10]]
    for i in (5, 6):
        if not align:
            assert results[i].state == TrackingState.LOST
            continue
        assert (results[i].state, results[i].method) == (TrackingState.DEGRADED, "depth")
        assert np.linalg.norm(results[i].pose_world_cam[:3, 3] - truth[i][:3, 3]) < 0.02
        check_covariance(results[i].covariance)
        assert np.trace(results[i].covariance) > np.trace(results[4].covariance)
    assert results[-1].state == TrackingState.TRACKING
    assert np.linalg.norm(results[-1].pose_world_cam[:3, 3] - truth[-1][:3, 3]) < 0.03


def test_window_refinement_reduces_keyframe_chaining_drift(room):
    """Every other frame comes from a depth sensor reading 10 % long: chained keyframe to keyframe, the biased
    keyframes' points pass their error on; refined against the window's other keyframes, less of it stays."""
    truth = np.linalg.inv(room.ground_truth.poses[0]) @ room.ground_truth.poses[11]
    errors = {}
    for window in (1, 5):
        # Keyframe refinement alone: tracking on the local map would mix the biased and unbiased keyframes' depths,
        # and the frame's own depth term (tracking_inverse_depth_sigma) would pull each keyframe to its own biased
        # depth (with it on, both windows end near 3.3-3.4 cm here: this sensor is broken by design).
        settings = dict(features="orb", mode="rgbd", window_keyframes=window, local_map_tracking=False,
                        tracking_inverse_depth_sigma=0.0)
        vo = VisualOdometry(OdometryConfig.from_settings(**settings))
        for i in range(12):
            frame = room[i]
            depth = frame.depth * (1.1 if i % 2 else 1.0)
            result = vo.process(frame.image, frame.timestamp, frame.camera, depth.astype(np.float32))
        assert vo.keyframe_count >= 4  # the window has older keyframes to refine against
        errors[window] = np.linalg.norm(result.pose_world_cam[:3, 3] - truth[:3, 3])
    # Measured: 3.3 cm chained, 2.3 cm with the window of 5.
    assert errors[5] < 0.8 * errors[1], errors


def test_mono_synthetic_matches_ground_truth_up_to_scale(room):
    sequence = room
    vo = VisualOdometry(OdometryConfig.from_settings(features="orb", mode="mono"))
    trajectory, stats = run_sequence(vo, sequence, progress=False, keep_results=True)
    results = stats["results"]
    assert any(r.state == TrackingState.TRACKING for r in results)
    tracked = np.array([r.state in (TrackingState.TRACKING, TrackingState.DEGRADED) for r in results])
    error = ate(trajectory.subset(np.flatnonzero(tracked)), sequence.ground_truth.subset(np.flatnonzero(tracked)),
                align="sim3")
    # Monocular: scale and the first frames' translation are unobservable; once initialised the shape must
    # follow the 1.4 m arc. Measured 0.10 m on this scene; the bound leaves 2x margin (a broken solver: > 0.3 m).
    assert error["rmse"] < 0.2, error


@pytest.mark.parametrize("mode", ["mono", "rgbd"])
def test_refined_matches_in_the_odometry(room, mode):
    """``refine_matches``: a frame's points matched to its keyframe move to sub-pixel by descriptor correlation and a
    keyframe keeps them (RGB-D points slide along their rays); tracking stays as accurate.  Measured on this room:
    mono 0.018 -> 0.017 m (Sim(3)), RGB-D 0.72 -> 0.72 mm; with the RGB-D points left at the detected pixels it was
    1.3 mm."""
    from silk_ros.odometry.frontend import resize_image, working_camera

    vo = VisualOdometry(OdometryConfig.from_settings(mode=mode, refine_matches=True, **silk_options()))
    trajectory, stats = run_sequence(vo, room, progress=False)
    assert stats["lost_frames"] == 0
    rgbd = mode == "rgbd"
    assert ate(trajectory, room.ground_truth, align="se3" if rgbd else "sim3")["rmse"] < (0.003 if rgbd else 0.05)
    keyframe = vo._keyframe
    image = next(f.image for f in room if f.timestamp == keyframe.timestamp)
    detected = vo.extractor.extract(resize_image(image, *vo.working_size))
    moved = np.abs(keyframe.features.keypoints_xy - detected.keypoints_xy)
    # Matched points only; within 1.5 cells of their cell, which is within half a cell of the detected point.
    assert (moved.max(axis=1) > 0.01).sum() > 50 and moved.max() <= 2.0 + 1e-5
    camera = working_camera(room.camera, *vo.working_size)
    np.testing.assert_allclose(keyframe.pixels, camera.undistort_points(keyframe.features.keypoints_xy), atol=1e-6)
    if rgbd:  # the measured points lie on the rays of their refined pixels (a few come from older keyframes)
        known = np.isfinite(keyframe.points[:, 2])
        projected = keyframe.points[known] @ camera.K.T
        off_ray = np.linalg.norm(projected[:, :2] / projected[:, 2:] - keyframe.pixels[known], axis=1)
        assert np.mean(off_ray < 1e-6) > 0.98


def test_monocular_local_bundle_adjustment_reduces_drift(room):
    """Each monocular keyframe comes from two views; adjusting the window of keyframes on their shared landmarks
    corrects the newest one.  Measured on these 20 frames (Sim(3) ATE): ORB 0.114 -> 0.089 m, SiLK 0.032 -> 0.018 m."""
    errors = {}
    for iterations in (0, 5):
        vo = VisualOdometry(OdometryConfig.from_settings(features="orb", mode="mono", bundle_iterations=iterations))
        trajectory, stats = run_sequence(vo, room, progress=False)
        assert stats["lost_frames"] == 0 and stats["keyframes"] >= 4  # the window has keyframes to adjust
        errors[iterations] = ate(trajectory, room.ground_truth, align="sim3")["rmse"]
    assert errors[5] < 0.9 * errors[0], errors


def _rotation_frames(room, angles_deg):
    """Images of the synthetic room seen from one fixed camera centre, rotating about its vertical axis."""
    start = room.ground_truth.poses[0]
    frames = []
    for k, angle in enumerate(angles_deg):
        pose = start @ make_pose(so3_exp(np.radians([0.0, angle, 0.3 * angle])))
        image, depth = render(room.quads, room.camera, pose)
        frames.append((k * 0.1, image, depth, pose))
    return frames


@pytest.fixture(scope="module")
def rotation_frames(room):
    return _rotation_frames(room, np.linspace(0.0, 8.0, 9))


@pytest.mark.parametrize("mode", ["mono", "rgbd"])
def test_pure_rotation_injects_no_translation(room, rotation_frames, mode):
    frames = rotation_frames
    vo = VisualOdometry(OdometryConfig.from_settings(features="orb", mode=mode))
    results = [vo.process(image, t, room.camera, depth) for t, image, depth, _ in frames]
    positions = np.stack([r.pose_world_cam[:3, 3] for r in results])
    assert all(r.state != TrackingState.LOST for r in results)
    # Mono: no map is ever built (nothing to triangulate), translation stays exactly zero. RGB-D: millimetres.
    limit = 1e-12 if mode == "mono" else 0.01
    assert np.abs(positions).max() <= limit, positions
    # The rotation itself is tracked (8 degrees in total).
    R_est = results[-1].pose_world_cam[:3, :3]
    R_gt = frames[0][3][:3, :3].T @ frames[-1][3][:3, :3]
    angle_error = np.degrees(np.arccos(np.clip((np.trace(R_est.T @ R_gt) - 1) / 2, -1, 1)))
    assert angle_error < 0.5


def test_monocular_rotation_is_followed_when_the_map_no_longer_explains_the_view(room):
    """Monocular: when PnP on the keyframe's map fails (in 7-Scenes: the camera turns in place and the map's points
    leave the view while plenty of 2D-2D matches remain), the rotation from those matches keeps orientation and
    position right instead of losing track and restarting from a stale orientation (7-Scenes SiLK: 7 lost frames
    -> 0).  The map is made useless here by shuffling its points between the keyframe's features."""
    vo = VisualOdometry(OdometryConfig.from_settings(features="orb", mode="mono"))
    for frame in room.head(10):
        tracked = vo.process(frame.image, frame.timestamp, frame.camera)
    assert tracked.state == TrackingState.TRACKING
    keyframe = vo._keyframe
    known = np.flatnonzero(np.isfinite(keyframe.points[:, 0]))
    keyframe.points[known] = keyframe.points[np.random.default_rng(0).permutation(known)]
    truth = room.ground_truth
    at_keyframe = truth.poses[int(np.argmin(np.abs(truth.timestamps - keyframe.timestamp)))]
    for k, angle in enumerate((2.0, 4.0, 6.0)):
        pose = at_keyframe @ make_pose(so3_exp(np.radians([0.0, angle, 0.0])))
        image, _ = render(room.quads, room.camera, pose)
        result = vo.process(image, 10.0 + k, room.camera)
        assert result.method == "rotation" and result.state == TrackingState.DEGRADED
        assert np.allclose(result.pose_world_cam[:3, 3], keyframe.pose_world[:3, 3])  # no translation injected
        check_covariance(result.covariance)
        R_error = result.pose_world_cam[:3, :3].T @ (np.linalg.inv(truth.poses[0]) @ pose)[:3, :3]
        assert np.degrees(np.arccos(np.clip((np.trace(R_error) - 1) / 2, -1, 1))) < 0.5  # measured 0.11-0.13


@pytest.mark.parametrize(("angle", "shift", "turn_keyframe_deg", "becomes_keyframe"), [
    (6.0, 0.02, 5.0, True),  # turned off the map, near the loss, no parallax: a keyframe carrying the map
    (6.0, 0.02, 0.0, False),  # the same frame with the rule off
    (2.0, 0.01, 5.0, False),  # little turn (forward motion loses inliers at low parallax too): no keyframe
    (0.0, 0.03, 5.0, False),
])
def test_monocular_turn_off_the_map_near_the_keyframe_makes_a_keyframe(
    room, angle, shift, turn_keyframe_deg, becomes_keyframe
):
    """A head shake swinging back near the keyframe while turning away from its map: PnP still poses the frame but
    its inliers run out and the parallax is too small to triangulate a successor (the fast textured design room lost
    10 frames in 12 runs this way).  Such a frame becomes a keyframe at its own pose carrying the map points it
    sees, as after a pure rotation; the map is thinned here to 30 points so the inliers are near the loss."""
    vo = VisualOdometry(OdometryConfig.from_settings(features="orb", mode="mono", turn_keyframe_deg=turn_keyframe_deg))
    for frame in room.head(10):
        vo.process(frame.image, frame.timestamp, frame.camera)
    keyframe = vo._keyframe
    known = np.flatnonzero(np.isfinite(keyframe.points[:, 0]))
    keyframe.points[np.random.default_rng(0).permutation(known)[30:]] = np.nan
    truth = room.ground_truth
    at_keyframe = truth.poses[int(np.argmin(np.abs(truth.timestamps - keyframe.timestamp)))]
    pose = at_keyframe @ make_pose(so3_exp(np.radians([0.0, angle, 0.0])), np.array([shift, 0.0, 0.0]))
    image, _ = render(room.quads, room.camera, pose)
    result = vo.process(image, 10.0, room.camera)
    assert result.method == "pnp" and result.inliers < 2 * vo.config.min_inliers
    assert result.parallax_px < vo.config.init_parallax_px
    assert result.is_keyframe == becomes_keyframe
    assert (vo._keyframe is not keyframe) == becomes_keyframe
    if becomes_keyframe:
        successor = vo._keyframe
        assert np.allclose(successor.pose_world, result.pose_world_cam)
        assert successor.map_size >= result.inliers  # the inlier map points, moved into its frame
        R_error = result.pose_world_cam[:3, :3].T @ (np.linalg.inv(truth.poses[0]) @ pose)[:3, :3]
        assert rotation_angle_deg(R_error) < 1.0


def test_monocular_fast_shake_is_followed_without_losing_track():
    """A head shake (up to ~10 degrees per frame) turns the view off the keyframe faster than the keyframe rules
    react: a frame tracked by pure rotation is promoted to keyframe when the next frame fails against the old one,
    so the turn is followed instead of lost (before: 3 LOST frames here, the orientation held while the camera
    turned by ~20 degrees)."""
    sequence = open_sequence("synthetic", None, n_frames=80, motion="fast", start=26, max_frames=20, with_depth=False)
    frames = [sequence[i] for i in range(len(sequence))]
    vo = VisualOdometry(OdometryConfig.from_settings(**silk_options(), mode="mono"))
    _, stats = run_sequence(vo, frames, progress=False, keep_results=True)
    results = stats["results"]
    assert stats["lost_frames"] == 0, "".join(r.state.value[0] for r in results)
    assert results[-1].state == TrackingState.TRACKING
    gt = sequence.ground_truth.poses
    errors = []
    for k, result in enumerate(results):
        R = result.pose_world_cam[:3, :3].T @ (np.linalg.inv(gt[0]) @ gt[k])[:3, :3]
        errors.append(np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1))))
    # Measured (AVX2 EPYC): worst 3.2 degrees during the turn, 0.5 at the end; a held orientation: ~20 degrees.
    assert max(errors) < 8.0 and errors[-1] < 3.0, np.round(errors, 1)


def test_monocular_resumes_on_a_window_keyframe_after_motion_blur():
    """Motion blur in a fast shake (exposure 0.1): some frames no longer match their keyframe, but the window's older
    keyframes' maps still pose them (``relocalise_keyframes``), so tracking resumes in the same map and scale
    instead of re-initialising after ``max_lost_frames``.  Measured (Zen 4): 4 LOST frames and a new map without it
    (Sim(3) ATE 0.069), none with it (0.014).  With context descriptors (the default) these blurred frames still match
    their keyframe (0 lost either way), so the test keeps the network's own descriptors for a scenario that needs
    relocalisation."""
    sequence = open_sequence("synthetic", None, n_frames=80, motion="fast", exposure=0.1, start=40, max_frames=20,
                             with_depth=False)
    frames = [sequence[i] for i in range(len(sequence))]
    runs = {}
    for count in (0, OdometryConfig().relocalise_keyframes):
        vo = VisualOdometry(OdometryConfig.from_settings(**silk_options(), mode="mono", relocalise_keyframes=count,
                                                         context_scale=0.0))
        trajectory, stats = run_sequence(vo, frames, progress=False, keep_results=True)
        states = "".join(r.state.value[0] for r in stats["results"])
        runs[count] = (stats["lost_frames"], ate(trajectory, sequence.ground_truth, align="sim3")["rmse"], states,
                       stats["relocalisations"], stats["map_restarts"])
    without, with_it = runs[0], runs[OdometryConfig().relocalise_keyframes]
    assert with_it[0] <= 1 and with_it[1] < 0.04, runs
    assert without[0] > with_it[0] or without[1] > 2.0 * with_it[1], runs  # the blur costs frames or accuracy without
    assert without[3] == 0 and with_it[3] >= 1 and with_it[4] <= without[4], runs  # counted, as /diagnostics shows


def test_guided_matching_adds_map_matches_near_the_prediction():
    """``guided_radius_px``: map points without a global mutual match are matched near where the motion model
    projects them, so frames with a prediction get more matches (the option is off by default: measured mixed)."""
    sequence = open_sequence("synthetic", None, n_frames=120, max_frames=16, with_depth=False)
    frames = [sequence[i] for i in range(len(sequence))]
    counts = {}
    for radius in (0.0, 8.0):
        vo = VisualOdometry(OdometryConfig.from_settings(**silk_options(), mode="mono", guided_radius_px=radius))
        _, stats = run_sequence(vo, frames, progress=False, keep_results=True)
        assert stats["lost_frames"] == 0
        counts[radius] = [len(r.matches) for r in stats["results"][1:]]
    assert np.median(counts[8.0]) > np.median(counts[0.0]), counts


def test_monocular_map_rebuilt_from_few_carried_points_keeps_their_scale(room):
    """A keyframe left with fewer map points than PnP needs (after a turn in place) re-triangulates from the 2D-2D
    matches; the points it still carries set that map's scale, not a guess from the last keyframe baseline."""
    # no bundle adjustment: it would hide the scale
    vo = VisualOdometry(OdometryConfig.from_settings(features="orb", mode="mono", bundle_iterations=0))
    frames = list(room)
    for frame in frames[:8]:
        vo.process(frame.image, frame.timestamp, frame.camera)
    keyframe = vo._keyframe
    before = keyframe.points.copy()
    known = np.flatnonzero(np.isfinite(before[:, 0]))
    assert len(known) > 60
    keyframe.points[known[30:]] = np.nan  # 30 points left, fewer than PnP's 20 of them matched in later frames
    vo._scale_reference *= 3.0  # a wrong guess, to be ignored
    rebuilt = None
    for frame in frames[8:]:
        result = vo.process(frame.image, frame.timestamp, frame.camera)
        if result.method == "essential":
            rebuilt = result
            break
    assert rebuilt is not None
    again = np.flatnonzero(np.isfinite(keyframe.points[:, 0]) & np.isfinite(before[:, 0]))
    assert len(again) > 20
    ratio = np.median(keyframe.points[again, 2] / before[again, 2])
    assert abs(ratio - 1.0) < 0.1, ratio


def test_new_keyframe_scale_comes_from_points_triangulated_well_above_the_gate(monkeypatch):
    """A new monocular keyframe's scale is the median map-to-triangulated depth ratio of the shared points whose
    triangulation angle is SCALE_ANGLE_FACTOR x the map's gate.  Moving forward, the points near the image centre
    triangulate just above the gate; here they are the majority and their map depths are 1.5x off (as short-baseline
    depths are): they must not set the scale."""
    import silk_ros.odometry.vo as vo_module
    from silk_ros.geometry.pose import transform_points
    from silk_ros.odometry.estimation import project
    from silk_ros.odometry.keyframe import Keyframe

    K = np.array([[300.0, 0.0, 160.0], [0.0, 300.0, 120.0], [0.0, 0.0, 1.0]])
    rng = np.random.default_rng(0)

    def along(x_over_z: np.ndarray, y_over_z: np.ndarray, z: np.ndarray) -> np.ndarray:
        return np.column_stack([x_over_z * z, y_over_z * z, z])

    side = rng.choice([-1, 1], 80)
    wide = along(side * rng.uniform(0.42, 0.5, 80), rng.uniform(-0.35, 0.35, 80), rng.uniform(2.0, 2.8, 80))
    radius, phase = rng.uniform(0.24, 0.34, 220), rng.uniform(0, 2 * np.pi, 220)
    central = along(radius * np.cos(phase), 0.8 * radius * np.sin(phase), rng.uniform(2.8, 3.4, 220))
    points = np.vstack([wide, central])
    T_1_0 = make_pose(so3_exp([0.0, 0.01, 0.0]), [0.0, 0.0, -0.15])  # 15 cm forward: central 0.5-1.0 deg, wide > 1.1
    u0 = project(points, K) + rng.normal(scale=0.2, size=(len(points), 2))
    u1 = project(transform_points(T_1_0, points), K) + rng.normal(scale=0.2, size=(len(points), 2))
    map_points = 2.0 * points  # the map's unit: 2 per metre
    map_points[len(wide):] *= 1.5  # the near-gate points' depths are off
    keyframe = Keyframe(None, u0, np.eye(4), map_points, 0.0)
    vo = VisualOdometry(OdometryConfig.from_settings(features="orb", mode="mono"))

    def scale_error() -> float:
        tracked = make_pose(translation=[0.3, 0.0, 0.0])  # a wrong tracked pose: the essential matrix's is kept
        T = vo._scaled_essential(keyframe, np.arange(len(points)), u0, u1, K, tracked)
        return float(np.linalg.norm(T[:3, 3]) / (2.0 * 0.15)) - 1.0

    assert abs(scale_error()) < 0.05
    monkeypatch.setattr(vo_module, "SCALE_ANGLE_FACTOR", 1.0)  # every point the map itself keeps votes
    assert scale_error() > 0.3


def test_monocular_restart_after_a_loss_keeps_about_the_same_scale(room):
    """After a loss the monocular map starts again; its scale comes from the last map's scene depth, so the
    trajectory after the restart keeps roughly the scale before it (with the last keyframe baseline as the guess,
    the scale halved here: 2.81 -> 1.33 units per metre; with the scene depth 2.81 -> 2.39)."""
    vo = VisualOdometry(OdometryConfig.from_settings(features="orb", mode="mono", max_lost_frames=2))
    # Forward to frame 8, a jump to frame 19 (no overlap: lost, then a restart there), then back towards frame 10.
    order = list(range(9)) + [19] * 4 + list(range(18, 9, -1))
    results = [vo.process(room[i].image, 0.1 * n, room.camera) for n, i in enumerate(order)]
    assert [r.method for r in results].count("essential") == 2  # the first map and the one after the restart
    restart = [n for n, r in enumerate(results) if r.method == "essential"][1]
    assert results[-1].state != TrackingState.LOST

    def units_per_metre(a: int, b: int) -> float:
        travelled = np.linalg.norm(results[b].pose_world_cam[:3, 3] - results[a].pose_world_cam[:3, 3])
        truth = room.ground_truth.poses
        return travelled / np.linalg.norm(truth[order[b]][:3, 3] - truth[order[a]][:3, 3])

    first = [n for n, r in enumerate(results) if r.method == "essential"][0]
    ratio = units_per_metre(restart, len(order) - 1) / units_per_metre(first, 8)
    assert 0.7 < ratio < 1.4, ratio


def test_attention_matcher_front_end_in_the_odometry(room):
    """SiLK + the learned matcher through the monocular pipeline (what `bench vo --features silk+attention` runs):
    the learned matcher pairs frames with their keyframe, MNN the geometry-gated window association, and the
    ONNX Runtime session does not spin-wait between frames."""
    from silk_ros.matching import MutualNearestNeighbour
    from silk_ros.matching.attention import OnnxAttentionMatcher

    attention = {"name": "attention", "backend": "onnxruntime"}
    config = OdometryConfig.from_settings(**silk_options(), mode="mono", matcher=attention)
    vo = VisualOdometry(config)
    assert isinstance(vo.matcher, OnnxAttentionMatcher) and not vo.matcher.spin_wait
    assert isinstance(vo.window_matcher, MutualNearestNeighbour)
    assert vo.keyframe_matcher is None  # keyframes already get the learned matcher's matches
    classic = VisualOdometry(OdometryConfig.from_settings(features="orb"))
    assert classic.window_matcher is classic.matcher  # descriptor matchers serve both
    trajectory, stats = run_sequence(vo, room, progress=False)
    assert stats["lost_frames"] == 0 and stats["keyframes"] >= 4
    error = ate(trajectory, room.ground_truth, align="sim3")["rmse"]
    assert error < 0.05, error  # measured 0.020 m (SiLK + MNN: 0.018 m); a broken pipeline gives > 0.1 m


@pytest.mark.parametrize("mode", ["mono", "rgbd"])
def test_motion_model_replaces_most_robust_estimations(room, mode, monkeypatch):
    """With ``motion_prior`` frames on a keyframe's map are tracked from the constant-velocity prediction; the robust
    estimator runs for the first frames on each keyframe (and when the prediction loses inliers), and the
    trajectory stays as accurate as with robust estimation on every frame."""
    from silk_ros.odometry import estimation

    pnp = estimation.pnp_pose
    calls = {}
    errors = {}
    for prior in (False, True):
        counter = {"n": 0}

        def counting(*args, _counter=counter, **kwargs):
            _counter["n"] += 1
            return pnp(*args, **kwargs)

        monkeypatch.setattr(estimation, "pnp_pose", counting)
        vo = VisualOdometry(OdometryConfig.from_settings(**silk_options(), mode=mode, motion_prior=prior))
        trajectory, stats = run_sequence(vo, room, progress=False)
        assert stats["lost_frames"] == 0
        calls[prior] = counter["n"]
        errors[prior] = ate(trajectory, room.ground_truth, align="sim3" if mode == "mono" else "se3")["rmse"]
    # This room moves fast (a keyframe every 2-3 frames) and only frames after the first on a keyframe have a
    # prediction: measured 17 -> 14 (mono), 19 -> 16 (RGB-D) robust estimations with NMS radius 1, 19 -> 17 (RGB-D)
    # with radius 2 (the default since session 13: more keyframes here); on 7-Scenes about half go.
    assert calls[True] <= calls[False] - 2, calls
    # Measured on these 20 frames: the same error to 1e-6 m; a prediction that drags the pose off: >> 1.5x.
    assert errors[True] < max(1.5 * errors[False], 0.01), errors


def test_motion_model_prediction_is_constant_velocity():
    from silk_ros.odometry.keyframe import Keyframe
    from silk_ros.odometry.vo import _Motion

    keyframe = object.__new__(Keyframe)
    step = make_pose(so3_exp(np.array([0.0, 0.02, 0.0])), np.array([0.1, 0.0, 0.0]))
    before = make_pose(so3_exp(np.array([0.01, 0.0, 0.0])), np.array([0.0, 0.2, 0.3]))
    last = step @ before
    motion = _Motion(keyframe, last, 100, 0.2, before, 0.1)
    assert np.allclose(motion.predict(0.3), step @ step @ before)
    # a dropped frame (two intervals): the motion twice; half an interval: half the rotation and translation
    assert np.allclose(motion.predict(0.4), step @ step @ step @ before, atol=5e-3)  # first order in the rotation
    half = make_pose(so3_exp(np.array([0.0, 0.01, 0.0])), np.array([0.05, 0.0, 0.0]))
    assert np.allclose(motion.predict(0.25), half @ last)
    assert np.allclose(_Motion(keyframe, last, 100, 0.2).predict(0.3), last)  # one frame known: no velocity yet


def test_a_wrong_motion_prediction_falls_back_to_robust_estimation(room):
    """A prediction far off (a bump, a dropped frame) keeps few correspondences near it: the robust estimator takes
    over and the frame is tracked as without the prior."""
    frames = room.head(8)
    poses = {}
    for corrupt in (False, True):
        vo = VisualOdometry(OdometryConfig.from_settings(**silk_options(), mode="rgbd"))
        for i, frame in enumerate(frames):
            if corrupt and vo._motion is not None:
                vo._motion.T_last_kf = make_pose(so3_exp(np.array([0.0, 0.3, 0.0])), np.array([0.3, 0.0, 0.0]))
                vo._motion.T_before_kf = None
            result = vo.process(frame.image, frame.timestamp, frame.camera, frame.depth)
            assert result.state != TrackingState.LOST, i
        poses[corrupt] = result.pose_world_cam
    assert np.linalg.norm(poses[True][:3, 3] - poses[False][:3, 3]) < 0.01


class CountingMatcher:
    """The real matcher, counting its calls."""

    def __init__(self, matcher):
        self.matcher, self.calls = matcher, 0

    def __call__(self, features0, features1):
        self.calls += 1
        return self.matcher(features0, features1)


def test_keyframe_matcher_rematches_only_keyframe_candidates(room):
    """MNN tracks every frame, the attention matcher re-matches the frames that build a map (the initialisation and
    each new keyframe), so its cost is paid about once per keyframe, not per frame."""
    from silk_ros.matching import MutualNearestNeighbour
    from silk_ros.matching.attention import OnnxAttentionMatcher

    vo = VisualOdometry(OdometryConfig.from_settings(**silk_options(), mode="mono", keyframe_matcher="attention"))
    assert isinstance(vo.matcher, MutualNearestNeighbour)
    assert isinstance(vo.keyframe_matcher, OnnxAttentionMatcher) and not vo.keyframe_matcher.spin_wait
    budget_bucket = vo.keyframe_matcher.bucket_for(vo.config.extractor.top_k)
    assert budget_bucket in vo.keyframe_matcher._sessions  # exported at start-up, not at the first keyframe
    vo.keyframe_matcher = CountingMatcher(vo.keyframe_matcher)
    trajectory, stats = run_sequence(vo, room, progress=False)
    assert stats["lost_frames"] == 0
    # every keyframe but the first came from a re-matched candidate; a candidate may also stay a frame
    assert stats["keyframes"] - 1 <= vo.keyframe_matcher.calls <= stats["keyframes"] + 3 < len(room)
    error = ate(trajectory, room.ground_truth, align="sim3")["rmse"]
    assert error < 0.05, error  # measured 0.018 m (8 re-matches for 9 keyframes; MNN alone: 0.018 m)


class ThinnedMatcher:
    """A keyframe matcher whose map would be thinner than the tracking matches': MNN's 40 most confident matches."""

    def __init__(self):
        self.mnn, self.calls = MutualNearestNeighbour(), 0

    def __call__(self, features0, features1):
        self.calls += 1
        matches = self.mnn(features0, features1)
        return matches.subset(np.argsort(-matches.confidence)[:40])


def test_keyframe_matches_never_build_a_thinner_map(room):
    """``keyframe_no_thinner`` (the default): a keyframe matcher whose matches give fewer pose inliers than the tracking
    matches is consulted but not used, so the run equals the one without it; with the option off its thin maps
    change the run (the design set's low-texture room: 0.033 -> 0.147 m with the learned matcher)."""
    poses = {}
    for label, options in (("none", {"keyframe_matcher": "none"}), ("no thinner", {}),
                           ("thinner", {"keyframe_no_thinner": False})):
        vo = VisualOdometry(OdometryConfig.from_settings(**silk_options(), mode="mono", **options))
        if label != "none":
            vo.keyframe_matcher = ThinnedMatcher()
        trajectory, stats = run_sequence(vo, room, progress=False)
        assert stats["lost_frames"] == 0
        assert label == "none" or vo.keyframe_matcher.calls >= 2
        poses[label] = trajectory.poses
    np.testing.assert_array_equal(poses["no thinner"], poses["none"])
    assert not np.array_equal(poses["thinner"], poses["none"])


def test_keyframe_matcher_choice(monkeypatch):
    """``auto``: the attention matcher only where it applies (SiLK descriptors of its size, not already tracking)
    and where its weights show it no less accurate than MNN on pose."""
    from silk_ros.matching import RatioTest, attention
    from silk_ros.odometry.frontend import build_keyframe_matcher

    config = OdometryConfig.from_settings
    silk = config(features="silk")
    # The shipped matcher beats MNN on the validation rooms (its pose check, session 30): used on keyframes.
    assert not attention.loses_to_mnn()
    assert build_keyframe_matcher(silk, descriptor_dim=64) is not None
    assert build_keyframe_matcher(silk, descriptor_dim=128) is None  # SiLK-4 descriptors: no trained matcher
    assert build_keyframe_matcher(config(context_scale=0.0), descriptor_dim=32) is None  # the network's own: not its
    monkeypatch.setattr(attention, "pose_check", lambda weights="matcher-mu": {"matcher": 0.62, "mnn": 0.66})
    assert build_keyframe_matcher(silk, descriptor_dim=64) is None
    monkeypatch.setattr(attention, "pose_check", lambda weights="matcher-mu": None)  # never checked: not trusted
    assert build_keyframe_matcher(silk, descriptor_dim=64) is None
    monkeypatch.setattr(attention, "pose_check", lambda weights="matcher-mu": {"matcher": 0.70, "mnn": 0.66})
    assert build_keyframe_matcher(config(features="orb"), descriptor_dim=None) is None
    assert build_keyframe_matcher(config(features="sift"), descriptor_dim=128) is None
    assert build_keyframe_matcher(config(matcher={"name": "attention"}), descriptor_dim=64) is None
    assert build_keyframe_matcher(config(keyframe_matcher="none"), descriptor_dim=64) is None
    assert build_keyframe_matcher(config(keyframe_matcher="mnn"), descriptor_dim=64) is None  # = tracking
    ratio = build_keyframe_matcher(config(features="orb", keyframe_matcher={"name": "ratio"}), None)
    assert isinstance(ratio, RatioTest)
    # The network's own descriptors (32-d) are not what the shipped attention matcher takes (64-d context
    # descriptors): naming it is an error when the odometry is built (the extractor's size is known there).
    for named in ({"matcher": "attention"}, {"keyframe_matcher": "attention"},
                  {"keyframe_matcher": {"name": "attention", "backend": "torch"}}):
        with pytest.raises(ConfigError, match="takes 64-d descriptors, the extractor gives 32-d.*context_scale"):
            VisualOdometry(config(context_scale=0.0, **named))
        assert VisualOdometry(config(**named)).extractor.descriptor_dim == 64


def test_a_matcher_trained_on_context_descriptors_runs_with_them(tmp_path):
    """The descriptor-size check follows the matcher's weights, not a rule about context: a 64-d matcher (trained with
    ``python -m training.matcher`` and ``context_scale``) is accepted beside context descriptors."""
    from silk_ros.matching.attention import AttentionMatcherConfig, AttentionMatcherNet
    from silk_ros.weights import save_weights

    net = AttentionMatcherNet(AttentionMatcherConfig(descriptor_dim=64, width=32))
    path = save_weights(tmp_path / "m64.pt", "matcher", net.config.architecture(), net.state_dict(), {"test": True})
    spec = {"name": "attention", "weights": str(path), "backend": "torch"}
    vo = VisualOdometry(OdometryConfig.from_settings(features="silk", context_scale=0.5, keyframe_matcher=spec))
    assert vo.extractor.descriptor_dim == vo.keyframe_matcher.config.descriptor_dim == 64
    with pytest.raises(ConfigError, match="takes 64-d descriptors, the extractor gives 32-d"):
        VisualOdometry(OdometryConfig.from_settings(features="silk", context_scale=0.0, matcher=spec))


def test_static_camera_has_zero_path_length(room):
    frame = room[0]
    rng = np.random.default_rng(0)
    vo = VisualOdometry(OdometryConfig.from_settings(features="orb", mode="mono"))
    for k in range(10):
        noisy = np.clip(frame.image.astype(np.int16) + rng.integers(-3, 4, frame.image.shape), 0, 255).astype(np.uint8)
        result = vo.process(noisy, k * 0.1, frame.camera)
        check_covariance(result.covariance)
    assert vo.trajectory.path_length() == 0.0
    assert vo.state == TrackingState.INITIALIZING


def test_blank_frames_are_lost_with_large_covariance_then_recover(room):
    config = OdometryConfig.from_settings(features="orb", mode="rgbd")
    vo = VisualOdometry(config)
    frames = [room[i] for i in range(12)]
    tracked = [vo.process(frame.image, frame.timestamp, frame.camera, frame.depth) for frame in frames[:6]]
    assert vo.state == TrackingState.TRACKING
    last_step = np.linalg.norm(tracked[-1].relative_pose[:3, 3])
    blank = np.full_like(frames[0].image, 127)
    for k in range(config.max_lost_frames + 2):
        result = vo.process(blank, 10.0 + k, frames[0].camera, frames[0].depth)
        assert result.state == TrackingState.LOST
        assert np.allclose(result.covariance, np.eye(6) * config.lost_variance)
        assert np.all(np.isfinite(result.covariance))
        if k == 0:  # RGB-D coasting (``coast_lost_frames``): the last motion, at most 3 frame intervals of it
            coasted = result.pose_world_cam
            assert 0 < np.linalg.norm(result.relative_pose[:3, 3]) <= 3 * last_step + 1e-9
        else:  # then the pose holds
            assert np.allclose(result.pose_world_cam, coasted)
            assert np.allclose(result.relative_pose, np.eye(4))
    # The keyframe survives blank frames (they have no texture to restart from): tracking resumes against it.
    recovered = [vo.process(f.image, f.timestamp, f.camera, f.depth) for f in frames[6:]]
    assert recovered[-1].state == TrackingState.TRACKING
    error = np.linalg.norm(recovered[-1].pose_world_cam[:3, 3] - (
        np.linalg.inv(room.ground_truth.poses[0]) @ room.ground_truth.poses[11])[:3, 3])
    assert error < 0.05


def test_relocalises_from_a_new_keyframe_after_a_long_loss(room):
    config = OdometryConfig.from_settings(features="orb", mode="rgbd", max_lost_frames=2)
    vo = VisualOdometry(config)
    vo.process(room[0].image, 0.0, room.camera, room[0].depth)
    far = room[len(room) - 1]  # no overlap with the first keyframe's view
    states = [vo.process(far.image, 1.0 + k, room.camera, far.depth).state for k in range(config.max_lost_frames + 3)]
    assert TrackingState.LOST in states
    assert states[-1] == TrackingState.TRACKING  # re-started from a keyframe at the held pose


def test_relative_pose_chains_to_the_absolute_pose(room):
    vo = VisualOdometry(OdometryConfig.from_settings(features="orb", mode="rgbd"))
    pose = np.eye(4)
    for frame in [room[i] for i in range(8)]:
        result = vo.process(frame.image, frame.timestamp, frame.camera, frame.depth)
        pose = pose @ result.relative_pose
        assert np.allclose(pose, result.pose_world_cam, atol=1e-9)
        if len(result.matches):
            assert result.inlier_mask.shape == (len(result.matches),)
            assert result.inliers == int(result.inlier_mask.sum())
            assert result.matches.indices[:, 0].max() < len(result.keyframe_features)
            assert result.matches.indices[:, 1].max() < len(result.features)


def test_sift_baseline_runs(room):
    sequence = room.head(10)
    vo = VisualOdometry(OdometryConfig.from_settings(features="sift", mode="rgbd"))
    trajectory, stats = run_sequence(vo, sequence, progress=False)
    assert stats["lost_frames"] == 0
    assert ate(trajectory, sequence.ground_truth, align="se3")["rmse"] < 0.03


def test_resize_option_rescales_images_and_camera(room):
    vo = VisualOdometry(OdometryConfig.from_settings(features="orb", mode="rgbd", input_width=160, input_height=120))
    frame = room[0]
    result = vo.process(frame.image, 0.0, frame.camera, frame.depth)
    assert result.features.image_size == (120, 160)
    assert vo.working_size == (160, 120)


def test_config_yaml_mirrors_the_defaults_and_rejects_typos(tmp_path):
    assert OdometryConfig.from_yaml(REPO / "config" / "odometry.yaml") == OdometryConfig()
    with pytest.raises(ConfigError, match="max_keypoint"):
        OdometryConfig.from_dict({"max_keypoint": 10})
    with pytest.raises(ConfigError, match="features"):
        OdometryConfig.from_settings(features="surf")
    bad = tmp_path / "bad.yaml"
    bad.write_text("odometry:\n  lost_variance: lots\n")
    with pytest.raises(ConfigError, match="lost_variance"):
        OdometryConfig.from_yaml(bad)
    assert OdometryConfig.from_dict({"lost_variance": "1.0e6"}).lost_variance == 1e6


def test_bad_inputs_name_the_problem(room):
    vo = VisualOdometry(OdometryConfig.from_settings(features="orb", mode="rgbd"))
    frame = room[0]
    with pytest.raises(OdometryInputError, match="camera"):
        vo.process(frame.image[:100], 0.0, frame.camera, frame.depth)
    with pytest.raises(OdometryInputError, match="depth"):
        vo.process(frame.image, 0.0, frame.camera, None)
    with pytest.raises(OdometryInputError, match="numpy"):
        vo.process(None, 0.0, frame.camera)
    assert len(vo.trajectory) == 0  # nothing was half-processed


def test_trajectory_is_a_trajectory(room):
    vo = VisualOdometry(OdometryConfig.from_settings(features="orb", mode="rgbd"))
    trajectory, _ = run_sequence(vo, room.head(5), progress=False)
    assert isinstance(trajectory, Trajectory)
    assert len(trajectory) == 5
    assert np.allclose(trajectory.poses[0], np.eye(4))


def test_keyframes_are_remembered_only_where_the_covisibility_search_reads_them():
    """Older keyframes are remembered (up to KEYFRAME_MEMORY, ~0.3 MB each with context descriptors: a long-running
    node grew by ~55 MB in the node bench's soak) only where something reads them back: RGB-D keyframe refinement,
    the monocular covisible bundle adjustment (``covisible_bundle``) and monocular keyframes made while turning
    (``rotation_keeps_window_map``), both on by default.  With neither monocular reader nothing is kept."""
    from silk_ros.datasets import open_sequence
    from silk_ros.odometry import OdometryConfig, VisualOdometry
    from silk_ros.odometry.covisibility import KEYFRAME_MEMORY

    remembered = {}
    runs = (("mono", {"mode": "mono"}),
            ("mono, no reader", {"mode": "mono", "rotation_keeps_window_map": False, "covisible_bundle": False}),
            ("mono+covisible", {"mode": "mono", "rotation_keeps_window_map": False, "covisible_bundle": True}),
            ("rgbd", {"mode": "rgbd"}))
    for name, settings in runs:
        vo = VisualOdometry(OdometryConfig.from_settings(features="orb", **settings))
        for frame in open_sequence("synthetic", n_frames=40, with_depth=name == "rgbd"):
            vo.process(frame.image, frame.timestamp, frame.camera, frame.depth)
        assert vo.keyframe_count > 2, name
        remembered[name] = len(vo._memory)
    assert remembered["mono, no reader"] == 0
    assert all(remembered[name] > 2 for name in ("mono", "mono+covisible", "rgbd"))
    assert max(remembered.values()) <= KEYFRAME_MEMORY


def test_trajectory_memory_is_bounded_when_asked():
    from silk_ros.datasets import open_sequence
    from silk_ros.odometry import OdometryConfig, VisualOdometry

    sequence = open_sequence("synthetic", n_frames=6)
    vo = VisualOdometry(OdometryConfig.from_settings(features="orb", max_trajectory_poses=4))
    for frame in sequence:
        vo.process(frame.image, frame.timestamp, frame.camera)
    trajectory = vo.trajectory
    assert len(trajectory.timestamps) == 4
    assert trajectory.timestamps[-1] == sequence[5].timestamp
