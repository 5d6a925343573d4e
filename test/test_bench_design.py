"""``silk-vo bench design``: the odometry's design set runs from the command line, monocular and RGB-D, measures
what it says (ATE, lost frames, scale wander), caches its rooms, and refuses what it cannot run."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from silk_ros.bench import design
from silk_ros.cli import main as silk_vo
from silk_ros.datasets.synthetic import kinect_depth_noise
from silk_ros.geometry.trajectory import Trajectory


@pytest.fixture()
def photos(data_root):
    if not (data_root / design.VALIDATION_PHOTOS).is_dir():
        pytest.skip("held-out BSDS500 photos not found")
    return data_root


def test_design_set_runs_monocular_and_rgbd_rooms_and_caches_them(photos, tmp_path):
    cache = tmp_path / "cache"
    for mode in ("mono", "rgbd"):
        out = tmp_path / f"{mode}.json"
        args = ["bench", "design", "--rooms", "room2-smooth", "--frames", "40", "--seeds", "0,1", "--mode", mode,
                "--data", str(photos), "--cache", str(cache), "--json", str(out), "--record", ""]
        assert silk_vo(args) == 0
        report = json.loads(out.read_text())
        room = report["rooms"]["room2-smooth"]
        assert [r["seed"] for r in room["runs"]] == [0, 1] and room["frames"] == 40
        assert report["lost"] == room["lost"] == 0
        # A smooth 4 s arc: centimetres monocular (a broken front end drifts by decimetres); RGB-D on Kinect-like
        # depth, millimetres (the session-22 rooms: 1.5 mm over 240 frames).
        bound = 0.05 if mode == "mono" else 0.01
        assert 0.0 < room["median_ate_m"] <= room["worst_ate_m"] < bound
        assert report["median_ate_m"] == pytest.approx(room["median_ate_m"])
        # RGB-D poses in metres from the second frame; a monocular map needs parallax first.
        starts = [r["map_from_frame"] for r in room["runs"]]
        assert starts == [1, 1] if mode == "rgbd" else all(1 <= s < 20 for s in starts)
    assert sorted(p.name for p in cache.iterdir()) == ["room2-smooth-40-depth.pkl", "room2-smooth-40.pkl"]


def test_scale_wander_is_the_spread_of_the_segment_scales():
    t = np.arange(200) * 0.1
    truth = np.column_stack([np.cos(t / 4), np.sin(t / 4), 0.1 * t])
    steps = np.diff(truth, axis=0, prepend=truth[:1])
    poses = np.repeat(np.eye(4)[None], len(t), axis=0)

    def trajectory(positions):
        p = poses.copy()
        p[:, :3, 3] = positions
        return Trajectory(t, p)

    ground_truth = trajectory(truth)
    assert design.scale_wander(trajectory(3.0 * truth + 1.0), ground_truth) == pytest.approx(0.0, abs=1e-9)
    # two segments at 1.0 and two at 1.2: log scales +-log(1.2)/2 around their mean
    factors = np.where(np.arange(len(t)) < 100, 1.0, 1.2)[:, None]
    wander = design.scale_wander(trajectory(np.cumsum(factors * steps, axis=0)), ground_truth)
    assert wander == pytest.approx(np.log(1.2) / 2, rel=1e-6)
    assert design.scale_wander(trajectory(truth), ground_truth, first_frame=120) is None  # one segment left


def test_kinect_depth_noise_grows_with_depth_and_drops_pixels():
    rng = np.random.default_rng(0)
    for z in (1.0, 3.0):
        depth = np.full((240, 320), z, np.float32)
        noisy = kinect_depth_noise(depth, rng)
        valid = noisy > 0
        assert 0.01 < 1 - valid.mean() < 0.03
        assert np.allclose(noisy[valid] * 1000, np.round(noisy[valid] * 1000), atol=1e-3)  # millimetre steps
        sigma = 0.0012 + 0.0019 * (z - 0.4) ** 2
        assert np.std(noisy[valid] - z) == pytest.approx(np.hypot(sigma, 0.001 / np.sqrt(12)), rel=0.1)


def test_design_set_refuses_unknown_rooms_settings_and_missing_photos(tmp_path):
    base = ["bench", "design", "--record", "", "--cache", ""]
    with pytest.raises(SystemExit, match="unknown rooms"):
        silk_vo([*base, "--rooms", "room99-smooth"])
    with pytest.raises(SystemExit, match="at least 20 frames"):
        silk_vo([*base, "--rooms", "room2-smooth", "--frames", "5"])
    with pytest.raises(SystemExit, match="window_keyframe"):
        silk_vo([*base, "--rooms", "room2-smooth", "--set", "window_keyframe=8"])
    for key, flag in (("mode", "--mode"), ("ransac_seed", "--seeds")):  # set by the bench for every run
        with pytest.raises(SystemExit, match=f"{key} \\(use {flag}\\)"):
            silk_vo([*base, "--rooms", "room2-smooth", "--set", f"{key}=1"])
    with pytest.raises(SystemExit, match="no validation photos"):
        silk_vo([*base, "--rooms", "room2-smooth", "--data", str(tmp_path)])


def test_held_out_rooms_are_other_rooms_of_the_same_kinds():
    """The held-out rooms are never design rooms, and cover what the design set covers: each kind of motion, blank
    walls and blur."""
    assert not set(design.HELD_OUT_ROOMS) & set(design.ROOMS)
    assert not {r.seed for r in design.HELD_OUT_ROOMS.values()} & {r.seed for r in design.ROOMS.values()}
    kinds = {(r.motion, r.texture, bool(r.exposure)) for r in design.HELD_OUT_ROOMS.values()}
    assert {m for m, _, _ in kinds} == {r.motion for r in design.ROOMS.values()}
    assert any(t == "low" for _, t, _ in kinds) and any(blur for _, _, blur in kinds)
    assert [r.name for r in design._rooms("held-out", None)] == list(design.HELD_OUT_ROOMS)


def test_a_peer_run_without_a_pose_has_no_ate_and_counts_as_the_worst():
    runs = [{"seed": 0, "ate_m": 0.02, "lost": 3}, {"seed": 1, "ate_m": None, "lost": 40}]
    summary = design.room_summary(runs)
    assert summary["worst_ate_m"] is None and summary["lost"] == 43
    assert design.room_summary(runs[:1])["median_ate_m"] == pytest.approx(0.02)


@pytest.mark.skipif(importlib.util.find_spec("pyorbslam3") is None,
                    reason="pyorbslam3 is a benchmark extra (pip install -r requirements-bench.txt)")
def test_orbslam3_runs_on_the_rendered_rgbd_room(photos, tmp_path):
    """ORB-SLAM3 in place of silk_ros on the same rendered frames, with a tiny vocabulary trained on four training
    photos; a peer and a silk_ros setting are refused together."""
    from training.orb_vocabulary import main as train

    vocabulary = tmp_path / "voc.txt"
    four = tmp_path / "photos"
    four.mkdir()
    for name in ("astronaut.png", "brick.png", "coffee.png", "camera.png"):
        (four / name).write_bytes((photos / "train" / "skimage" / name).read_bytes())
    assert train(["--images", str(four), "--out", str(vocabulary), "--k", "6", "--depth", "3",
                  "--features", "500"]) == 0
    out = tmp_path / "peer.json"
    base = ["bench", "design", "--rooms", "room21-sweep", "--frames", "40", "--mode", "rgbd", "--data", str(photos),
            "--cache", str(tmp_path / "cache"), "--record", "", "--peer", "orbslam3",
            "--orb-vocabulary", str(vocabulary)]
    assert silk_vo([*base, "--seeds", "0", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    run = report["rooms"]["room21-sweep"]["runs"][0]
    assert report["front_end"] == "orbslam3" and run["lost"] < 40
    assert run["ate_m"] is not None and run["ate_m"] < 0.05  # 4 s of a sweep with depth: centimetres at worst
    with pytest.raises(SystemExit, match="--set changes silk_ros settings"):
        silk_vo([*base, "--set", "window_keyframes=8"])
