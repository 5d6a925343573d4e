"""`silk-vo bag eval --realtime`: play a bag over DDS to a real silk_vo_node process and record what it publishes.

Why a player of our own rather than `ros2 bag play`: the project's rclpy comes from PyPI without the ros2 CLI,
and the evaluation needs to know exactly which frames went out and when. The player

* starts ``silk_vo_node`` as a subprocess with the user's params file (plus ``use_sim_time``), on a private DDS
  domain and in a namespace of its own, so concurrent runs and tests never hear each other;
* publishes ``/clock`` from its own clock (bag time advancing at ``rate`` x wall time) and the bag's image,
  camera-info and depth messages, unchanged (CDR bytes straight from the bag), at ``rate`` x real time;
* records the node's ``~/odometry`` and ``~/relative_pose`` into a new rosbag2 (mcap, via rosbags) as they arrive.

Frames the node drops because it is busy (live mode keeps only the newest frame) simply have no odometry: the
report counts them. The recorded odometry (odom <- base_link) is turned back into T_world_cam of the optical frame
with the node's ``base_from_camera`` extrinsics so it is evaluated exactly like the deterministic replay.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped
from nav_msgs.msg import Odometry
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import StoragePlugin, Writer
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from tqdm import tqdm

from silk_ros.bagio import messages as m
from silk_ros.bagio.errors import BagError
from silk_ros.geometry.trajectory import Trajectory
from silk_ros.odometry.config import uses_depth
from silk_ros.ros import conversions as conv
from silk_ros.ros.harness import camera_info_message
from silk_ros.ros.topics import NODE_NAME
from silk_ros.settings import DEFAULT_NODE_PARAMS, Settings, load, to_ros_values

__all__ = ["replay_realtime"]

_ROS_TYPES = {m.IMAGE: Image, m.COMPRESSED_IMAGE: CompressedImage, m.CAMERA_INFO: CameraInfo}
#: wall seconds between /clock messages while waiting for the next bag message.
CLOCK_PERIOD_S = 0.01
#: after the last frame, stop waiting once the node has been silent this long (wall seconds).
DRAIN_IDLE_S = 10.0


def node_params_file(
    params: Path | None, overrides: dict, has_depth: bool, compressed: bool, out: Path
) -> tuple[Path, Settings]:
    """The node's params file for this run and the settings it holds: the user's file (or config/silk_vo.yaml) with
    the --set overrides, sim time, the bag's image transport, and the mode resolved as the deterministic replay
    resolves it (rgbd exactly when the bag has depth and the settings do not ignore it)."""
    source = Path(params if params is not None else DEFAULT_NODE_PARAMS)
    # No params file at all (installed without the source tree): the defaults apply.
    settings = load(source if source.is_file() else None, overrides)
    odometry = settings.odometry
    mode = "rgbd" if uses_depth(odometry.mode, has_depth, odometry.depth_scale) else "mono"
    settings = replace(settings, odometry=settings.odometry.replace(mode=mode))
    values = {**to_ros_values(settings), "use_sim_time": True}
    values["image_transport"] = "compressed" if compressed else "raw"
    path = out / "silk_vo_params.yaml"
    # "/**": the node runs in a namespace of its own (see replay_realtime), so match it by wildcard.
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": values}}, sort_keys=False))
    return path, settings


class _Recorder:
    """Writes the node's odometry and per-frame relative poses into a rosbag2 (mcap) and keeps what the
    evaluation needs: poses, arrival times, and each frame's own covariance (LOST frames say so there)."""

    def __init__(self, bag_dir: Path, odometry_topic: str, relative_topic: str):
        self.writer = Writer(bag_dir, version=9, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        store = m.typestore()
        self.odometry_connection = self.writer.add_connection(odometry_topic, m.ODOMETRY, typestore=store)
        self.relative_connection = self.writer.add_connection(
            relative_topic, m.POSE_WITH_COVARIANCE_STAMPED, typestore=store
        )
        self.diagnostics_connection = self.writer.add_connection(
            "/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", typestore=store
        )
        self.node_figures: dict[str, str] = {}  # the node's latest self-reported figures (/diagnostics)
        self.lock = threading.Lock()
        self.stamps: list[float] = []
        self.poses: list[np.ndarray] = []
        self.received_wall: list[float] = []
        self.frame_variance: dict[float, float] = {}  # stamp -> largest translation variance of the frame itself
        self.last_wall = time.monotonic()

    def _write(self, connection, msg) -> None:
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        self.writer.write(connection, stamp_ns, bytes(serialize_message(msg)))

    def on_odometry(self, msg: Odometry) -> None:
        now = time.monotonic()
        with self.lock:
            self._write(self.odometry_connection, msg)
            self.stamps.append(conv.stamp_to_seconds(msg.header.stamp))
            self.poses.append(conv.pose_to_matrix(msg.pose.pose))
            self.received_wall.append(now)
            self.last_wall = now

    def on_relative_pose(self, msg: PoseWithCovarianceStamped) -> None:
        with self.lock:
            self._write(self.relative_connection, msg)
            variance = float(np.max(np.asarray(msg.pose.covariance)[[0, 7, 14]]))
            self.frame_variance[round(conv.stamp_to_seconds(msg.header.stamp), 6)] = variance

    def on_diagnostics(self, msg: DiagnosticArray) -> None:
        ours = [status for status in msg.status if status.hardware_id and status.name.startswith(NODE_NAME)]
        if not ours:
            return
        with self.lock:
            self._write(self.diagnostics_connection, msg)  # stamped with the node's last frame (bag time)
            self.node_figures = {value.key: value.value for value in ours[-1].values}

    def close(self) -> None:
        with self.lock:
            self.writer.close()


def _start_node(params_file: Path, remaps: list[str], domain_id: int, log_path: Path) -> subprocess.Popen:
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id), PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "silk_ros.ros.node", "--ros-args", "--params-file", str(params_file)]
    for remap in remaps:
        command += ["-r", remap]
    log = open(log_path, "w")  # noqa: SIM115 - closed by the caller through the process lifetime
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _stop_node(process: subprocess.Popen) -> int | None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    return process.returncode


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no node log)"


def replay_realtime(
    source,
    params: Path | None,
    overrides: dict,
    rate: float = 1.0,
    node_timeout: float = 60.0,
    progress: bool = True,
):
    """Play ``source`` (an open BagSource) to a fresh silk_vo_node at ``rate`` x real time.

    Returns ``(trajectory T_world_cam, stats)`` like ``run_sequence``; stats add published_images,
    received_odometry, dropped_frames, end-to-end latency, and the paths of the recorded bag, the node's log and
    params file in a temporary folder (``work_dir``) that the caller moves into its report and then removes; on an
    error the folder stays, for the log the error message names.
    """
    work = Path(tempfile.mkdtemp(prefix="silk_vo_realtime_"))
    compressed = m.short_type(source.image_connections[0].msgtype) == m.short_type(m.COMPRESSED_IMAGE)
    params_file, settings = node_params_file(params, overrides, bool(source.depth_index), compressed, work)
    base_cam = settings.node.base_from_camera_matrix()
    lost_variance = settings.odometry.lost_variance
    # Isolation from anything else on this machine: a domain outside the ranges the node tests and benchmarks
    # draw from (1-200), and a namespace of our own for every topic but /clock.
    chooser = random.Random(os.getpid() ^ time.time_ns())
    domain_id = chooser.randrange(201, 233)
    namespace = f"/silk_bag_eval_{os.getpid()}_{chooser.randrange(16**6):06x}"
    inputs = {
        "image": f"{namespace}/{'image/compressed' if compressed else 'image'}",
        "camera_info": f"{namespace}/camera_info",
        "depth": f"{namespace}/depth",
    }
    odometry_topic = f"{namespace}/{NODE_NAME}/odometry"
    relative_topic = f"{namespace}/{NODE_NAME}/relative_pose"

    log_path = work / "silk_vo_node.log"
    process = _start_node(params_file, [f"__ns:={namespace}"], domain_id, log_path)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    # Recorded under the node's usual names (what `ros2 bag record` of a normal launch would hold).
    recorder = _Recorder(work / "recorded", f"/{NODE_NAME}/odometry", f"/{NODE_NAME}/relative_pose")
    executor = SingleThreadedExecutor(context=context)
    try:
        node = rclpy.create_node("silk_vo_bag_player", context=context)
        executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        publishers = {
            "image": node.create_publisher(CompressedImage if compressed else Image, inputs["image"], reliable),
            "camera_info": node.create_publisher(CameraInfo, inputs["camera_info"], reliable),
        }
        if settings.odometry.mode == "rgbd" or settings.odometry.depth_scale:  # the node subscribes to depth then
            publishers["depth"] = node.create_publisher(Image, inputs["depth"], reliable)
        clock = node.create_publisher(Clock, "/clock", reliable)
        node.create_subscription(Odometry, odometry_topic, recorder.on_odometry, QoSProfile(depth=100))
        node.create_subscription(
            PoseWithCovarianceStamped, relative_topic, recorder.on_relative_pose, QoSProfile(depth=100)
        )
        node.create_subscription(DiagnosticArray, "/diagnostics", recorder.on_diagnostics, QoSProfile(depth=10))
        _wait_for_node(node, process, publishers, odometry_topic, recorder, source, node_timeout, log_path)
        published = _play(source, publishers, clock, rate, progress)
        _drain(recorder, process, published, node_timeout)
    finally:
        executor.shutdown(timeout_sec=2.0)
        rclpy.try_shutdown(context=context)
        recorder.close()
        return_code = _stop_node(process)
    if not recorder.stamps:
        received = recorder.node_figures.get("frames_received", "?")
        hint = (
            " (the images never arrived: with qos_reliability best_effort, DDS drops large images when the machine"
            " is overloaded; --set qos_reliability=reliable keeps the live newest-frame behaviour without it)"
            if received == "0"
            else ""
        )
        raise BagError(
            f"silk_vo_node published no odometry for {len(published)} frames; by its /diagnostics it received "
            f"{received} images{hint} (exit code {return_code}); its log ends:\n{_log_tail(log_path)}"
        )
    trajectory, stats = _trajectory_and_stats(recorder, published, base_cam, work, rate, lost_variance)
    return trajectory, {**stats, "node_params": str(params_file), "work_dir": str(work)}


def _wait_for_node(node, process, publishers, odometry_topic, recorder, source, timeout: float, log_path) -> None:
    """Until the node is ready and both data paths work: it subscribes to every input, offers its odometry, and
    its /diagnostics confirm it received our CameraInfo (graph discovery alone can run ahead of the data path
    on a loaded machine, and frames sent before it would be lost to discovery, not to the node)."""
    deadline = time.monotonic() + timeout
    graph_ready = False
    info = camera_info_message(source.camera_for(0), Header(stamp=conv.seconds_to_stamp(source.image_stamps[0])))
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BagError(
                f"silk_vo_node exited with code {process.returncode} before it was ready; its log ends:\n"
                f"{_log_tail(log_path)}"
            )
        if not graph_ready:
            inputs_ready = all(p.get_subscription_count() > 0 for p in publishers.values())
            graph_ready = inputs_ready and node.count_publishers(odometry_topic) > 0
        else:
            with recorder.lock:
                confirmed = recorder.node_figures.get("camera_info_received") == "True"
            if confirmed:
                return
            publishers["camera_info"].publish(info)
        time.sleep(0.1)
    raise BagError(
        f"silk_vo_node was not ready within {timeout:.0f} s (graph {'ready' if graph_ready else 'not ready'}, "
        f"camera_info not confirmed in /diagnostics); its log ends:\n{_log_tail(log_path)}"
    )


def _play(source, publishers, clock, rate: float, progress: bool) -> list[tuple[float, float]]:
    """Publish in bag order at ``rate`` x real time with /clock; returns (image stamp s, publish wall) per image."""
    published: list[tuple[float, float]] = []
    first_log = None
    start_wall = time.monotonic()
    bar = tqdm(total=len(source.image_index), desc=f"play x{rate:g}", unit="frame", disable=not progress)
    camera_override = source.override_camera
    for role, msgtype, log_ns, data in source.raw_stream():
        first_log = log_ns if first_log is None else first_log
        due = start_wall + (log_ns - first_log) * 1e-9 / rate
        while (now := time.monotonic()) < due:
            _publish_clock(clock, first_log + int((now - start_wall) * rate * 1e9))
            time.sleep(min(CLOCK_PERIOD_S, due - now))
        _publish_clock(clock, log_ns)
        msg = deserialize_message(data, _ROS_TYPES[msgtype])
        publishers[role].publish(msg)
        if role == "image":
            if camera_override is not None:
                publishers["camera_info"].publish(camera_info_message(camera_override, msg.header))
            published.append((conv.stamp_to_seconds(msg.header.stamp), time.monotonic()))
            bar.update(1)
    bar.close()
    return published


def _publish_clock(clock, ns: int) -> None:
    msg = Clock()
    msg.clock.sec, msg.clock.nanosec = ns // 1_000_000_000, ns % 1_000_000_000
    clock.publish(msg)


def _drain(recorder: _Recorder, process, published, timeout: float) -> None:
    """Wait for the odometry of the last frame, or until the node has been quiet for DRAIN_IDLE_S."""
    last_stamp = published[-1][0] if published else None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with recorder.lock:
            done = bool(recorder.stamps) and abs(recorder.stamps[-1] - last_stamp) < 1e-6
            idle = time.monotonic() - max(recorder.last_wall, published[-1][1] if published else 0) > DRAIN_IDLE_S
        if done or idle:
            return
        time.sleep(0.05)


def _trajectory_and_stats(
    recorder: _Recorder, published, base_cam: np.ndarray, work: Path, rate: float, lost_variance: float
):
    sent = {round(stamp, 6): wall for stamp, wall in published}
    stamps = np.asarray(recorder.stamps)
    order = np.argsort(stamps, kind="stable")
    first_of_stamp = order[np.concatenate([[True], np.diff(stamps[order]) > 0])]
    keep = [i for i in first_of_stamp if round(recorder.stamps[i], 6) in sent]  # only answers to our frames
    if not keep:
        raise BagError(
            f"silk_vo_node answered none of the {len(published)} frames played; see its log {work / 'silk_vo_node.log'}"
        )
    cam_base = np.linalg.inv(base_cam)
    poses = np.array([cam_base @ recorder.poses[i] @ base_cam for i in keep])  # odom<-base -> world<-camera
    trajectory = Trajectory(stamps[keep], poses.reshape(-1, 4, 4))
    latency = [(recorder.received_wall[i] - sent[round(recorder.stamps[i], 6)]) * 1e3 for i in keep]
    # A LOST frame's covariance is lost_variance on every axis (huge, finite): the odometry says so itself.
    lost = sum(variance >= 0.5 * lost_variance for stamp, variance in recorder.frame_variance.items() if stamp in sent)
    stats = {
        "frames": len(published),
        "published_images": len(published),
        "received_odometry": len(keep),
        "dropped_frames": len(published) - len(keep),
        "lost_frames": lost,
        # Stage latencies seen from outside: publish -> odometry back (end to end, DDS included), and the node's
        # own mean processing and receive -> publish latency from its last /diagnostics report.
        "timings_ms": {"end_to_end": latency, **_node_timings(recorder.node_figures)},
        "node_diagnostics": recorder.node_figures,
        "latency_ms": {
            "mean": float(np.mean(latency)) if latency else None,
            "p95": float(np.percentile(latency, 95)) if latency else None,
        },
        "rate": rate,
        "recorded_bag": str(work / "recorded"),
        "node_log": str(work / "silk_vo_node.log"),
    }
    return trajectory, stats


def _node_timings(figures: dict[str, str]) -> dict[str, float]:
    out = {}
    for key, stage in (("processing_ms_mean", "node_processing"), ("latency_ms_mean", "node_latency")):
        try:
            out[stage] = float(figures[key])
        except (KeyError, ValueError):
            pass
    return out
