"""``silk_vo_node``: ROS 2 wiring around :class:`silk_ros.odometry.VisualOdometry`.

Topics (relative names: remap or push into a namespace from the launch file)

=========================  ===========================================  =========================================
subscribed                 type                                         notes
=========================  ===========================================  =========================================
``image``                  sensor_msgs/Image                            mono8, mono16, bgr8, rgb8, bgra8, rgba8
``image/compressed``       sensor_msgs/CompressedImage                  when ``image_transport: compressed``
``camera_info``            sensor_msgs/CameraInfo                       frames wait (never guessed intrinsics)
``depth``                  sensor_msgs/Image                            ``mode: rgbd``; 16UC1 mm or 32FC1 m,
                                                                        paired with the image by stamp
=========================  ===========================================  =========================================

Published: ``~/keypoints`` (PointCloud2 fields u, v, score: pixels of the input image; plus x, y, z: the
viewing ray at unit depth in the camera optical frame, for RViz), ``~/matches``
(PointCloud2 fields u0, v0, u1, v1, confidence: keyframe pixel -> current pixel), ``~/relative_pose``
(PoseWithCovarianceStamped, frame = camera optical frame: T_prev_cur, previous processed frame -> current;
covariance: this frame's pose relative to its keyframe), ``~/odometry`` (nav_msgs/Odometry odom_frame ->
base_frame, REP-105), ``~/path`` (nav_msgs/Path, ``path_length`` newest poses), ``~/debug_image`` (only
built while subscribed), ``/diagnostics``, and odom_frame -> base_frame on ``/tf``.  Every stamp is
the image's header stamp.  Service ``~/reset`` (std_srvs/Trigger) restarts the odometry.

Odometry frames: the VO estimates T_world_cam of the camera *optical* frame, world = the first camera.
With the extrinsics ``T_base_cam`` (from TF when available, else the ``base_from_camera`` parameter,
default the pure optical->body rotation), ``T_odom_base = T_base_cam @ T_world_cam @ inv(T_base_cam)``:
odom is where base_frame was at the first frame.  That geometry (covariance propagation, twist, keypoints in
input pixels) is ROS-free, in ``silk_ros.odometry.output_geometry``; this module is the ROS wiring.

Threading: callbacks only hand messages to a buffer (newest-frame slot, or a bounded blocking queue
with ``process_every_frame``); one worker thread decodes, runs the odometry and publishes.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
import traceback
from typing import Any

import numpy as np
import rclpy
import rclpy.time
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped, TwistWithCovariance
from nav_msgs.msg import Odometry, Path
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from silk_ros.geometry.camera import Camera
from silk_ros.odometry.metric_scale import units_note
from silk_ros.odometry.output_geometry import BaseFrameOdometry, BaseTwist, base_twist, to_input_pixels, viewing_rays
from silk_ros.odometry.vo import VisualOdometry
from silk_ros.ros import conversions as conv
from silk_ros.ros.debug_image import draw_debug_image
from silk_ros.ros.diagnostics import NodeStats
from silk_ros.ros.frame_buffer import DepthPairer, FrameQueue, LatestFrameSlot
from silk_ros.ros.parameters import NODE_PARAMETERS, descriptor
from silk_ros.ros.topics import NODE_NAME, OUTPUTS
from silk_ros.schema import ConfigError
from silk_ros.settings import Settings, check_choice, from_ros_values

try:  # real ROS install: TF broadcasting and extrinsics lookup
    import tf2_ros
except ImportError:  # pip-installed rclpy: no tf2_ros
    tf2_ros = None
try:  # without tf2_ros, /tf can still be published as a plain topic when the message type exists
    from tf2_msgs.msg import TFMessage
except ImportError:
    TFMessage = None
try:
    from cv_bridge import CvBridge
except ImportError:
    CvBridge = None

__all__ = ["SilkVoNode", "main"]


@dataclasses.dataclass
class _PendingFrame:
    colour: Image | CompressedImage
    depth: Image | None
    received: float  # time.monotonic() at the callback: latency measurement


class SilkVoNode(Node):
    """Subscribes camera topics, runs the VO in a worker thread, publishes odometry and its by-products."""

    def __init__(self, **node_options: Any) -> None:
        super().__init__(NODE_NAME, **node_options)
        self.settings: Settings = self._declare_parameters()
        self.stats = NodeStats()
        self.config = self.settings.odometry
        self.vo = VisualOdometry(self.config)
        self._vo_lock = threading.Lock()
        # auto and mono: no depth topic, unless depth_scale scales the monocular odometry with it
        self._rgbd = self.config.mode == "rgbd" or self.config.depth_scale
        wiring = self.settings.node

        # Odometry state owned by the worker (guarded by _vo_lock).
        self._camera: Camera | None = None
        self._camera_info_key: tuple | None = None
        self._last_stamp: float | None = None
        self._last_size: tuple[int, int] | None = None
        self._output = BaseFrameOdometry()  # carries the current keyframe's covariance
        self._path: collections.deque = collections.deque(maxlen=wiring.path_length)
        self._extrinsics_from_tf: np.ndarray | None = None
        self._last_stamp_msg = None
        self._last_state = "WAITING"

        if wiring.process_every_frame:
            self._buffer: LatestFrameSlot | FrameQueue = FrameQueue(wiring.queue_size)
        else:
            self._buffer = LatestFrameSlot()
        self._pairer = DepthPairer(wiring.depth_sync_tolerance) if self._rgbd else None
        self._bridge = CvBridge() if CvBridge is not None else None

        self._create_interfaces()
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name="silk_vo_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"silk_vo_node ready: mode {self.config.mode}, transport {wiring.image_transport}, "
            f"features {self.config.extractor.features} ({self._backend()}), matcher {self.config.matching.matcher} "
            f"(keyframes: {self.config.matching.keyframe_matcher}), "
            f"{'every frame (queue)' if wiring.process_every_frame else 'newest frame only'}, "
            f"tf: {self._tf_status}"
        )
        metric, units = units_note(self.config.mode == "rgbd", self.config.camera_height, self.config.depth_scale)
        (self.get_logger().info if metric else self.get_logger().warning)(units)

    # ------------------------------------------------------------------------------------------- set-up
    def _declare_parameters(self) -> Settings:
        """Every setting of the table as a parameter with its descriptor; their values as typed settings."""
        values = {}
        for row in NODE_PARAMETERS:
            value = self.declare_parameter(row.name, row.ros_default, descriptor(row)).value
            problem = check_choice(row, value)
            if problem:
                raise ValueError(problem)
            values[row.name] = value
        return from_ros_values(values)

    def _create_interfaces(self) -> None:
        p = self.settings.node
        reliable = p.qos_reliability == "reliable"
        reliability = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
        input_qos = QoSProfile(
            reliability=reliability,
            history=HistoryPolicy.KEEP_LAST,
            depth=p.qos_depth,
            durability=DurabilityPolicy.VOLATILE,
        )
        # The image callback may block (process_every_frame): it gets its own group, everything else
        # (camera_info, depth, reset, diagnostics) stays served by the executor's other threads.
        image_group = MutuallyExclusiveCallbackGroup()
        other_group = ReentrantCallbackGroup()
        if p.image_transport == "compressed":
            self.create_subscription(
                CompressedImage, "image/compressed", self._on_image, input_qos, callback_group=image_group
            )
        else:
            self.create_subscription(Image, "image", self._on_image, input_qos, callback_group=image_group)
        self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, input_qos, callback_group=other_group)
        if self._rgbd:
            self.create_subscription(Image, "depth", self._on_depth, input_qos, callback_group=image_group)

        publishers = {name: self.create_publisher(kind, f"~/{name}", 10) for name, kind in OUTPUTS.items()}
        self._keypoints_pub, self._matches_pub = publishers["keypoints"], publishers["matches"]
        self._relative_pub, self._odometry_pub = publishers["relative_pose"], publishers["odometry"]
        self._path_pub, self._debug_pub = publishers["path"], publishers["debug_image"]
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_service(Trigger, "~/reset", self._on_reset, callback_group=other_group)

        self._tf_broadcaster = None
        self._tf_publisher = None
        self._tf_buffer = None
        if tf2_ros is not None:
            self._tf_broadcaster = tf2_ros.TransformBroadcaster(self)
            if p.use_tf_extrinsics:
                self._tf_buffer = tf2_ros.Buffer()
                self._tf_listener = tf2_ros.TransformListener(self._tf_buffer, self)
            self._tf_status = "tf2_ros"
        elif TFMessage is not None:
            self._tf_publisher = self.create_publisher(TFMessage, "/tf", 100)
            self._tf_status = "tf2_msgs (tf2_ros not importable; extrinsics from parameter)"
        else:
            self._tf_status = "unavailable: neither tf2_ros nor tf2_msgs importable, /tf not published"
        # Diagnostics run on the steady clock: they must keep coming with use_sim_time and no /clock.
        self.create_timer(
            p.diagnostics_period,
            self._publish_diagnostics,
            callback_group=other_group,
            clock=Clock(clock_type=ClockType.STEADY_TIME),
        )

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Runtime changes of the mutable parameters (read-only ones are refused by rclpy itself)."""
        rows = {row.name: row for row in NODE_PARAMETERS}
        changes = {}
        for parameter in parameters:
            row = rows.get(parameter.name)
            if row is None:
                continue
            problem = check_choice(row, parameter.value)
            if problem:
                return SetParametersResult(successful=False, reason=problem)
            if row.section == "node":  # the odometry's settings are read-only
                changes[parameter.name] = parameter.value
        try:
            wiring = dataclasses.replace(self.settings.node, **changes)
        except ConfigError as error:
            return SetParametersResult(successful=False, reason=str(error))
        self.settings = dataclasses.replace(self.settings, node=wiring)
        if "path_length" in changes:
            with self._vo_lock:
                self._path = collections.deque(self._path, maxlen=wiring.path_length)
        if {"base_frame", "camera_frame"} & set(changes):
            self._extrinsics_from_tf = None
        return SetParametersResult(successful=True)

    def _backend(self) -> str:
        extractor = getattr(self.vo, "extractor", None)
        backend = getattr(extractor, "backend", None) or getattr(self.vo, "backend", None)
        return str(backend or self.config.extractor.features)

    # -------------------------------------------------------------------------------------- callbacks
    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            info = conv.camera_info_to_dict(msg)
            key = (info["width"], info["height"], tuple(info["k"]), tuple(info["d"]), info["distortion_model"])
            if key == self._camera_info_key:
                return
            camera = Camera.from_camera_info(info)
        except ValueError as error:  # InputError and CameraError
            self._bad_input(getattr(error, "kind", "invalid_camera_info"), f"camera_info rejected: {error}")
            return
        if self._camera is not None:
            self.get_logger().info(f"camera_info changed: {camera}")
        self._camera, self._camera_info_key = camera, key

    def _on_image(self, msg: Image | CompressedImage) -> None:
        self.stats.frame_received()
        received = time.monotonic()
        if self._pairer is None:
            self._enqueue(_PendingFrame(msg, None, received))
            return
        pair = self._pairer.add_colour(conv.stamp_to_seconds(msg.header.stamp), (msg, received))
        self._enqueue_pair(pair)

    def _on_depth(self, msg: Image) -> None:
        pair = self._pairer.add_depth(conv.stamp_to_seconds(msg.header.stamp), msg)
        self._enqueue_pair(pair)

    def _enqueue_pair(self, pair: tuple | None) -> None:
        if pair is None:
            return
        (colour, received), depth = pair
        self._enqueue(_PendingFrame(colour, depth, received))

    def _enqueue(self, frame: _PendingFrame) -> None:
        if self._buffer.put(frame):
            self.stats.frames_dropped()

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._vo_lock:
            self._reset_odometry()
        self.get_logger().info("odometry reset by service call")
        response.success = True
        response.message = "odometry reset: the next frame starts a new trajectory at the odom origin"
        return response

    # ------------------------------------------------------------------------------------------ worker
    def _work(self) -> None:
        while not self._stop.is_set():
            if self._camera is None:
                # Frames wait in the buffer (newest kept) until intrinsics arrive: never guessed.
                if len(self._buffer):
                    self.get_logger().warning(
                        "waiting for camera_info: image frames are held back", throttle_duration_sec=5.0
                    )
                time.sleep(0.05)
                continue
            frame = self._buffer.get(timeout=0.1)
            if frame is None:
                continue
            try:
                with self._vo_lock:
                    self._process(frame)
            except Exception as error:  # noqa: BLE001 - the node must survive anything a frame does
                self._bad_input("processing_error", f"{type(error).__name__}: {error}\n{traceback.format_exc()}")

    def _decode(self, frame: _PendingFrame) -> tuple[np.ndarray, np.ndarray | None]:
        colour = frame.colour
        if isinstance(colour, CompressedImage):
            array = conv.compressed_to_numpy(colour)
            encoding = "bgr8" if array.ndim == 3 else "mono16" if array.dtype == np.uint16 else "mono8"
        else:
            array, encoding = self._decode_raw(colour, conv.COLOUR_ENCODINGS), colour.encoding
        image = conv.to_vo_image(array, encoding)
        depth = None
        if frame.depth is not None:
            depth_array = self._decode_raw(frame.depth, conv.DEPTH_ENCODINGS)
            depth = conv.depth_to_metres(depth_array, frame.depth.encoding)
            if depth.shape != image.shape[:2]:
                raise conv.InputError(
                    "depth_size_mismatch",
                    f"depth is {depth.shape[1]}x{depth.shape[0]} but the image is {image.shape[1]}x{image.shape[0]}",
                )
        return image, depth

    def _decode_raw(self, msg: Image, allowed: dict) -> np.ndarray:
        if self._bridge is not None and msg.encoding in allowed:
            try:
                array = self._bridge.imgmsg_to_cv2(msg, desired_encoding="passthrough")
                if array.size and array.shape[:2] == (msg.height, msg.width):
                    return array
            except Exception:  # noqa: BLE001 - fall through to our decoder for a precise error message
                pass
        return conv.image_to_numpy(msg, allowed)

    def _process(self, frame: _PendingFrame) -> None:
        header = frame.colour.header
        stamp = conv.stamp_to_seconds(header.stamp)
        try:
            image, depth = self._decode(frame)
        except conv.InputError as error:
            self._bad_input(error.kind, str(error))
            return
        camera = self._camera
        size = (image.shape[1], image.shape[0])
        if size != (camera.width, camera.height):
            self._bad_input(
                "resolution_mismatch",
                f"image is {size[0]}x{size[1]} but camera_info says {camera.width}x{camera.height}: frame skipped",
            )
            return
        if self._last_size is not None and size != self._last_size:
            self._bad_input(
                "resolution_changed",
                f"image resolution changed from {self._last_size[0]}x{self._last_size[1]} to {size[0]}x{size[1]}: "
                "odometry reset",
            )
            self._reset_odometry()
        if self._last_stamp is not None and stamp < self._last_stamp:
            self._bad_input(
                "time_backwards",
                f"image stamp {stamp:.6f} is older than the previous {self._last_stamp:.6f} (bag looped?): "
                "odometry reset",
            )
            self._reset_odometry()
        elif self._last_stamp is not None and stamp == self._last_stamp:
            self._bad_input("duplicate_stamp", f"image stamp {stamp:.6f} repeats the previous frame's: frame skipped")
            return
        started = time.monotonic()
        result = self.vo.process(image, stamp, camera, depth)
        processing_ms = (time.monotonic() - started) * 1e3
        previous_stamp = self._last_stamp
        self._last_stamp, self._last_size = stamp, size
        self._publish(result, image, header, previous_stamp)
        self._last_state = result.state.name
        self.stats.frame_processed(
            latency_ms=(time.monotonic() - frame.received) * 1e3,
            processing_ms=processing_ms,
            tracking_state=result.state.name,
            keypoints=len(result.features),
            matches=len(result.matches.indices),
            inliers=int(result.inliers),
            keyframe=bool(result.is_keyframe),
        )

    def _reset_odometry(self) -> None:
        """Caller holds _vo_lock.  Forget the trajectory: the next frame starts at the odom origin."""
        self.vo.reset()
        self._last_stamp = None
        self._last_size = None
        self._output.reset()
        self._path.clear()
        self._last_state = "WAITING"
        if self._pairer is not None:
            self._pairer.clear()

    # -------------------------------------------------------------------------------------- publishing
    def _base_from_camera(self, camera_frame: str) -> tuple[np.ndarray, str]:
        if self._tf_buffer is not None:
            if self._extrinsics_from_tf is None:
                try:
                    t = self._tf_buffer.lookup_transform(self.settings.node.base_frame, camera_frame, rclpy.time.Time())
                    self._extrinsics_from_tf = conv.pose_to_matrix(t.transform)
                except Exception:  # noqa: BLE001 - tf2 raises several lookup exceptions; fall back below
                    pass
            if self._extrinsics_from_tf is not None:
                return self._extrinsics_from_tf, "tf"
        return self.settings.node.base_from_camera_matrix(), "parameter"

    def _publish(self, result, image: np.ndarray, image_header: Header, previous_stamp: float | None) -> None:
        p = self.settings.node
        camera_frame = p.camera_frame or image_header.frame_id or "camera_optical_frame"
        camera_header = Header(stamp=image_header.stamp, frame_id=camera_frame)
        odom_header = Header(stamp=image_header.stamp, frame_id=p.odom_frame)
        self._last_stamp_msg = image_header.stamp

        features = result.features
        keypoints = to_input_pixels(features.keypoints_xy, features.image_size, image.shape)
        rays = viewing_rays(self._camera, keypoints)
        self._keypoints_pub.publish(conv.keypoints_to_cloud(camera_header, keypoints, features.scores, rays))
        if len(result.matches.indices):
            xy0, xy1 = result.matches.points(result.keyframe_features, features)
            xy0 = to_input_pixels(xy0, result.keyframe_features.image_size, image.shape)
            xy1 = to_input_pixels(xy1, features.image_size, image.shape)
        else:
            xy0 = xy1 = np.zeros((0, 2), np.float32)
        self._matches_pub.publish(conv.matches_to_cloud(camera_header, xy0, xy1, result.matches.confidence))

        relative = PoseWithCovarianceStamped(header=camera_header)
        relative.pose = conv.pose_with_covariance(result.relative_pose, result.covariance)
        self._relative_pub.publish(relative)

        base_cam, _ = self._base_from_camera(camera_frame)
        base = self._output.update(result, base_cam)
        odometry = Odometry(header=odom_header, child_frame_id=p.base_frame)
        odometry.pose = conv.pose_with_covariance(base.pose, base.covariance)
        odometry.twist = _twist_message(base_twist(result, base_cam, previous_stamp))
        self._odometry_pub.publish(odometry)

        self._path.append(PoseStamped(header=odom_header, pose=odometry.pose.pose))
        self._path_pub.publish(Path(header=odom_header, poses=list(self._path)))

        if p.publish_tf and (self._tf_broadcaster is not None or self._tf_publisher is not None):
            transform = conv.transform_stamped(base.pose, odom_header, p.base_frame)
            if self._tf_broadcaster is not None:
                self._tf_broadcaster.sendTransform(transform)
            else:
                self._tf_publisher.publish(TFMessage(transforms=[transform]))

        if self._debug_pub.get_subscription_count() > 0:
            caption = f"{result.state.name} kp {len(features)} matches {len(xy0)} inliers {result.inliers}"
            canvas = draw_debug_image(image, keypoints, xy0, xy1, caption, p.max_debug_tracks)
            self._debug_pub.publish(conv.numpy_to_image(canvas, "bgr8", camera_header))

    # ---------------------------------------------------------------------------------- bad input, diag
    def _bad_input(self, kind: str, message: str) -> None:
        """Log the first occurrence of each kind clearly, count every one (reported in /diagnostics)."""
        if self.stats.problem(kind, message.splitlines()[0]):
            self.get_logger().error(f"bad input [{kind}]: {message} (further '{kind}' problems are only counted)")

    def _publish_diagnostics(self) -> None:
        waiting = self._camera is None
        extra = {
            "tracking_state": self._last_state,
            "camera_info_received": not waiting,
            "frames_waiting": len(self._buffer),
            "frames_unpaired_depth": self._pairer.unpaired if self._pairer is not None else 0,
            "backend": self._backend(),
            "device": self.config.extractor.device,
            "features": self.config.extractor.features,
            "mode": self.config.mode,
            "scale": self.vo.scale_state.describe(),
            "image_transport": self.settings.node.image_transport,
            "tf": self._tf_status if self.settings.node.publish_tf else "disabled (publish_tf false)",
        }
        message = self.stats.to_message("silk_vo_node: visual odometry", self._backend(), self._last_stamp_msg, extra)
        self._diagnostics_pub.publish(message)

    def destroy_node(self) -> None:
        self._stop.set()
        self._buffer.close()
        self._worker.join(timeout=5.0)
        super().destroy_node()


def _twist_message(twist: BaseTwist) -> TwistWithCovariance:
    message = TwistWithCovariance()
    message.twist.linear.x, message.twist.linear.y, message.twist.linear.z = (float(v) for v in twist.linear)
    message.twist.angular.x, message.twist.angular.y, message.twist.angular.z = (float(v) for v in twist.angular)
    message.covariance = conv.covariance_to_list(twist.covariance)
    return message


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    try:
        node = SilkVoNode()
    except Exception as error:  # noqa: BLE001 - a bad configuration gets one clear line, not a traceback
        rclpy.logging.get_logger("silk_vo_node").fatal(f"cannot start: {type(error).__name__}: {error}")
        rclpy.try_shutdown()
        return 1
    executor = MultiThreadedExecutor(num_threads=3)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
