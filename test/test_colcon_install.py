"""The package as a ROS 2 workspace builds it (issue 15): `colcon build` (colcon-common-extensions from PyPI) into a
throw-away workspace, `source install/setup.bash`, and the node started from the install space tracks frames fed
over real DDS and shuts down cleanly."""

from __future__ import annotations

import os

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

rclpy = pytest.importorskip("rclpy")

from test_ros_node_process import STAMP0, stop, weights_arguments  # noqa: E402

from silk_ros.datasets import open_sequence  # noqa: E402
from silk_ros.datasets.paths import REPO_ROOT  # noqa: E402
from silk_ros.ros import conversions as conv  # noqa: E402
from silk_ros.ros.harness import NodeHarness, spin_in_background  # noqa: E402


def colcon() -> str:
    found = Path(sys.executable).parent / "colcon"
    if not found.exists():
        pytest.skip("colcon is not installed (requirements.txt installs colcon-common-extensions)")
    return str(found)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("colcon_ws")
    (root / "src").mkdir()
    (root / "src" / "silk_ros").symlink_to(REPO_ROOT)
    build = subprocess.run([colcon(), "build", "--base-paths", "src", "--event-handlers", "console_direct+"],
                           cwd=root, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return root


def sourced(workspace: Path, command: str) -> list[str]:
    """``command`` run by bash after ``source install/setup.bash``, as a ROS user runs it."""
    return ["bash", "-c", f"source {workspace}/install/setup.bash && {command}"]


def test_colcon_installs_the_node_configs_and_launch_files(workspace):
    install = workspace / "install" / "silk_ros"
    assert os.access(install / "lib" / "silk_ros" / "silk_vo_node", os.X_OK)
    share = install / "share" / "silk_ros"
    for name in ("package.xml", "launch/silk_vo.launch.py", "config/silk_vo.yaml", "rviz/silk_vo.rviz"):
        assert (share / name).is_file(), name
    assert (share.parent / "ament_index" / "resource_index" / "packages" / "silk_ros").is_file()
    site = next((install / "lib").glob("python3*/site-packages"))
    top_level = sorted(p.name for p in site.iterdir() if p.is_dir() and not p.name.endswith(".egg-info"))
    assert top_level == ["silk_ros"], top_level  # nothing else lands in a robot's site-packages
    found = subprocess.run(sourced(workspace, f"{sys.executable} -c 'import silk_ros; print(silk_ros.__file__)'"),
                           cwd=workspace, capture_output=True, text=True, check=True)
    assert found.stdout.strip().startswith(str(workspace / "install")), found.stdout


@pytest.fixture(scope="module")
def frames(data_root):
    sequence = open_sequence(
        "7scenes", data_root / "sequences" / "7scenes_redkitchen", resize=(320, 240), max_frames=8, stride=2
    )
    return list(sequence)


def test_node_from_the_install_space_tracks_frames_and_exits_cleanly(ros, workspace, frames):
    share = workspace / "install" / "silk_ros" / "share" / "silk_ros"
    node = workspace / "install" / "silk_ros" / "lib" / "silk_ros" / "silk_vo_node"
    arguments = " ".join(["--ros-args", "--params-file", str(share / "config" / "silk_vo.yaml"), *weights_arguments(),
                          "-p", "mode:=rgbd", "-p", "top_k:=500", "-p", "threads:=1"])
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    process = subprocess.Popen(sourced(workspace, f"exec {node} {arguments}"), cwd=workspace, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    harness = NodeHarness(rgbd=True)
    executor, thread = spin_in_background(harness)
    try:
        subscribed = harness.wait_for(lambda: process.poll() is not None or harness.wait_for_subscribers(0.1), 90.0)
        assert subscribed and process.poll() is None, stop(process)[1]
        time.sleep(0.5)
        for frame in frames:
            stamp = conv.seconds_to_stamp(STAMP0 + frame.timestamp)
            harness.publish_camera_info(frame.camera, stamp)
            harness.publish_frame(frame.image, stamp, depth=frame.depth, depth_gap=0.05)
            time.sleep(0.4)
        assert harness.wait_for(lambda: harness.count("odometry") >= len(frames) // 2, 60.0), stop(process)[1]
    finally:
        executor.shutdown()
        thread.join(5.0)
        harness.destroy_node()
        returncode, output = stop(process)
    assert returncode == 0, output
    assert "silk_vo_node ready" in output
