"""dataset -> real rosbag2 -> `silk-vo bag eval` gives the trajectory of running on the dataset folder directly.

Real parts only: rosbag2 files written and read by `rosbags` (both storage plugins), the real odometry (ORB front
end through the same VisualOdometry pipeline the node runs, fast on CPU), real TUM fr2/desk frames.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import cv2
import numpy as np
import pytest

from silk_ros.bagio.reader import BagSource, EvalTopics
from silk_ros.cli import main
from silk_ros.datasets import open_sequence
from silk_ros.evaluation.bag import replay_deterministic
from silk_ros.geometry.trajectory import read_tum
from silk_ros.settings import load

SETTINGS = ["--set", "features=orb", "--no-progress"]
SYNTHETIC = {"n_frames": 8, "width": 160, "height": 120}
SYNTHETIC_OPTIONS = [f"--option={key}={value}" for key, value in SYNTHETIC.items()]


def _settings_config(mode="mono"):
    return load(None, {"features": "orb", "mode": mode}).odometry


def _convert(dataset_format, path, out, *extra):
    if dataset_format == "synthetic":
        extra = (*extra, *SYNTHETIC_OPTIONS)
    assert main(["bag", "convert", "--format", dataset_format, str(path), str(out), "--no-progress", *extra]) == 0
    return out.with_suffix("")


def _eval(bag, out, *extra):
    code = main(["bag", "eval", str(bag), "--out", str(out), *SETTINGS, *extra])
    assert code == 0
    return read_tum(out / "trajectory.tum"), json.loads((out / "report.json").read_text())


def _assert_same_trajectory(a, b, atol=1e-9):
    assert len(a) == len(b) > 0
    np.testing.assert_allclose(a.timestamps, b.timestamps, rtol=0, atol=1e-6)  # TUM files keep microseconds
    np.testing.assert_allclose(a.poses, b.poses, rtol=0, atol=atol)


@pytest.fixture(scope="module")
def synthetic_sequence():
    return open_sequence("synthetic", None, **SYNTHETIC)


@pytest.fixture(scope="module")
def synthetic_direct(synthetic_sequence, tmp_path_factory):
    """The odometry on the dataset itself, written as TUM like the bag eval writes it (same precision)."""
    out = {}
    for mode in ("mono", "auto"):
        trajectory, _ = replay_deterministic(_settings_config(mode), synthetic_sequence, progress=False)
        out[mode] = read_tum(trajectory.write_tum(tmp_path_factory.mktemp("direct") / f"{mode}.tum"))
    return out


@pytest.mark.parametrize("suffix", [".mcap", ".db3"])
def test_synthetic_bag_replays_exactly_like_the_dataset(suffix, synthetic_sequence, synthetic_direct, tmp_path):
    bag = _convert("synthetic", "-", tmp_path / f"synthetic{suffix}", "--max-frames", "8")
    assert (bag / f"synthetic{suffix}").is_file() and (bag / "metadata.yaml").is_file()
    with BagSource(bag, EvalTopics("/camera/image_raw", depth="/camera/depth/image_raw")) as source:
        for expected, frame in zip(synthetic_sequence, source.sequence, strict=True):
            np.testing.assert_array_equal(frame.image, expected.image)  # the node's decoder, bit-exact
            np.testing.assert_array_equal(frame.depth, expected.depth)  # 32FC1 metres, NaN kept
            assert frame.camera == expected.camera
    mono, report = _eval(bag, tmp_path / "mono", "--gt-topic", "/ground_truth/pose", "--set", "mode=mono")
    _assert_same_trajectory(mono, synthetic_direct["mono"])
    assert report["frames"] == 8 and report["associated_poses"] == 8 and report["mode"] == "deterministic"
    rgbd, report = _eval(
        bag,
        tmp_path / "rgbd",
        "--gt-topic",
        "/ground_truth/pose",
        "--depth-topic",
        "/camera/depth/image_raw",
        "--set",
        "mode=auto",
    )
    _assert_same_trajectory(rgbd, synthetic_direct["auto"])
    assert report["metric_scale"] is True and report["headline"]["align"] == "se3"
    for name in ("report.md", "trajectory.png", "trajectory.tum", "ground_truth.tum"):
        assert (tmp_path / "rgbd" / name).stat().st_size > 0


def test_tum_bag_replays_exactly_like_the_dataset(data_root, tmp_path):
    path = data_root / "sequences/tum_rgbd/rgbd_dataset_freiburg2_desk_mini"
    sequence = open_sequence("tum", path)
    direct, _ = replay_deterministic(_settings_config(), sequence, progress=False)
    direct = read_tum(direct.write_tum(tmp_path / "direct.tum"))
    bag = _convert("tum", path, tmp_path / "tum.mcap")
    estimate, report = _eval(bag, tmp_path / "report", "--gt-topic", "/ground_truth/pose", "--set", "mode=mono")
    _assert_same_trajectory(estimate, direct)
    assert len(estimate) == 20 and report["associated_poses"] == 20
    assert report["ate"]["sim3"]["rmse"] < 0.05  # 20 frames of a desk: centimetres, not metres
    assert set(report["timings_ms"]) >= {"extract", "match", "pose", "total"}
    # Evaluating against a TUM file instead of the bag's topic gives the same numbers.
    gt = sequence.ground_truth.write_tum(tmp_path / "gt.tum")
    _, from_file = _eval(bag, tmp_path / "report_file", "--gt", str(gt), "--set", "mode=mono")
    assert from_file["ate"]["sim3"]["rmse"] == pytest.approx(report["ate"]["sim3"]["rmse"], abs=1e-6)
    # ... and so does the copy of the ground truth on /tf.
    _, from_tf = _eval(bag, tmp_path / "report_tf", "--gt-topic", "/tf", "--set", "mode=mono")
    assert from_tf["ate"]["sim3"]["rmse"] == pytest.approx(report["ate"]["sim3"]["rmse"], abs=1e-9)


@pytest.mark.parametrize(
    "front_end",
    [["--set", "features=orb"], ["--set", "features=silk", "--set", "weights=silk-mu"]],
    ids=["orb", "silk-onnxruntime"],
)
def test_two_evals_of_one_bag_are_identical(front_end, tmp_path):
    bag = _convert("synthetic", "-", tmp_path / "s.mcap", "--max-frames", "6")
    _, report = _eval(bag, tmp_path / "a", "--gt-topic", "/ground_truth/pose", *front_end)
    # The second run reads the bare .mcap storage file (no metadata.yaml), as `ros2 bag record` users may pass it.
    _eval(bag / "s.mcap", tmp_path / "b", "--gt-topic", "/ground_truth/pose", *front_end)
    assert (tmp_path / "a" / "trajectory.tum").read_bytes() == (tmp_path / "b" / "trajectory.tum").read_bytes()
    assert report["frames"] == 6


def test_compressed_images(synthetic_sequence, synthetic_direct, tmp_path):
    # PNG is lossless: the replay must match the dataset run exactly.
    bag = _convert("synthetic", "-", tmp_path / "png.db3", "--compressed", "png", "--max-frames", "8")
    with BagSource(bag, EvalTopics("/camera/image_raw/compressed")) as source:
        assert source.summary()["image_type"] == "sensor_msgs/CompressedImage"
    estimate, _ = _eval(
        bag, tmp_path / "png_report", "--image-topic", "/camera/image_raw/compressed", "--set", "mode=mono"
    )
    _assert_same_trajectory(estimate, synthetic_direct["mono"])
    # JPEG: frames are exactly what cv2 decodes from the stored bytes, and the run completes.
    bag = _convert("synthetic", "-", tmp_path / "jpeg.mcap", "--compressed", "--max-frames", "4")
    with BagSource(bag, EvalTopics("/camera/image_raw/compressed")) as source:
        frame = source.frame(2)
    ok, buffer = cv2.imencode(".jpg", synthetic_sequence[2].image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    np.testing.assert_array_equal(frame.image, cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED))
    estimate, report = _eval(
        bag,
        tmp_path / "jpeg_report",
        "--image-topic",
        "/camera/image_raw/compressed",
        "--gt-topic",
        "/ground_truth/pose",
    )
    assert len(estimate) == 4 and report["bag"]["image_type"] == "sensor_msgs/CompressedImage"


def test_16bit_depth_and_camera_yaml(synthetic_sequence, tmp_path):
    from silk_ros.bagio.camera_yaml import read_camera_yaml, write_camera_yaml

    bag = _convert(
        "synthetic", "-", tmp_path / "d.mcap", "--depth-encoding", "16UC1", "--no-camera-info", "--max-frames", "3"
    )
    yaml_path = write_camera_yaml(synthetic_sequence.camera, tmp_path / "camera.yaml")
    assert read_camera_yaml(yaml_path) == synthetic_sequence.camera
    topics = EvalTopics("/camera/image_raw", depth="/camera/depth/image_raw")
    with BagSource(bag, topics, camera=read_camera_yaml(yaml_path)) as source:
        frame = source.frame(1)
    expected = synthetic_sequence[1].depth
    assert np.array_equal(np.isnan(frame.depth), np.isnan(expected))
    np.testing.assert_allclose(frame.depth, expected, atol=5e-4, equal_nan=True)  # millimetre quantisation


def test_ros1_bag_replays_like_its_rosbag2_original(tmp_path):
    """ROS 1 bags are read too (rosbags' AnyReader): the same frames, hence the same trajectory."""
    from rosbags.convert import convert
    from rosbags.typesys import Stores, get_typestore

    bag2 = _convert("synthetic", "-", tmp_path / "two.mcap", "--max-frames", "5")
    bag1 = tmp_path / "one.bag"
    convert([bag2], bag1, "", 2, None, "file", None, get_typestore(Stores.ROS1_NOETIC), [], [], [], [])
    ros1, report = _eval(bag1, tmp_path / "ros1", "--gt-topic", "/ground_truth/pose")
    ros2, _ = _eval(bag2, tmp_path / "ros2", "--gt-topic", "/ground_truth/pose")
    _assert_same_trajectory(ros1, ros2, atol=0)
    assert report["bag"]["images"] == 5


def test_deterministic_bag_tools_stay_ros_free(tmp_path):
    """convert and deterministic eval run without ROS: nothing they import pulls in rclpy (only --realtime does)."""
    import subprocess
    import sys

    script = tmp_path / "probe.py"
    script.write_text(
        "import sys\n"
        "import silk_ros.bagio.camera_yaml, silk_ros.bagio.reader, silk_ros.bagio.writer, silk_ros.settings\n"
        "import silk_ros.cli.bag, silk_ros.evaluation.bag\n"
        "from silk_ros.evaluation.bag import replay_deterministic  # noqa: F401\n"
        "from silk_ros.settings import parse_overrides\n"
        "parse_overrides(['features=orb'])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'rosidl_runtime_py', 'sensor_msgs')))\n"
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.fixture(scope="module")
def depth_bag(tmp_path_factory):
    """The 8-frame synthetic sequence as a bag with depth (32FC1) and ground truth."""
    return _convert("synthetic", "-", tmp_path_factory.mktemp("depth_bag") / "d.mcap", "--max-frames", "8")


DEPTH = ["--depth-topic", "/camera/depth/image_raw", "--gt-topic", "/ground_truth/pose"]


def test_a_depth_topic_means_rgbd(depth_bag, synthetic_direct, tmp_path):
    """config/silk_vo.yaml says mode mono (a camera without depth): --depth-topic alone makes the run RGB-D."""
    rgbd, report = _eval(depth_bag, tmp_path / "rgbd", *DEPTH)
    _assert_same_trajectory(rgbd, synthetic_direct["auto"])
    assert report["odometry_mode"] == "rgbd" and report["depth"] == "RGB-D tracking (mode rgbd)"
    assert report["metric_scale"] is True and report["summary"]["units"] == "metric (depth)"
    # An explicit --set mode=mono overrides it: monocular tracking, the depth ignored, and the report says so.
    mono, report = _eval(depth_bag, tmp_path / "mono", *DEPTH, "--set", "mode=mono")
    _assert_same_trajectory(mono, synthetic_direct["mono"])
    assert report["odometry_mode"] == "mono" and report["depth"].startswith("ignored: mode mono set explicitly")
    assert report["metric_scale"] is False and "depth: ignored" in (tmp_path / "mono" / "report.md").read_text()
    # depth_scale: monocular tracking (the same poses up to scale), the depth gives the scale.
    scaled, report = _eval(depth_bag, tmp_path / "scaled", *DEPTH, "--set", "depth_scale=true")
    assert report["odometry_mode"] == "mono" and report["depth"].startswith("metric scale of the monocular")
    np.testing.assert_allclose(scaled.rotations, mono.rotations, atol=1e-9)


def test_rgbd_or_depth_scale_without_a_depth_topic_is_an_error(depth_bag, tmp_path, capsys):
    for setting in ("mode=rgbd", "depth_scale=true"):
        code = main(["bag", "eval", str(depth_bag), "--out", str(tmp_path / "x"), *SETTINGS, "--set", setting])
        assert code == 2 and "pass --depth-topic" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_start_and_max_frames_select_the_images(depth_bag, tmp_path):
    estimate, report = _eval(depth_bag, tmp_path / "part", "--gt-topic", "/ground_truth/pose", "--start", "2",
                             "--max-frames", "4", "--set", "mode=mono")
    assert report["frames"] == 4 and report["associated_poses"] == 4
    assert report["bag"]["images"] == 4 and report["bag"]["images_in_bag"] == 8 and report["bag"]["start"] == 2
    # The very frames the dataset's own start/max_frames select, hence the same trajectory.
    sequence = open_sequence("synthetic", None, **SYNTHETIC, start=2, max_frames=4)
    direct, _ = replay_deterministic(_settings_config("mono"), sequence, progress=False)
    _assert_same_trajectory(estimate, read_tum(direct.write_tum(tmp_path / "direct.tum")))
    # To the end from --start; the real-time player's stream holds the same images (and the rest around them).
    _, report = _eval(depth_bag, tmp_path / "tail", "--start", "5", "--set", "mode=mono")
    assert report["frames"] == 3
    topics = EvalTopics("/camera/image_raw", depth="/camera/depth/image_raw")
    with BagSource(depth_bag, topics, start=2, max_frames=3) as source:
        stamps = source.image_stamps
        roles = [role for role, *_ in source.raw_stream()]
        assert [frame.timestamp for frame in source.sequence] == pytest.approx(list(stamps))
    with BagSource(depth_bag, topics) as whole:
        assert list(stamps) == pytest.approx(list(whole.image_stamps[2:5]))
    assert roles.count("image") == 3 and roles.count("depth") >= 3


@pytest.mark.parametrize("window, message", [(["--start", "8"], "past the last of the 8 images"),
                                             (["--max-frames", "0"], "--max-frames must be >= 1"),
                                             (["--start", "-1"], "--start must be >= 0")])
def test_bad_frame_windows_are_one_clear_error(depth_bag, tmp_path, capsys, window, message):
    code = main(["bag", "eval", str(depth_bag), "--out", str(tmp_path / "x"), *SETTINGS, *window])
    assert code == 2 and message in capsys.readouterr().err


def test_readme_bag_commands_run_as_written(data_root, tmp_path, monkeypatch):
    """Every deterministic `silk-vo bag` command of the README, as written (``../shared/data`` is the shared data
    folder; bags and reports land in a temporary folder).  ``--realtime``: test_bag_realtime.py."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    commands = [line.split(" #")[0].replace("[--compressed]", "").strip() for line in readme.splitlines()
                if line.startswith("silk-vo bag ") and "--realtime" not in line]
    assert any("--depth-topic" in command for command in commands)  # the RGB-D example
    monkeypatch.chdir(tmp_path)
    for command in commands:
        argv = shlex.split(command.replace("../shared/data", str(data_root)))
        assert main([*argv[1:], "--no-progress"]) == 0, command
    rgbd = json.loads((tmp_path / "runs/kitchen_rgbd/report.json").read_text())
    assert rgbd["odometry_mode"] == "rgbd" and rgbd["frames"] == 60 and rgbd["headline"]["align"] == "se3"
    mono = json.loads((tmp_path / "runs/kitchen_mono_metric/report.json").read_text())
    assert mono["odometry_mode"] == "mono" and mono["frames"] == 40 and mono["bag"]["start"] == 10
