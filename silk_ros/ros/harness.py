"""A peer node that feeds silk_vo_node camera frames and records everything it publishes.

Why here (and not in test/): the DDS tests and ``silk-vo bench node`` drive the node the same way,
through real topics: a camera-like publisher (raw, compressed or RGB-D, best effort by default) and
subscribers on every output.  Nothing is mocked: the harness is an ordinary rclpy node.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from silk_ros.ros import conversions as conv
from silk_ros.ros.topics import OUTPUTS

try:
    from tf2_msgs.msg import TFMessage
except ImportError:
    TFMessage = None

__all__ = ["NodeHarness", "camera_info_message", "spin_in_background"]


def camera_info_message(camera, header: Header) -> CameraInfo:
    """Camera -> CameraInfo (plumb_bob with zeros for an undistorted camera, as drivers publish)."""
    info = camera.to_camera_info()
    return CameraInfo(
        header=header,
        width=info["width"],
        height=info["height"],
        distortion_model=info["distortion_model"],
        d=list(info["d"]),
        k=list(info["k"]),
        r=list(info["r"]),
        p=list(info["p"]),
    )


class NodeHarness(Node):
    """Publishes ``<camera>/image`` (or ``image/compressed``), ``camera_info``, ``depth``; records outputs."""

    def __init__(
        self,
        vo_node: str = "/silk_vo_node",
        camera_namespace: str = "",
        compressed: bool = False,
        rgbd: bool = False,
        reliable: bool = False,
        debug_image: bool = True,
        history: int = 5,
    ) -> None:
        super().__init__("silk_vo_harness")
        qos = qos_profile_sensor_data
        if reliable:
            qos = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=history)
        prefix = camera_namespace.rstrip("/")

        def topic(name: str) -> str:
            return f"{prefix}/{name}" if prefix else name

        self.compressed = compressed
        if compressed:
            self.image_pub = self.create_publisher(CompressedImage, topic("image/compressed"), qos)
        else:
            self.image_pub = self.create_publisher(Image, topic("image"), qos)
        self.info_pub = self.create_publisher(CameraInfo, topic("camera_info"), qos)
        self.depth_pub = self.create_publisher(Image, topic("depth"), qos) if rgbd else None

        self._lock = threading.Lock()
        self.received: dict[str, list[tuple[float, object]]] = collections.defaultdict(list)
        outputs_qos = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=100)
        for name, msg_type in OUTPUTS.items():
            if name == "debug_image" and not debug_image:
                continue
            self.create_subscription(msg_type, f"{vo_node}/{name}", self._recorder(name), outputs_qos)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._recorder("diagnostics"), outputs_qos)
        if TFMessage is not None:
            self.create_subscription(TFMessage, "/tf", self._recorder("tf"), outputs_qos)
        self.reset_client = self.create_client(Trigger, f"{vo_node}/reset")

    def _recorder(self, name: str) -> Callable:
        def record(msg) -> None:
            with self._lock:
                self.received[name].append((time.monotonic(), msg))

        return record

    # ----------------------------------------------------------------------------------------- feeding
    def publish_camera_info(self, camera, stamp, frame_id: str = "camera_optical_frame") -> None:
        self.info_pub.publish(camera_info_message(camera, Header(stamp=stamp, frame_id=frame_id)))

    def publish_frame(
        self,
        image: np.ndarray,
        stamp,
        depth: np.ndarray | None = None,
        encoding: str | None = None,
        frame_id: str = "camera_optical_frame",
        depth_gap: float = 0.0,
    ) -> None:
        """Publish one image (and its depth as 32FC1 metres, or as given when already uint16 millimetres).

        ``depth_gap`` seconds pass between image and depth: over UDP with the default 208 KiB socket buffers,
        a 320x240 colour + depth burst (~540 KB) overflows the receiver's buffer and best effort loses it.
        """
        header = Header(stamp=stamp, frame_id=frame_id)
        if self.compressed:
            self.image_pub.publish(conv.numpy_to_compressed(image, "jpeg", header))
        else:
            encoding = encoding or ("bgr8" if image.ndim == 3 else "mono8")
            self.image_pub.publish(conv.numpy_to_image(image, encoding, header))
        if depth is not None and self.depth_pub is not None:
            if depth_gap > 0:
                time.sleep(depth_gap)
            if depth.dtype == np.uint16:
                self.depth_pub.publish(conv.numpy_to_image(depth, "16UC1", header))
            else:
                clean = np.nan_to_num(depth.astype(np.float32), nan=0.0)
                self.depth_pub.publish(conv.numpy_to_image(clean, "32FC1", header))

    # ---------------------------------------------------------------------------------------- reading
    def messages(self, name: str) -> list:
        with self._lock:
            return [msg for _, msg in self.received[name]]

    def timed(self, name: str) -> list[tuple[float, object]]:
        with self._lock:
            return list(self.received[name])

    def count(self, name: str) -> int:
        with self._lock:
            return len(self.received[name])

    def clear(self) -> None:
        with self._lock:
            self.received.clear()

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return predicate()

    def wait_for_subscribers(self, timeout: float = 10.0) -> bool:
        """True once the node's image, camera_info (and depth) subscriptions are matched (DDS discovery done)."""
        publishers = [p for p in (self.image_pub, self.info_pub, self.depth_pub) if p is not None]
        return self.wait_for(lambda: all(p.get_subscription_count() > 0 for p in publishers), timeout)

    def latest_diagnostics(self) -> dict[str, str]:
        """Key/values of the newest /diagnostics status from silk_vo_node ({} if none yet)."""
        for array in reversed(self.messages("diagnostics")):
            for status in array.status:
                if status.name.startswith("silk_vo_node"):
                    values = {kv.key: kv.value for kv in status.values}
                    level = status.level
                    values["_level"] = str(level[0] if isinstance(level, bytes) else int(level))
                    values["_message"] = status.message
                    return values
        return {}

    def call_reset(self, timeout: float = 10.0) -> Trigger.Response | None:
        if not self.reset_client.wait_for_service(timeout_sec=timeout):
            return None
        future = self.reset_client.call_async(Trigger.Request())
        self.wait_for(future.done, timeout)
        return future.result() if future.done() else None


def spin_in_background(*nodes: Node, threads: int = 4) -> tuple[MultiThreadedExecutor, threading.Thread]:
    """Spin ``nodes`` on a multi-threaded executor in a daemon thread (stop with ``executor.shutdown()``)."""
    executor = MultiThreadedExecutor(num_threads=threads)
    for node in nodes:
        executor.add_node(node)
    thread = threading.Thread(target=_spin, args=(executor,), daemon=True)
    thread.start()
    return executor, thread


def _spin(executor: MultiThreadedExecutor) -> None:
    try:
        executor.spin()
    except Exception:  # noqa: BLE001 - shutdown races end the spin; the owner checks results itself
        if rclpy.ok():
            raise
