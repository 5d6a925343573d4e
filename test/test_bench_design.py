"""``silk-vo bench design``: the odometry's design set runs from the command line, monocular and RGB-D, measures
what it says (ATE, lost frames, scale wander), caches its rooms, and refuses what it cannot run."""

from __future__ import annotations

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
