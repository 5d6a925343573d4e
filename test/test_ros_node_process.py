"""The installed console script across processes: ``silk_vo_node --ros-args --params-file config/silk_vo.yaml``.

The node runs as a subprocess exactly as a user starts it (default live mode: newest frame only); this
test process feeds it 7-Scenes frames with a best-effort publisher and records its outputs over DDS.
"""

from __future__ import annotations

import os

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
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


def start_node(*arguments: str, **environment: str) -> subprocess.Popen:
    command = [node_executable(), "--ros-args", "--params-file", str(REPO_ROOT / "config" / "silk_vo.yaml"), *arguments]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **environment)
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


class NodeProcess:
    """A ``silk_vo_node`` subprocess whose output is read as it comes (to wait for a line, and to keep its pipe
    drained)."""

    def __init__(self, *arguments: str) -> None:
        self.process = start_node(*arguments)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for_line(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if any(text in line for line in self.lines):
                return True
            time.sleep(0.1)
        return any(text in line for line in self.lines)

    def output(self) -> str:
        self._reader.join(5.0 if self.process.poll() is not None else 0.0)
        return "".join(self.lines)

    def signal_and_time(self, number: int, timeout: float = 30.0) -> tuple[int | None, float]:
        """Send ``number``; (exit code, seconds from the signal to the exit)."""
        started = time.monotonic()
        self.process.send_signal(number)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return None, time.monotonic() - started
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


#: The node's own shutdown: from its signal handler to the node destroyed, as it logs it.
SHUTDOWN_LIMIT_S = 1.0
#: The wall clock from the signal to the process's exit: before ``ros2 launch`` escalates (its ``sigterm_timeout``,
#: 5 s, then SIGKILL).  On two loaded cores with four nodes, two of them busy, one exit took 3.1 s after a logged
#: 99 ms (session 27: CPU starvation of the dying process, not the node's shutdown, which this limit once
#: confused); the old teardown took ~10 s.
EXIT_LIMIT_S = 5.0


def test_sigint_and_sigterm_shut_down_in_under_a_second_busy_or_idle(ros, frames):
    """Issue 15 item 3: an ERROR traceback on every Ctrl-C, ~10 s to exit, sometimes SIGKILL or SIGABRT.  Four
    nodes at once, each in its own namespace: two idle, two busy with SiLK on frames fed over DDS, then SIGINT or
    SIGTERM to each: exit code 0, no traceback, no ERROR, the node's own shutdown well under a second and the
    process gone before ros2 launch would escalate."""
    from nav_msgs.msg import Odometry

    remap_camera = ["-r", "image:=/image", "-r", "camera_info:=/camera_info"]
    nodes = {
        (kind, name): NodeProcess(
            *weights_arguments(), "-p", "threads:=1", "-r", f"__ns:=/{kind}_{name.lower()}",
            *(remap_camera if kind == "busy" else []),
        )
        for kind in ("busy", "idle")
        for name in ("SIGINT", "SIGTERM")
    }
    harness = NodeHarness()  # best effort, like a camera driver: /image and /camera_info
    odometry = {name: [] for name in ("SIGINT", "SIGTERM")}
    for name, received in odometry.items():
        harness.create_subscription(
            Odometry, f"/busy_{name.lower()}/silk_vo_node/odometry", lambda msg, r=received: r.append(msg), 100
        )
    executor, thread = spin_in_background(harness)
    feeding = threading.Event()

    def feed() -> None:
        i = 0
        while not feeding.is_set():
            frame = frames[i % len(frames)]
            stamp = conv.seconds_to_stamp(STAMP0 + 0.1 * i)
            harness.publish_camera_info(frame.camera, stamp)
            harness.publish_frame(frame.image, stamp)
            i += 1
            time.sleep(0.1)

    feeder = threading.Thread(target=feed, daemon=True)
    results = {}
    try:
        for node in nodes.values():
            assert node.wait_for_line("silk_vo_node ready", 180.0), node.output()
        feeder.start()
        assert harness.wait_for(lambda: all(len(r) >= 3 for r in odometry.values()), 120.0), {
            name: len(r) for name, r in odometry.items()
        }
        for (kind, name), node in nodes.items():
            if kind == "busy":  # processing right now: its odometry keeps coming
                count = len(odometry[name])
                assert harness.wait_for(lambda n=name, c=count: len(odometry[n]) > c, 30.0)
            results[(kind, name)] = node.signal_and_time(getattr(signal, name))
    finally:
        feeding.set()
        feeder.join(5.0) if feeder.is_alive() else None
        executor.shutdown()
        thread.join(5.0)
        harness.destroy_node()
        for node in nodes.values():
            node.kill()
    for (kind, name), (code, seconds) in results.items():
        output = nodes[(kind, name)].output()
        where = f"{kind} {name}: exit {code} after {seconds:.3f} s\n{output[-3000:]}"
        assert code == 0, where
        assert "Traceback" not in output and "ERROR" not in output and "FATAL" not in output, where
        logged = re.search(rf"shut down on {name} in (\d+) ms", output)
        assert logged and int(logged.group(1)) < SHUTDOWN_LIMIT_S * 1e3, where
        assert seconds < EXIT_LIMIT_S, where
        print(f"{kind} {name}: node {logged.group(1)} ms, exit {seconds * 1e3:.0f} ms after the signal")


def test_every_start_up_failure_is_one_fatal_line_and_exit_1(tmp_path):
    """Issue 15 items 4 and 5: a bad configuration printed the FATAL line, then an unrelated traceback
    (AttributeError: 'SilkVoNode' object has no attribute '_stop'); an empty odom_frame was accepted."""
    empty_frame = tmp_path / "empty_frame.yaml"
    empty_frame.write_text('/**:\n  ros__parameters:\n    odom_frame: ""\n')
    cases = {
        "choice": (["-p", "mode:=stereo"], ["mode: 'stereo' is not one of ['auto', 'mono', 'rgbd']"]),
        "range": (["-p", "top_k:=5"], ["top_k: 5 is out of range, allowed [10, 10000]"]),
        "cross-field": (["-p", "depth_min:=30.0"], ["depth_min (30.0 m) must be below depth_max (20.0 m)"]),
        "frames": (["-p", "base_frame:=odom"], ["odom_frame and base_frame must differ"]),
        "empty frame": (["--params-file", str(empty_frame)], ["odom_frame must name a frame"]),
        "weights": (["-p", "weights:=/nonexistent/silk.pt"], ["/nonexistent/silk.pt"]),
        "ROS arguments": (["--params-file", "/nonexistent/params.yaml"], ["invalid ROS arguments"]),
    }
    # These nodes never exchange messages: UDP only keeps seven simultaneous participants off Fast DDS's
    # shared-memory transport, whose start-up hung one of them once (stale /dev/shm segments of killed runs,
    # eProsima/Fast-DDS#1144; session-13 note).
    udp_only = {"FASTDDS_BUILTIN_TRANSPORTS": "UDPv4"}
    processes = {name: start_node(*arguments, **udp_only) for name, (arguments, _) in cases.items()}
    try:
        for name, process in processes.items():
            output, _ = process.communicate(timeout=300.0)  # each must exit by itself
            fatal = [line for line in output.splitlines() if "FATAL" in line]
            assert process.returncode == 1, (name, output)
            assert "Traceback" not in output and len(fatal) == 1, (name, output)
            for text in cases[name][1]:
                assert text in fatal[0], (name, fatal[0])
            assert "cannot start" in fatal[0]
    finally:  # a failed case must not leave nodes running (one hung once in DDS start-up: see the session-13 note)
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.communicate()


def test_unknown_parameters_are_warned_with_the_nearest_names(ros, tmp_path):
    """Issue 15 item 5: a misspelt key in a params file or with -p was silently ignored."""
    params = tmp_path / "typo.yaml"
    params.write_text("/**:\n  ros__parameters:\n    top_kk: 500\n")
    other_node = tmp_path / "other_node.yaml"  # a misspelt node name: rclpy applies none of it, silently
    other_node.write_text("/silk_vo:\n  ros__parameters:\n    top_k: 500\n")
    node = NodeProcess(
        *weights_arguments(), "--params-file", str(params), "--params-file", str(other_node),
        "-p", "qos_relaibility:=reliable",
    )
    try:
        assert node.wait_for_line("silk_vo_node ready", 180.0), node.output()
        code, _ = node.signal_and_time(signal.SIGINT)
    finally:
        node.kill()
    output = node.output()
    warnings = [line for line in output.splitlines() if "[WARN]" in line and "is no setting" in line]
    assert len(warnings) == 2, output
    assert any("'top_kk'" in w and "did you mean 'top_k'" in w for w in warnings), warnings
    assert any("'qos_relaibility'" in w and "did you mean 'qos_reliability'" in w for w in warnings), warnings
    assert f"params file {other_node}: none of its sections ['/silk_vo'] applies to /silk_vo_node" in output, output
    assert str(params) not in output  # its top_kk reached the node (and was warned about above)
    assert code == 0
