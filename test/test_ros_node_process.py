"""The installed console script across processes: ``silk_vo_node --ros-args --params-file config/silk_vo.yaml``.

The node runs as a subprocess exactly as a user starts it (default live mode: newest frame only); this
test process feeds it 7-Scenes frames with a best-effort publisher and records its outputs over DDS.
"""

from __future__ import annotations

import os

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

rclpy = pytest.importorskip("rclpy")

from silk_ros.datasets import open_sequence  # noqa: E402
from silk_ros.datasets.paths import REPO_ROOT  # noqa: E402
from silk_ros.geometry.pose import invert_pose, rotation_angle_deg  # noqa: E402
from silk_ros.ros import conversions as conv  # noqa: E402
from silk_ros.ros.harness import NodeHarness, spin_in_background  # noqa: E402
from silk_ros.weights import WeightsError, shipped_weights  # noqa: E402

STAMP0 = 1_700_000_000.0


def node_executable() -> str:
    script = Path(sys.executable).parent / "silk_vo_node"
    found = str(script) if script.exists() else shutil.which("silk_vo_node")
    if not found:
        pytest.skip("silk_vo_node console script is not installed (pip install -e .)")
    return found


def weights_arguments() -> list[str]:
    try:
        shipped_weights("silk-mu")
        return ["-p", "weights:=silk-mu"]
    except WeightsError:
        return ["-p", "weights:=untrained", "-p", "allow_untrained:=true"]


def start_node(*arguments: str) -> subprocess.Popen:
    command = [node_executable(), "--ros-args", "--params-file", str(REPO_ROOT / "config" / "silk_vo.yaml"), *arguments]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(process: subprocess.Popen, timeout: float = 20.0) -> tuple[int, str]:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return process.returncode, output


@pytest.fixture(scope="module")
def frames(data_root):
    sequence = open_sequence(
        "7scenes", data_root / "sequences" / "7scenes_redkitchen", resize=(320, 240), max_frames=12, stride=2
    )
    return list(sequence)



def test_console_script_tracks_rgbd_frames_fed_over_dds(ros, frames):
    process = start_node(*weights_arguments(), "-p", "mode:=rgbd", "-p", "top_k:=500", "-p", "threads:=1")
    harness = NodeHarness(rgbd=True)  # best-effort publishers, like a camera driver
    executor, thread = spin_in_background(harness)
    try:
        subscribed = harness.wait_for(lambda: process.poll() is not None or harness.wait_for_subscribers(0.1), 90.0)
        assert subscribed and process.poll() is None, stop(process)[1]
        time.sleep(0.5)
        stamps = {}
        for frame in frames:
            stamp = conv.seconds_to_stamp(STAMP0 + frame.timestamp)
            stamps[(stamp.sec, stamp.nanosec)] = frame
            harness.publish_camera_info(frame.camera, stamp)
            harness.publish_frame(frame.image, stamp, depth=frame.depth, depth_gap=0.05)
            time.sleep(0.4)

        def settled() -> bool:
            """The node has handled everything it received (best effort may lose frames under CPU load)."""
            d = harness.latest_diagnostics()
            if not d or int(d["frames_received"]) == 0:
                return False
            handled = int(d["frames_processed"]) + int(d["frames_dropped"]) == int(d["frames_received"])
            return handled and harness.count("odometry") == int(d["frames_processed"])

        time.sleep(1.0)
        assert harness.wait_for(settled, 60.0), (harness.latest_diagnostics(), stop(process)[1][-3000:])
        for name in ("keypoints", "matches", "relative_pose", "path", "debug_image"):
            assert harness.count(name) >= 1, name
        odometry = harness.messages("odometry")
        # Live mode may drop frames (and best effort may lose one); those processed must be right.
        assert len(odometry) >= len(frames) // 2, harness.latest_diagnostics()
        base_cam = np.eye(4)
        base_cam[:3, :3] = conv.R_BODY_OPTICAL
        first = stamps[(odometry[0].header.stamp.sec, odometry[0].header.stamp.nanosec)]
        first_gt = first.gt_pose  # the trajectory starts at the first frame processed
        for msg in odometry:
            frame = stamps[(msg.header.stamp.sec, msg.header.stamp.nanosec)]  # a stamp we sent, never now()
            estimate = invert_pose(base_cam) @ conv.pose_to_matrix(msg.pose.pose) @ base_cam
            truth = invert_pose(first_gt) @ frame.gt_pose
            assert rotation_angle_deg(estimate[:3, :3].T @ truth[:3, :3]) < 3.0
            assert np.linalg.norm(estimate[:3, 3] - truth[:3, 3]) < 0.05
        diagnostics = harness.latest_diagnostics()
        assert len(frames) // 2 <= int(diagnostics["frames_received"]) <= len(frames)
        assert diagnostics["mode"] == "rgbd" and diagnostics["device"] == "cpu"
    finally:
        executor.shutdown()
        thread.join(5.0)
        harness.destroy_node()
        returncode, output = stop(process)
    assert returncode == 0, output
    assert "silk_vo_node ready" in output
    assert "odometry in metres (RGB-D: depth)" in output  # the units, said at start-up


def test_console_script_refuses_a_bad_configuration_with_one_clear_line():
    process = start_node("-p", "mode:=stereo")
    output, _ = process.communicate(timeout=90.0)  # it must exit by itself
    assert process.returncode == 1
    assert "cannot start" in output and "mode" in output and "stereo" in output
