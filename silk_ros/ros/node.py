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
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from typing import Any, ClassVar

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
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from silk_ros.geometry.camera import Camera
from silk_ros.odometry.input_checks import depth_problem, image_size_problem
from silk_ros.odometry.metric_scale import units_note
from silk_ros.odometry.output_geometry import BaseFrameOdometry, BaseTwist, base_twist, to_input_pixels, viewing_rays
from silk_ros.odometry.vo import VisualOdometry
from silk_ros.ros import conversions as conv
from silk_ros.ros.debug_image import draw_debug_image
from silk_ros.ros.diagnostics import NodeStats, explain_missing_input
from silk_ros.ros.frame_buffer import CameraInfoHistory, DepthPairer, FrameQueue, LatestFrameSlot
from silk_ros.ros.parameters import NODE_PARAMETERS, descriptor
from silk_ros.ros.topics import NODE_NAME, OUTPUTS
from silk_ros.schema import ConfigError
from silk_ros.settings import (
    Settings,
    check_value,
    from_ros_values,
    params_file_sections,
    section_matches,
    unknown_setting,
)

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

#: why there is no /tf on the pip path (see README, "The ROS 2 node"): said at start-up and in /diagnostics
TF_UNAVAILABLE = (
    "neither tf2_ros nor tf2_msgs imports (the PyPI ROS wheels have no tf2_msgs): odom_frame -> base_frame is "
    "on ~/odometry only"
)


@dataclasses.dataclass
class _PendingFrame:
    colour: Image | CompressedImage
    depth: Image | None
    received: float  # time.monotonic() at the callback: latency measurement


class SilkVoNode(Node):
    """Subscribes camera topics, runs the VO in a worker thread, publishes odometry and its by-products."""

    #: nodes whose construction failed, kept until their context destroys them (see ``__init__``)
    _failed_starts: ClassVar[list[SilkVoNode]] = []

    def __init__(self, params_files: Sequence[str] = (), **node_options: Any) -> None:
        """``params_files``: the ``--params-file`` paths given on the command line, checked before the node says
        it is ready (one of them matching no section of this node is warned about)."""
        # Before anything can fail: stop() and destroy_node() (rclpy's context calls it on shutdown) must work on a
        # node whose construction failed half-way.
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._buffer: LatestFrameSlot | FrameQueue | None = None
        self._destroyed = False
        super().__init__(NODE_NAME, **node_options)
        try:
            self._set_up(params_files)
        except BaseException:
            # Not destroyed here: destroying a node seconds after its creation, while Fast DDS is still discovering
            # its peers, crashed the process (SIGSEGV in rmw_destroy_node, 1 start in 40 with seven nodes starting
            # at once) before the error could be reported.  The worker stops; the native node is kept alive (not
            # garbage-collected at an arbitrary moment) and the context destroys it on rclpy.shutdown().  The
            # console script reports the error and exits without tearing DDS down.
            self.stop()
            SilkVoNode._failed_starts.append(self)
            raise

    # ------------------------------------------------------------------------------------------- set-up
    def _set_up(self, params_files: Sequence[str]) -> None:
        self.settings: Settings = self._declare_parameters()
        self.stats = NodeStats()
        self.config = self.settings.odometry
        self.vo = VisualOdometry(self.config)
        self._vo_lock = threading.Lock()
        #: 1 while the worker holds a frame taken from the buffer: it is still pending in /diagnostics.
        self._in_hand = 0
        # auto and mono: no depth topic, unless depth_scale scales the monocular odometry with it
        self._rgbd = self.config.mode == "rgbd" or self.config.depth_scale
        wiring = self.settings.node

        # CameraInfo by stamp and size (callbacks add, the worker picks the one of each image)
        self._cameras = CameraInfoHistory()
        self._last_camera_info: tuple[tuple, Camera] | None = None  # the last one parsed: identical ones reuse it
        # Odometry state owned by the worker (guarded by _vo_lock).
        self._camera: Camera | None = None  # the camera of the last processed frame
        self._last_stamp: float | None = None
        self._last_size: tuple[int, int] | None = None
        self._output = BaseFrameOdometry()  # carries the current keyframe's covariance
        self._path: collections.deque = collections.deque(maxlen=wiring.path_length)
        self._extrinsics_from_tf: np.ndarray | None = None
        self._last_stamp_msg = None
        self._last_state = "WAITING"
        self._depth_valid_fraction: float | None = None
        # input watchdog (steady clock): since start-up, then since the last image; the first image's time says how
        # long images have waited for camera_info (None: no image yet)
        self._input_since = time.monotonic()
        self._first_image: float | None = None

        if wiring.process_every_frame:
            self._buffer = FrameQueue(wiring.queue_size)
        else:
            self._buffer = LatestFrameSlot()
        self._pairer = DepthPairer(wiring.depth_sync_tolerance, on_unpaired=self._on_unpaired) if self._rgbd else None
        self._bridge = CvBridge() if CvBridge is not None else None

        self._create_interfaces()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._warn_unknown_parameters()
        self.warn_unapplied_params_files(list(params_files))

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
        if self._tf_publisher is None and self._tf_broadcaster is None and wiring.publish_tf:
            self.get_logger().warning(f"/tf is not published: {TF_UNAVAILABLE}")

    def _declare_parameters(self) -> Settings:
        """Every setting of the table as a parameter with its descriptor; their values as typed settings.

        A value given in a params file or with ``-p`` is checked against the table first (range, choices), so a
        wrong one stops the start with the parameter's name and what it may be."""
        overrides = self._given_parameters()
        values = {}
        for row in NODE_PARAMETERS:
            given = overrides.get(row.name)
            if given is not None:
                value = given.value
                if isinstance(row.default, float) and isinstance(value, int) and not isinstance(value, bool):
                    # ``-p depth_max:=10`` means 10.0: ROS would refuse an integer for a double parameter
                    overrides[row.name] = Parameter(row.name, value=float(value))
                problem = check_value(row, value)
                if problem:
                    raise ConfigError(f"parameter {problem}")
            values[row.name] = self.declare_parameter(row.name, row.ros_default, descriptor(row)).value
        return from_ros_values(values)

    def _given_parameters(self) -> dict[str, Parameter]:
        """The parameter values given to this node (params files, ``-p``, ``parameter_overrides``): rclpy's own
        record of them, which it reads every declared parameter's value from."""
        return getattr(self, "_parameter_overrides", {})

    def _warn_unknown_parameters(self) -> None:
        """A given parameter that nothing declared is a typo or a stale setting: say so, with the nearest names."""
        for name in sorted(name for name in self._given_parameters() if not self.has_parameter(name)):
            self.get_logger().warning(f"parameter {unknown_setting(name)}")

    def warn_unapplied_params_files(self, paths: list[str]) -> None:
        """A params file none of whose sections names this node (a misspelt node name, a namespace the section
        does not match): rclpy applies nothing from it and says nothing."""
        name = self.get_fully_qualified_name()
        for path in paths:
            sections = params_file_sections(path)
            if sections and not any(section_matches(section, name) for section in sections):
                self.get_logger().warning(
                    f"params file {path}: none of its sections {sections} applies to {name}, nothing of it is "
                    f"used ('/**/{NODE_NAME}' or '/**' match this node in any namespace)"
                )

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
            self._image_sub = self.create_subscription(
                CompressedImage, "image/compressed", self._on_image, input_qos, callback_group=image_group
            )
        else:
            self._image_sub = self.create_subscription(
                Image, "image", self._on_image, input_qos, callback_group=image_group
            )
        self._camera_info_sub = self.create_subscription(
            CameraInfo, "camera_info", self._on_camera_info, input_qos, callback_group=other_group
        )
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
            self._tf_status = f"not published: {TF_UNAVAILABLE}"
        # Diagnostics run on the steady clock: they must keep coming with use_sim_time and no /clock.
        self.create_timer(
            p.diagnostics_period,
            self._publish_diagnostics,
            callback_group=other_group,
            clock=Clock(clock_type=ClockType.STEADY_TIME),
        )

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Runtime changes of the mutable parameters (read-only ones are refused by rclpy itself), checked
        against the table (range, choices) and together (``NodeConfig``: e.g. odom_frame != base_frame)."""
        rows = {row.name: row for row in NODE_PARAMETERS}
        changes = {}
        for parameter in parameters:
            row = rows.get(parameter.name)
            if row is None:
                continue
            problem = check_value(row, parameter.value)
            if problem:
                return SetParametersResult(successful=False, reason=f"parameter {problem}")
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
            if self._last_camera_info is not None and self._last_camera_info[0] == key:
                camera = self._last_camera_info[1]
            else:
                camera = Camera.from_camera_info(info)
        except ValueError as error:  # InputError and CameraError
            self._bad_input(getattr(error, "kind", "invalid_camera_info"), f"camera_info rejected: {error}")
            return
        self._last_camera_info = (key, camera)
        self._cameras.add(conv.stamp_to_seconds(msg.header.stamp), (camera.width, camera.height), camera)

    def _on_image(self, msg: Image | CompressedImage) -> None:
        if self._stop.is_set():
            return
        self.stats.frame_received()
        received = time.monotonic()
        if self._first_image is None:
            self._first_image = received
        self._input_since = received
        if self._pairer is None:
            self._enqueue(_PendingFrame(msg, None, received))
            return
        pair = self._pairer.add_colour(conv.stamp_to_seconds(msg.header.stamp), (msg, received), now=received)
        self._enqueue_pair(pair)

    def _on_depth(self, msg: Image) -> None:
        if self._stop.is_set():
            return
        pair = self._pairer.add_depth(conv.stamp_to_seconds(msg.header.stamp), msg, now=time.monotonic())
        self._enqueue_pair(pair)

    def _on_unpaired(self, count: int) -> None:
        self.stats.frame_skipped("no_depth_pair", count)

    def _enqueue_pair(self, pair: tuple | None) -> None:
        if pair is None:
            return
        (colour, received), depth = pair
        self._enqueue(_PendingFrame(colour, depth, received))

    def _enqueue(self, frame: _PendingFrame) -> None:
        if self._buffer.put(frame):
            # The newest frame replaced one not yet processed: stale, or held back for want of camera_info.
            self.stats.frame_skipped("dropped_stale" if len(self._cameras) else "no_camera_info")

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
            if not len(self._cameras):
                # Frames wait in the buffer (newest kept) until intrinsics arrive: never guessed.
                if len(self._buffer):
                    self.get_logger().warning(
                        "waiting for camera_info: image frames are held back", throttle_duration_sec=5.0
                    )
                self._stop.wait(0.05)
                continue
            frame = self._buffer.get(timeout=0.1)
            if frame is None or self._stop.is_set():
                continue
            self._in_hand = 1
            try:
                with self._vo_lock:
                    self._process(frame)
            except Exception as error:  # noqa: BLE001 - the node must survive anything a frame does
                if self._stop.is_set():
                    return  # shutting down: the publishers may be gone under the frame, nothing is wrong
                self._bad_input(
                    "processing_error", f"{type(error).__name__}: {error}\n{traceback.format_exc()}", frame=True
                )
            finally:
                self._in_hand = 0

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the worker: nothing is processed or published after the frame in hand.  True when the worker
        ended within ``timeout`` s (it is a daemon thread: a frame still in the network does not hold the exit)."""
        self._stop.set()
        if self._buffer is not None:
            self._buffer.close()
        if self._worker is None or self._worker is threading.current_thread():
            return True
        self._worker.join(timeout)
        return not self._worker.is_alive()

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

    def _camera_for(self, stamp: float, size: tuple[int, int]) -> Camera | None:
        """The CameraInfo of this image (same stamp, else the newest of its size); None: the frame is skipped."""
        camera = self._cameras.for_image(stamp, size)
        if camera is None:
            sizes = ", ".join(f"{w}x{h}" for w, h in self._cameras.sizes())
            self._bad_input(
                "resolution_mismatch",
                f"image is {size[0]}x{size[1]} but camera_info has come only for {sizes}: frame skipped",
                frame=True,
            )
        elif self._camera is not None and not _same_camera(camera, self._camera):
            self.get_logger().info(f"camera_info changed: {camera}")
        return camera

    def _process(self, frame: _PendingFrame) -> None:
        header = frame.colour.header
        stamp = conv.stamp_to_seconds(header.stamp)
        try:
            image, depth = self._decode(frame)
        except conv.InputError as error:
            self._bad_input(error.kind, str(error), frame=True)
            return
        size = (image.shape[1], image.shape[0])
        too_small = image_size_problem(*size)
        if too_small:
            self._bad_input("image_too_small", f"{too_small}: frame skipped", frame=True)
            return
        camera = self._camera_for(stamp, size)
        if camera is None:
            return
        if depth is not None:
            self._depth_valid_fraction = float(np.mean(np.isfinite(depth) & (depth > 0)))
            unusable = depth_problem(depth, self.config.depth_min, self.config.depth_max)
            if unusable and self.config.mode == "rgbd":
                self._bad_input("invalid_depth", f"{unusable}: frame skipped", frame=True)
                return
            if unusable:  # depth only measures the monocular scale: track the frame, measure nothing from it
                self._bad_input("scale_depth_unusable", f"{unusable}: no scale measurement from this frame")
                depth = None
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
            self._bad_input(
                "duplicate_stamp", f"image stamp {stamp:.6f} repeats the previous frame's: frame skipped", frame=True
            )
            return
        started = time.monotonic()
        result = self.vo.process(image, stamp, camera, depth)
        processing_ms = (time.monotonic() - started) * 1e3
        if self._stop.is_set():
            return  # shutting down while the frame ran: publish nothing more
        previous_stamp = self._last_stamp
        self._last_stamp, self._last_size, self._camera = stamp, size, camera
        self._publish(result, image, header, previous_stamp, camera)
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
            self.stats.frame_skipped("odometry_reset", self._pairer.clear())

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

    def _publish(
        self, result, image: np.ndarray, image_header: Header, previous_stamp: float | None, camera: Camera
    ) -> None:
        p = self.settings.node
        camera_frame = p.camera_frame or image_header.frame_id or "camera_optical_frame"
        camera_header = Header(stamp=image_header.stamp, frame_id=camera_frame)
        odom_header = Header(stamp=image_header.stamp, frame_id=p.odom_frame)
        self._last_stamp_msg = image_header.stamp

        features = result.features
        keypoints = to_input_pixels(features.keypoints_xy, features.image_size, image.shape)
        rays = viewing_rays(camera, keypoints)
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
    def _bad_input(self, kind: str, message: str, frame: bool = False) -> None:
        """Log the first occurrence of each kind clearly, count every one (reported in /diagnostics); ``frame``:
        the frame gave no odometry, counted by reason too."""
        if frame:
            self.stats.frame_skipped(kind)
        if self.stats.problem(kind, message.splitlines()[0]):
            log = self.get_logger().error if kind == "processing_error" else self.get_logger().warning
            log(f"bad input [{kind}]: {message} (further '{kind}' problems are only counted)")

    def _publish_diagnostics(self) -> None:
        if self._stop.is_set():
            return
        p = self.settings.node
        warnings = []
        depth_pairing = "not used (mode is not rgbd)"
        if self._pairer is not None:
            stall = self._pairer.stall(time.monotonic(), p.depth_pair_timeout)
            depth_pairing = stall or "ok"
            if stall:
                warnings.append(f"depth not paired: {stall}")
                self.get_logger().warning(f"RGB-D: {stall}", throttle_duration_sec=p.depth_pair_timeout)
        missing = self._missing_input(time.monotonic())
        if missing:
            warnings.append(missing)
            self.get_logger().warning(missing, throttle_duration_sec=p.input_timeout)
        waiting_for_depth = len(self._pairer) if self._pairer is not None else 0
        extra = {
            "tracking_state": self._last_state,
            "camera_info_received": bool(len(self._cameras)),
            # queued, in the worker's hands, or waiting for depth: not yet processed or skipped
            "frames_pending": len(self._buffer) + self._in_hand + waiting_for_depth,
            "frames_unpaired_depth": self._pairer.unpaired if self._pairer is not None else 0,
            "depth_pairing": depth_pairing,
            "depth_valid_fraction": self._depth_valid_fraction if self._depth_valid_fraction is not None else "n/a",
            "backend": self._backend(),
            "device": self.config.extractor.device,
            "features": self.config.extractor.features,
            "mode": self.config.mode,
            "scale": self.vo.scale_state.describe(),
            # since the odometry (re)started: lost frames that resumed on a window keyframe, maps begun afresh
            "relocalisations": self.vo.relocalisations,
            "map_restarts": self.vo.map_restarts,
            "image_transport": p.image_transport,
            "tf": self._tf_status if p.publish_tf else "disabled (publish_tf false)",
        }
        message = self.stats.to_message(
            "silk_vo_node: visual odometry", self._backend(), self._last_stamp_msg, extra, warnings
        )
        self._diagnostics_pub.publish(message)

    def _missing_input(self, now: float) -> str | None:
        """The input watchdog: None while images and camera_info come (or ``input_timeout`` is 0), else why no image
        has come for ``input_timeout`` seconds, or why images have waited that long for their first camera_info,
        from the publishers the graph shows for the topic."""
        timeout = self.settings.node.input_timeout
        if timeout <= 0:
            return None
        if now - self._input_since >= timeout:
            return self._explain(self._image_sub, now - self._input_since, "image", self._first_image is not None)
        if self._first_image is not None and not len(self._cameras) and now - self._first_image >= timeout:
            return self._explain(self._camera_info_sub, now - self._first_image, "camera_info", False)
        return None

    def _explain(self, subscription, waited: float, what: str, ever_received: bool) -> str:
        """``explain_missing_input`` for ``subscription``, from its resolved topic and message type in the graph."""
        topic, msg_type = subscription.topic_name, subscription.msg_type
        kind = f"{msg_type.__module__.split('.')[0]}/msg/{msg_type.__name__}"  # e.g. sensor_msgs/msg/Image
        publishers = [
            (f"{info.node_namespace.rstrip('/')}/{info.node_name}",
             info.qos_profile.reliability == ReliabilityPolicy.RELIABLE)
            for info in self.get_publishers_info_by_topic(topic)
        ]
        others = [name for name, types in self.get_topic_names_and_types() if kind in types and name != topic]
        reliable = self.settings.node.qos_reliability == "reliable"
        return explain_missing_input(topic, waited, publishers, reliable, others, ever_received, what)

    def destroy_node(self) -> None:
        if self._destroyed:
            return
        if not self._stop.is_set():
            self.stop()
        self._destroyed = True
        super().destroy_node()
        if self in SilkVoNode._failed_starts:
            SilkVoNode._failed_starts.remove(self)


def _same_camera(a: Camera, b: Camera) -> bool:
    return (
        (a.width, a.height, a.model) == (b.width, b.height, b.model)
        and np.array_equal(a.K, b.K)
        and np.array_equal(a.distortion, b.distortion)
    )


def _twist_message(twist: BaseTwist) -> TwistWithCovariance:
    message = TwistWithCovariance()
    message.twist.linear.x, message.twist.linear.y, message.twist.linear.z = (float(v) for v in twist.linear)
    message.twist.angular.x, message.twist.angular.y, message.twist.angular.z = (float(v) for v in twist.angular)
    message.covariance = conv.covariance_to_list(twist.covariance)
    return message


class _Interrupted(BaseException):
    """SIGINT / SIGTERM while the node is being built (a BaseException: nothing on the way may swallow it)."""


class _Signals:
    """SIGINT and SIGTERM handled by this process, not by rclpy: rclpy's handlers shut the context down at once,
    under the worker thread that is publishing (an ERROR traceback), and leave the process to a slow teardown.
    Here a signal only records itself; the main thread then stops the node in order."""

    def __init__(self) -> None:
        self.received: str | None = None
        self.at: float | None = None
        self.starting = True
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, self._handle)

    def _handle(self, number: int, _frame: Any) -> None:
        if self.received is None:
            self.received, self.at = signal.Signals(number).name, time.monotonic()
        if self.starting:
            raise _Interrupted()


#: what the worker may still take at shutdown to finish publishing a frame (s).  A frame still in the network is
#: abandoned: the worker is a daemon thread that publishes nothing once stopped, and the process exits without it.
SHUTDOWN_WORKER_WAIT = 0.1


def main(args: list[str] | None = None, fast_exit: bool = True) -> int:
    """The ``silk_vo_node`` console script.

    A start-up failure is one FATAL line and exit code 1.  SIGINT or SIGTERM, busy or idle: the worker stops
    after its frame (at most ``SHUTDOWN_WORKER_WAIT``), the node is destroyed, rclpy shut down, one INFO line
    gives the time it took, and the process exits 0.  ``fast_exit`` then ends the process without Python's
    interpreter teardown: unloading torch, ONNX Runtime and DDS took seconds (and could abort while a thread was
    still in native code), and nothing is left to clean up by then.  After a start that failed or was cut short
    it also skips the DDS teardown of the half-built node, which could crash before the error was reported (see
    ``SilkVoNode.__init__``); without ``fast_exit`` the context destroys it.
    """
    logger = rclpy.logging.get_logger(NODE_NAME)
    signals = _Signals()
    try:
        code = _run(args, signals, logger)
    except _Interrupted:  # a signal while rclpy itself was starting
        code = 0
    if fast_exit:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    rclpy.try_shutdown()
    return code


def _run(args: list[str] | None, signals: _Signals, logger: Any) -> int:
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except Exception as error:  # noqa: BLE001 - rcl's argument and params-file errors
        logger.fatal(f"cannot start: invalid ROS arguments: {_first_line(error)}")
        return 1
    try:
        arguments = sys.argv if args is None else args
        # Checked inside the constructor, before "ready": a signal that follows "ready" cannot cut it short.
        node = SilkVoNode([arguments[i + 1] for i, arg in enumerate(arguments[:-1]) if arg == "--params-file"])
        signals.starting = False
    except _Interrupted:  # the half-built node is left to main (see its docstring)
        logger.info(f"{signals.received} during start-up: exiting")
        return 0
    except Exception as error:  # noqa: BLE001 - a bad configuration gets one clear line, not a traceback
        what = str(error) if isinstance(error, ConfigError) else f"{type(error).__name__}: {error}"
        logger.fatal(f"cannot start: {what}")
        return 1
    executor = MultiThreadedExecutor(num_threads=3)
    executor.add_node(node)
    failure: list[BaseException] = []
    spinner = threading.Thread(target=_spin, args=(executor, failure), name="silk_vo_executor", daemon=True)
    spinner.start()
    while signals.received is None and spinner.is_alive() and rclpy.ok():
        time.sleep(0.05)  # a signal interrupts the sleep: its handler runs here, in the main thread
    began = signals.at or time.monotonic()
    finished_frame = node.stop(timeout=SHUTDOWN_WORKER_WAIT)
    executor.shutdown(timeout_sec=0.2)
    node.destroy_node()
    took_ms = (time.monotonic() - began) * 1e3
    if failure and signals.received is None:
        logger.fatal(f"the executor failed: {type(failure[0]).__name__}: {failure[0]}")
        rclpy.try_shutdown()
        return 1
    logger.info(
        f"shut down on {signals.received or 'context shutdown'} in {took_ms:.0f} ms"
        + ("" if finished_frame else " (the frame in processing was abandoned)")
    )
    rclpy.try_shutdown()
    return 0


def _spin(executor: MultiThreadedExecutor, failure: list[BaseException]) -> None:
    try:
        executor.spin()
    except ExternalShutdownException:
        pass
    except Exception as error:  # noqa: BLE001 - reported by the main thread, which decides the exit code
        failure.append(error)


def _first_line(error: BaseException) -> str:
    """rcl's errors carry the C source location after ', at ': the user needs the first part."""
    return str(error).splitlines()[0].split(", at /")[0] if str(error) else type(error).__name__


if __name__ == "__main__":
    raise SystemExit(main())
