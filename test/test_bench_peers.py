"""External peers in ``silk-vo bench vo`` (Open3D RGB-D odometry, ORB-SLAM3) and the ORB vocabulary trainer.

The peers' packages are benchmark extras (requirements-bench.txt): tests that run a peer skip when its package is
absent; the rest (registry, skips, settings, vocabulary format) run everywhere."""

from __future__ import annotations

import importlib.util
import json
import sys

import cv2
import numpy as np
import pytest

from silk_ros.bench.peers import PeerOptions, PeerUnavailable, make_peer, skip_reason
from silk_ros.cli import main
from silk_ros.evaluation.run_dataset import load_config, run_dataset
from silk_ros.geometry.camera import Camera

HAS_OPEN3D = importlib.util.find_spec("open3d") is not None
HAS_PYORBSLAM3 = importlib.util.find_spec("pyorbslam3") is not None
NO_PYORBSLAM3 = "pyorbslam3 is a benchmark extra (pip install -r requirements-bench.txt)"
#: 15 frames of 7-Scenes redkitchen seq-01 (0.5 s of handheld motion). Measured: Open3D 0.006 m ATE SE(3).
OPEN3D_ATE_BOUND_M = 0.03


@pytest.mark.skipif(not HAS_OPEN3D, reason="open3d is a benchmark extra (pip install -r requirements-bench.txt)")
def test_open3d_rgbd_peer_on_7scenes_frames(data_root, tmp_path):
    """The Open3D peer through run_dataset: same replay, report and SE(3) ATE as silk_ros' own RGB-D run."""
    peer = make_peer("open3d-rgbd", "rgbd", PeerOptions(work_dir=tmp_path))
    metrics = run_dataset("7scenes", data_root / "sequences" / "7scenes_redkitchen", tmp_path / "run", "rgbd",
                          load_config(None), max_frames=15, progress=False, odometry=peer)
    run = metrics["run"]
    assert run["frames"] == 15 and run["lost_frames"] == 0
    assert run["features"] == "open3d-rgbd" and run["backend"].startswith("open3d")
    assert metrics["headline"]["align"] == "se3"
    assert metrics["headline"]["rmse_m"] < OPEN3D_ATE_BOUND_M, metrics["ate"]
    assert metrics["estimate_path_length"] > 0.01  # it moved, as the camera did
    assert run["timings"]["total"]["fps"] > 0
    assert json.loads((tmp_path / "run" / "report.json").read_text())["frames"] == 15


@pytest.mark.skipif(not HAS_PYORBSLAM3, reason=NO_PYORBSLAM3)
def test_orbslam3_peer_on_7scenes_rgbd_frames(data_root, tmp_path):
    """ORB-SLAM3 RGB-D through run_dataset, with a tiny vocabulary trained here on four training photos."""
    from training.orb_vocabulary import main as train

    vocabulary = tmp_path / "voc.txt"
    assert train(["--images", *_four_photos(data_root, tmp_path), "--out", str(vocabulary), "--k", "6",
                  "--depth", "3", "--features", "500"]) == 0
    peer = make_peer("orbslam3", "rgbd", PeerOptions(work_dir=tmp_path / "orb", vocabulary=vocabulary))
    try:
        metrics = run_dataset("7scenes", data_root / "sequences" / "7scenes_redkitchen", None, "rgbd",
                              load_config(None), max_frames=15, progress=False, odometry=peer)
    finally:
        peer.close()
    run = metrics["run"]
    assert run["frames"] == 15 and run["lost_frames"] == 0 and run["features"] == "orbslam3"
    assert metrics["headline"]["align"] == "se3" and metrics["headline"]["rmse_m"] < OPEN3D_ATE_BOUND_M
    assert (tmp_path / "orb" / "orbslam3.log").stat().st_size > 0  # its console output, kept out of ours


def test_orbslam3_needs_a_vocabulary(tmp_path):
    if not HAS_PYORBSLAM3:
        pytest.skip(NO_PYORBSLAM3)
    with pytest.raises(PeerUnavailable, match="training.orb_vocabulary"):
        make_peer("orbslam3", "mono", PeerOptions(work_dir=tmp_path, vocabulary=tmp_path / "missing.txt"))


def _four_photos(data_root, tmp_path) -> list[str]:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("astronaut.png", "brick.png", "coffee.png", "camera.png"):
        (photos / name).write_bytes((data_root / "train" / "skimage" / name).read_bytes())
    return [str(photos)]


def test_a_missing_peer_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "open3d", None)  # import open3d now raises ImportError
    with pytest.raises(PeerUnavailable, match="requirements-bench.txt"):
        make_peer("open3d-rgbd", "rgbd")


def test_peers_run_only_in_their_modes():
    assert skip_reason("open3d-rgbd", "rgbd") is None
    assert "rgbd" in skip_reason("open3d-rgbd", "mono")
    assert skip_reason("orbslam3", "mono") is None and skip_reason("orbslam3", "rgbd") is None
    with pytest.raises(PeerUnavailable, match="only in rgbd"):
        make_peer("open3d-rgbd", "mono")


def test_bench_vo_notes_a_peer_skipped_on_a_monocular_sequence(data_root, tmp_path):
    """open3d-rgbd asked for on a monocular sequence: a row that says why it did not run (no package needed)."""
    json_path = tmp_path / "vo.json"
    code = main(["bench", "vo", "--data", str(data_root), "--features", "orb,open3d-rgbd", "--sequences",
                 "tum-desk-mono", "--max-frames", "8", "--out", str(tmp_path / "runs"), "--json", str(json_path),
                 "--record", ""])
    assert code == 0
    runs = json.loads(json_path.read_text())["runs"]["tum-desk-mono"]
    assert "rgbd" in runs["open3d-rgbd"]["skipped"]
    assert runs["orb"]["frames"] == 8 and runs["orb"]["posed_fraction"] <= 1.0


def test_orbslam3_settings_are_read_by_opencv(tmp_path):
    """The settings file given to ORB-SLAM3 parses as OpenCV YAML with the camera, distortion and depth units."""
    from silk_ros.bench.peers.orbslam3 import settings_yaml

    camera = Camera.from_intrinsics(520.9, 521.0, 325.1, 249.7, 640, 480, [0.2312, -0.7849, -0.0033, -0.0001, 0.9172])
    path = tmp_path / "settings.yaml"
    path.write_text(settings_yaml(camera, "rgbd"))
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    assert fs.getNode("File.version").string() == "1.0" and fs.getNode("Camera.type").string() == "PinHole"
    assert fs.getNode("Camera1.fx").real() == pytest.approx(520.9)
    assert fs.getNode("Camera1.k3").real() == pytest.approx(0.9172)
    assert fs.getNode("RGBD.DepthMapFactor").real() == 1.0  # depth is given in metres
    assert int(fs.getNode("Camera.width").real()) == 640 and int(fs.getNode("Camera.RGB").real()) == 0
    assert int(fs.getNode("Camera.fps").real()) == 30  # the default
    fs.release()
    path.write_text(settings_yaml(camera, "mono", frame_rate_hz=10.0))  # KITTI, the design rooms
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    assert int(fs.getNode("Camera.fps").real()) == 10 and fs.getNode("RGBD.DepthMapFactor").empty()
    fs.release()
    with pytest.raises(ValueError, match="frame rate"):
        settings_yaml(camera, "mono", frame_rate_hz=0.0)


def test_orb_vocabulary_is_dbow2_text(data_root, tmp_path):
    """A small vocabulary on four training photos: DBoW2's header, parents before children, 32 bytes per node,
    leaves weighted by IDF, and no empty last line (DBoW2's reader would take it for a node)."""
    from training.orb_vocabulary import main as train

    out = tmp_path / "voc.txt"
    photos = _four_photos(data_root, tmp_path)
    assert train(["--images", *photos, "--out", str(out), "--k", "4", "--depth", "3", "--features", "300"]) == 0
    text = out.read_text()
    assert not text.endswith("\n")
    header, *rows = text.split("\n")
    assert header.split() == ["4", "3", "0", "0"]
    parents = set()
    for node_id, row in enumerate(rows, start=1):
        values = row.split()
        parent, leaf, descriptor, weight = int(values[0]), int(values[1]), values[2:34], float(values[34])
        assert len(values) == 35 and 0 <= parent < node_id and all(0 <= int(b) <= 255 for b in descriptor)
        assert weight >= 0 and (weight == 0 or leaf == 1)
        parents.add(parent)
    leaves = [i for i, row in enumerate(rows, start=1) if row.split()[1] == "1"]
    assert not parents & set(leaves)  # a leaf has no children
    assert 4 < len(leaves) <= 4**3


def test_orb_vocabulary_refuses_benchmark_sequences(data_root):
    from training.orb_vocabulary import training_images

    with pytest.raises(SystemExit, match="benchmark sequences"):
        training_images([data_root / "sequences" / "7scenes_redkitchen"])


def test_peer_odometry_holds_or_drops_lost_poses():
    """A frame without a pose: held in the trajectory (silk_ros' LOST convention) or left out (ORB-SLAM3's)."""
    from silk_ros.bench.peers.base import PeerOdometry, PeerStep

    class Flaky(PeerOdometry):
        name = "flaky"

        def step(self, image, timestamp, camera, depth):
            return PeerStep(None if timestamp == 1.0 else np.eye(4) * 1.0)

    camera = Camera.from_intrinsics(5.0, 5.0, 4.0, 3.0, 8, 6)
    image = np.zeros((6, 8), np.uint8)
    for hold, expected in ((True, 3), (False, 2)):
        peer = Flaky()
        peer.hold_lost_poses = hold
        states = [peer.process(image, t, camera).state.value for t in (0.0, 1.0, 2.0)]
        assert states == ["TRACKING", "LOST", "TRACKING"] and len(peer.trajectory) == expected


def test_peer_targets_compare_medians_over_start_frames_where_they_ran():
    """One failed ORB-SLAM3 start (0.34 m) must not make SiLK look better than the peer's median (0.035 m)."""
    from silk_ros.bench.vo import _peer_targets

    runs = {"7scenes01-mono": {"silk": {"ate_rmse_m": 0.10}, "orbslam3": {"ate_rmse_m": 0.34}},
            "7scenes01-rgbd": {"silk": {"ate_rmse_m": 0.04}, "orbslam3": {"ate_rmse_m": 0.05}}}
    starts = {"7scenes01-mono": {"silk": {"starts": [0, 10, 20], "median_ate_rmse_m": 0.104},
                                 "orbslam3": {"starts": [0, 10, 20], "median_ate_rmse_m": 0.035}}}
    targets = _peer_targets(runs, ["silk", "orbslam3"], starts)
    mono = targets["7scenes01-mono: SiLK ATE <= orbslam3 ATE (median of 3 starts)"]
    assert mono["value"] == pytest.approx(0.104 / 0.035) and not mono["met"]
    rgbd = targets["7scenes01-rgbd: SiLK ATE <= orbslam3 ATE (one run)"]
    assert rgbd["value"] == pytest.approx(0.8) and rgbd["met"]


def test_later_starts_run_on_every_moving_sequence_in_either_mode(monkeypatch, tmp_path):
    """RGB-D runs get the later starts too (ORB-SLAM3's RGB-D runs differ from one to the next); a sequence at rest
    or too short for them does not."""
    import argparse

    from silk_ros.bench import vo

    calls = []

    def execute(feature, args, fmt, path, out, mode, *, stride, title, start=0, **_):
        calls.append((title.split(" ")[0], feature, start))
        return {"ate": {"se3" if mode == "rgbd" else "sim3": {"rmse": 0.01 * (1 + start)}},
                "run": {"lost_frames": 0}}

    monkeypatch.setattr(vo, "_execute", execute)
    row = {"ate_rmse_m": 0.01, "lost_frames": 0, "frames": 500, "stride": 1}
    runs = {"7scenes01-rgbd": {"silk": dict(row), "orbslam3": dict(row)},
            "7scenes01-mono": {"silk": dict(row), "orbslam3": {"skipped": "not installed"}},
            "tum-desk-mono": {"silk": {**row, "frames": 20}, "orbslam3": {**row, "frames": 20}},
            "euroc-v101-rest-mono": {"silk": dict(row), "orbslam3": dict(row)}}
    args = argparse.Namespace(out=str(tmp_path))
    table = vo._start_offsets(runs, tmp_path, ["silk", "orbslam3"], [10, 20], args)
    assert set(table) == {"7scenes01-rgbd", "7scenes01-mono"}
    assert set(table["7scenes01-rgbd"]) == {"silk", "orbslam3"} and set(table["7scenes01-mono"]) == {"silk"}
    rgbd = table["7scenes01-rgbd"]["orbslam3"]
    assert rgbd["starts"] == [0, 10, 20] and rgbd["ate_rmse_m"] == pytest.approx([0.01, 0.11, 0.21])
    assert rgbd["median_ate_rmse_m"] == pytest.approx(0.11)
    assert sorted(c for c in calls if c[0] == "7scenes01-rgbd") == [
        ("7scenes01-rgbd", f, s) for f in ("orbslam3", "silk") for s in (10, 20)]
