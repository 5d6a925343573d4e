"""silk_vo_node in-process over real DDS: real frames in, every output type back, odometry vs ground truth.

Frames: 7-Scenes redkitchen (real Kinect colour + depth, 320x240) from the shared data folder.  The
node and a feeding/recording peer (silk_ros.ros.harness) spin in this process on a multi-threaded
executor; messages travel through Fast DDS on a private domain id (localhost only).
"""

from __future__ import annotations

import os

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

import time  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

rclpy = pytest.importorskip("rclpy")

from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from silk_ros.datasets import open_sequence  # noqa: E402
from silk_ros.geometry.pose import invert_pose, rotation_angle_deg  # noqa: E402
from silk_ros.ros import conversions as conv  # noqa: E402
from silk_ros.ros.harness import NodeHarness  # noqa: E402
from silk_ros.weights import WeightsError, shipped_weights  # noqa: E402

N_FRAMES = 16
STAMP0 = 1_700_000_000.0  # realistic epoch stamps: the node must copy them, never use now()


def silk_parameters() -> list[Parameter]:
    """Trained SiLK when the shipped weights exist, else the untrained network (plumbing only)."""
    try:
        shipped_weights("silk-mu")
        return [Parameter("weights", value="silk-mu")]
    except WeightsError:
        return [Parameter("weights", value="untrained"), Parameter("allow_untrained", value=True)]


@pytest.fixture(scope="module")
def frames(data_root):
    sequence = open_sequence(
        "7scenes", data_root / "sequences" / "7scenes_redkitchen", resize=(320, 240), max_frames=N_FRAMES, stride=2
    )
    return list(sequence)



def stamp_of(i: int, frame) -> object:
    return conv.seconds_to_stamp(STAMP0 + frame.timestamp)


def feed(harness: NodeHarness, frames, period: float = 0.05, depth_mm: bool = False, start: int = 0) -> list:
    stamps = []
    for i, frame in enumerate(frames):
        stamp = stamp_of(start + i, frame)
        stamps.append(stamp)
        harness.publish_camera_info(frame.camera, stamp)
        depth = frame.depth
        if depth is not None and depth_mm:
            depth = np.nan_to_num(depth * 1000.0, nan=0.0).round().astype(np.uint16)
        harness.publish_frame(frame.image, stamp, depth=depth)
        time.sleep(period)
    return stamps


def world_cam_from_odometry(msg, base_cam: np.ndarray) -> np.ndarray:
    """Undo the node's odom/base convention: T_world_cam = inv(T_base_cam) @ T_odom_base @ T_base_cam."""
    return invert_pose(base_cam) @ conv.pose_to_matrix(msg.pose.pose) @ base_cam


BASE_CAM = np.eye(4)
BASE_CAM[:3, :3] = conv.R_BODY_OPTICAL  # the node's default base_from_camera


def test_rgbd_node_publishes_every_output_and_tracks_ground_truth(running, frames):
    parameters = silk_parameters() + [
        Parameter("mode", value="rgbd"),
        Parameter("top_k", value=500),
        Parameter("process_every_frame", value=True),
        Parameter("qos_reliability", value="reliable"),
        Parameter("qos_depth", value=50),
        Parameter("queue_size", value=50),
        Parameter("path_length", value=10),
    ]
    node, harness = running(parameters, rgbd=True, reliable=True, history=50)
    stamps = feed(harness, frames, depth_mm=True)
    n = len(frames)
    assert harness.wait_for(lambda: harness.count("odometry") >= n, 120.0), harness.latest_diagnostics()
    assert harness.wait_for(lambda: harness.latest_diagnostics().get("frames_processed") == str(n), 5.0)

    for name in ("keypoints", "matches", "relative_pose", "odometry", "path", "debug_image"):
        messages = harness.messages(name)
        assert len(messages) == n, f"{name}: {len(messages)} of {n}"
        # Every stamp is the image's, in order: nothing invented from now().
        assert [m.header.stamp for m in messages] == stamps, name

    keypoints = conv.unpack_cloud(harness.messages("keypoints")[-1])
    assert list(keypoints)[:3] == ["u", "v", "score"] and len(keypoints["u"]) > 100
    assert keypoints["u"].min() >= -0.5 and keypoints["u"].max() < 320 and keypoints["v"].max() < 240
    matches = conv.unpack_cloud(harness.messages("matches")[-1])
    assert list(matches) == ["u0", "v0", "u1", "v1", "confidence"] and len(matches["u0"]) > 20
    debug = harness.messages("debug_image")[-1]
    assert (debug.width, debug.height, debug.encoding) == (320, 240, "bgr8")
    relative = harness.messages("relative_pose")[-1]
    assert relative.header.frame_id == "camera_optical_frame"
    path = harness.messages("path")[-1]
    assert len(path.poses) == 10 and path.header.frame_id == "odom"  # bounded by path_length

    odometry = harness.messages("odometry")
    assert {(m.header.frame_id, m.child_frame_id) for m in odometry} == {("odom", "base_link")}
    first_gt = frames[0].gt_pose
    for msg, frame in zip(odometry, frames, strict=True):
        covariance = np.array(msg.pose.covariance).reshape(6, 6)
        assert np.isfinite(covariance).all() and np.all(np.diag(covariance) >= 0)
        estimate = world_cam_from_odometry(msg, BASE_CAM)
        truth = invert_pose(first_gt) @ frame.gt_pose
        assert rotation_angle_deg(estimate[:3, :3].T @ truth[:3, :3]) < 3.0
        assert np.linalg.norm(estimate[:3, 3] - truth[:3, 3]) < 0.05, (estimate[:3, 3], truth[:3, 3])
    moved = np.linalg.norm((invert_pose(first_gt) @ frames[-1].gt_pose)[:3, 3])
    assert moved > 0.05  # the check above is not vacuous
    # The relative poses chain up to the odometry (previous processed frame -> current frame).
    chained = np.eye(4)
    for msg in harness.messages("relative_pose"):
        chained = chained @ conv.pose_to_matrix(msg.pose.pose)
    np.testing.assert_allclose(chained, world_cam_from_odometry(odometry[-1], BASE_CAM), atol=1e-6)

    diagnostics = harness.latest_diagnostics()
    for key in (
        "processing_rate_hz",
        "latency_ms_mean",
        "frames_dropped",
        "keypoints",
        "matches",
        "inliers",
        "tracking_state",
        "backend",
        "device",
        "tf",
        "scale",
    ):
        assert key in diagnostics, key
    assert diagnostics["scale"] == "metric (depth)"
    assert diagnostics["frames_dropped"] == "0" and diagnostics["tracking_state"] in ("TRACKING", "DEGRADED")
    assert int(diagnostics["inliers"]) > 0 and diagnostics["camera_info_received"] == "True"
    assert diagnostics["relocalisations"] == diagnostics["map_restarts"] == "0"  # a smooth sweep: never lost


def test_live_mode_keeps_the_newest_frame_and_counts_drops(running, frames):
    # Reliable transport with room for the whole burst: every frame reaches the node, so what this test sees
    # dropped is the node's own choice (a best-effort burst can also lose the newest frame on the wire, which is
    # DDS's business, not the node's: seen once in CI).
    parameters = [Parameter("features", value="orb"), Parameter("qos_reliability", value="reliable"),
                  Parameter("qos_depth", value=len(frames))]
    node, harness = running(parameters, debug_image=False, reliable=True, history=len(frames))
    feed(harness, frames[:1], period=0.3)
    harness.wait_for(lambda: harness.count("odometry") >= 1, 20.0)
    stamps = feed(harness, frames[1:], period=0.0)  # a burst far faster than the node processes
    # The newest frame is always processed: the last odometry ends up carrying the last stamp fed (waited for, not
    # slept on: a loaded machine may take longer to get there).
    assert harness.wait_for(
        lambda: harness.count("odometry") >= 2 and harness.messages("odometry")[-1].header.stamp == stamps[-1], 30.0
    ), [m.header.stamp for m in harness.messages("odometry")]

    def accounted(diagnostics: dict[str, str]) -> int:
        return int(diagnostics.get("frames_processed", 0)) + int(diagnostics.get("frames_dropped", 0))

    assert harness.wait_for(lambda: accounted(harness.latest_diagnostics()) == len(frames), 10.0)
    diagnostics = harness.latest_diagnostics()
    received, processed = int(diagnostics["frames_received"]), int(diagnostics["frames_processed"])
    dropped = int(diagnostics["frames_dropped"])
    assert received == len(frames) and processed < received and dropped > 0 and processed + dropped == received
    assert harness.count("debug_image") == 0  # nobody subscribed: never built or sent
    # Monocular without a scale source: the diagnostics say the odometry is not in metres.
    assert diagnostics["scale"] == "arbitrary (monocular, no scale source)"


def test_monocular_node_scaled_by_a_depth_topic_publishes_metres(running, data_root):
    """depth_scale: the node subscribes to depth although it tracks monocular, and its odometry is in metres.
    Every 4th frame: the monocular map starts after ~10 of them (the first ones hold the translation)."""
    frames = list(open_sequence("7scenes", data_root / "sequences" / "7scenes_redkitchen", resize=(320, 240),
                                max_frames=20, stride=4))
    parameters = silk_parameters() + [
        Parameter("mode", value="mono"),
        Parameter("depth_scale", value=True),
        Parameter("process_every_frame", value=True),
        Parameter("qos_reliability", value="reliable"),
        Parameter("qos_depth", value=50),
        Parameter("queue_size", value=50),
    ]
    node, harness = running(parameters, rgbd=True, reliable=True, history=50)
    feed(harness, frames, depth_mm=True)
    n = len(frames)
    assert harness.wait_for(lambda: harness.count("odometry") >= n, 120.0), harness.latest_diagnostics()
    assert harness.wait_for(lambda: harness.latest_diagnostics().get("frames_processed") == str(n), 5.0)
    diagnostics = harness.latest_diagnostics()
    assert diagnostics["mode"] == "mono" and diagnostics["scale"] == "metric (depth ratio)", diagnostics
    # Metres: the distance moved is about the true one (without a scale source: several times it, or a fraction).
    moved = np.linalg.norm(world_cam_from_odometry(harness.messages("odometry")[-1], BASE_CAM)[:3, 3])
    true_moved = np.linalg.norm((invert_pose(frames[0].gt_pose) @ frames[-1].gt_pose)[:3, 3])
    assert 0.6 * true_moved < moved < 1.6 * true_moved, (moved, true_moved)


def test_compressed_mono_input_and_corrupt_data(running, frames):
    parameters = [
        Parameter("features", value="orb"),
        Parameter("image_transport", value="compressed"),
        Parameter("process_every_frame", value=True),
    ]
    node, harness = running(parameters, compressed=True, reliable=True, history=50)
    stamps = feed(harness, frames)
    assert harness.wait_for(lambda: harness.count("odometry") >= len(frames), 60.0)
    odometry = harness.messages("odometry")
    assert [m.header.stamp for m in odometry] == stamps
    first_gt = frames[0].gt_pose
    for msg, frame in zip(odometry, frames, strict=True):  # monocular: rotation is observable, scale is not
        estimate = world_cam_from_odometry(msg, BASE_CAM)
        truth = invert_pose(first_gt) @ frame.gt_pose
        assert rotation_angle_deg(estimate[:3, :3].T @ truth[:3, :3]) < 5.0
    # Corrupt JPEG bytes: reported, skipped, and the node goes on with the next good frame.
    bad = CompressedImage(
        header=Header(stamp=conv.seconds_to_stamp(STAMP0 + 100.0)), format="jpeg", data=b"\xff\xd8junk"
    )
    harness.image_pub.publish(bad)
    good_stamp = conv.seconds_to_stamp(STAMP0 + 101.0)
    harness.publish_frame(frames[-1].image, good_stamp)
    assert harness.wait_for(lambda: harness.messages("odometry")[-1].header.stamp == good_stamp, 20.0)
    assert harness.wait_for(lambda: harness.latest_diagnostics().get("bad_input.corrupt_compressed") == "1", 5.0)


def test_reset_service_restarts_the_trajectory(running, frames):
    node, harness = running(
        [Parameter("features", value="orb"), Parameter("process_every_frame", value=True)], reliable=True, history=50
    )
    feed(harness, frames[:10])
    assert harness.wait_for(lambda: harness.count("odometry") >= 10, 60.0)
    moved = world_cam_from_odometry(harness.messages("odometry")[-1], BASE_CAM)
    assert rotation_angle_deg(moved[:3, :3]) > 1.0  # 7-Scenes turns several degrees over these frames
    response = harness.call_reset()
    assert response is not None and response.success and "reset" in response.message
    feed(harness, frames[10:12], start=10)
    assert harness.wait_for(lambda: harness.count("odometry") >= 12, 30.0)
    after = harness.messages("odometry")[10]
    np.testing.assert_allclose(conv.pose_to_matrix(after.pose.pose), np.eye(4), atol=1e-9)
    assert len(harness.messages("path")[10].poses) == 1  # the path restarted too


def _image(encoding: str, width: int, height: int, stamp, data: bytes | None = None, step: int | None = None):
    channels = {"mono8": 1, "bgr8": 3, "yuv422": 2}[encoding]
    step = width * channels if step is None else step
    data = bytes(step * height) if data is None else data
    return Image(
        header=Header(stamp=stamp, frame_id="camera_optical_frame"),
        height=height,
        width=width,
        encoding=encoding,
        step=step,
        data=data,
    )


def test_bad_input_is_reported_once_per_kind_and_the_node_keeps_running(running, frames):
    node, harness = running(
        [Parameter("features", value="orb"), Parameter("process_every_frame", value=True)], reliable=True, history=50
    )
    camera = frames[0].camera
    t = STAMP0

    # 1. Frames before camera_info are held back (never processed with guessed intrinsics).
    harness.publish_frame(frames[0].image, conv.seconds_to_stamp(t))
    time.sleep(1.5)
    assert harness.count("odometry") == 0
    # waited for, not read once: on a loaded machine the first /diagnostics may come later than 1.5 s
    assert harness.wait_for(lambda: harness.latest_diagnostics().get("camera_info_received") == "False", 10.0)
    # 2. CameraInfo with a zero focal length is refused.
    info = CameraInfo(
        header=Header(stamp=conv.seconds_to_stamp(t)),
        width=320,
        height=240,
        k=[0.0, 0, 160, 0, 0.0, 120, 0, 0, 1],
        distortion_model="plumb_bob",
        d=[0.0] * 5,
    )
    harness.info_pub.publish(info)
    time.sleep(0.5)
    assert harness.count("odometry") == 0
    # 3. A valid CameraInfo releases the held frame.
    harness.publish_camera_info(camera, conv.seconds_to_stamp(t))
    assert harness.wait_for(lambda: harness.count("odometry") == 1, 20.0)
    assert harness.messages("odometry")[0].header.stamp == conv.seconds_to_stamp(t)

    def good(i: int, seconds: float):
        harness.publish_frame(frames[i].image, conv.seconds_to_stamp(seconds))

    bad_messages = [
        _image("yuv422", 320, 240, conv.seconds_to_stamp(t + 1)),  # unsupported encoding
        _image("mono8", 0, 0, conv.seconds_to_stamp(t + 2), data=b""),  # empty
        _image("bgr8", 320, 240, conv.seconds_to_stamp(t + 3), data=bytes(1000)),  # truncated
        _image("mono8", 160, 120, conv.seconds_to_stamp(t + 4)),  # resolution != camera_info
    ]
    for message in bad_messages:
        harness.image_pub.publish(message)
        time.sleep(0.1)
    good(1, t + 5)
    assert harness.wait_for(lambda: harness.count("odometry") == 2, 20.0)
    good(2, t + 6)
    assert harness.wait_for(lambda: harness.count("odometry") == 3, 20.0)
    # 4. Time going backwards (a looping bag) resets the odometry: the pose restarts at the origin.
    good(3, t + 0.5)
    assert harness.wait_for(lambda: harness.count("odometry") == 4, 20.0)
    looped = harness.messages("odometry")[3]
    np.testing.assert_allclose(conv.pose_to_matrix(looped.pose.pose), np.eye(4), atol=1e-9)
    assert len(harness.messages("path")[3].poses) == 1
    # 5. The camera changes resolution (camera_info and images together): reported, odometry restarts.
    small = camera.scaled(160, 120)
    harness.publish_camera_info(small, conv.seconds_to_stamp(t + 7))
    time.sleep(0.3)
    import cv2

    harness.publish_frame(
        cv2.resize(frames[4].image, (160, 120), interpolation=cv2.INTER_AREA), conv.seconds_to_stamp(t + 7)
    )
    assert harness.wait_for(lambda: harness.count("odometry") == 5, 20.0)

    expected = {
        "invalid_camera_info",
        "unsupported_encoding",
        "empty_image",
        "truncated_image",
        "resolution_mismatch",
        "time_backwards",
        "resolution_changed",
    }

    def reported() -> set:
        return {k.removeprefix("bad_input.") for k in harness.latest_diagnostics() if k.startswith("bad_input.")}

    assert harness.wait_for(lambda: expected <= reported(), 5.0), reported()
    diagnostics = harness.latest_diagnostics()
    assert diagnostics["_level"] in ("1", "2")  # WARN (or ERROR if tracking got lost): never silent
    assert all(diagnostics[f"bad_input.{kind}"] == "1" for kind in expected)
    assert node.context.ok() and node._worker.is_alive()


def _call(harness: NodeHarness, service_type, name: str, request):
    client = harness.create_client(service_type, name)
    assert client.wait_for_service(timeout_sec=10.0), name
    future = client.call_async(request)
    assert harness.wait_for(future.done, 10.0), name
    return future.result()


def test_parameters_have_descriptors_and_only_mutable_ones_change_at_runtime(running, frames):
    from rcl_interfaces.srv import DescribeParameters, SetParameters

    node, harness = running(
        [Parameter("features", value="orb"), Parameter("process_every_frame", value=True)], reliable=True, history=50
    )
    described = _call(
        harness,
        DescribeParameters,
        "/silk_vo_node/describe_parameters",
        DescribeParameters.Request(names=["top_k", "path_length", "ransac_threshold_px", "mode"]),
    )
    top_k, path_length, threshold, mode = described.descriptors
    assert top_k.read_only and (top_k.integer_range[0].from_value, top_k.integer_range[0].to_value) == (10, 10000)
    assert not path_length.read_only and path_length.description
    assert threshold.floating_point_range[0].to_value == 20.0
    assert mode.read_only and "rgbd" in mode.additional_constraints

    request = SetParameters.Request(
        parameters=[
            Parameter("top_k", value=50).to_parameter_msg(),  # read-only: the network is built at start-up
            Parameter("path_length", value=3).to_parameter_msg(),
            Parameter("odom_frame", value="world").to_parameter_msg(),
            Parameter("publish_tf", value=False).to_parameter_msg(),
        ]
    )
    results = _call(harness, SetParameters, "/silk_vo_node/set_parameters", request).results
    assert [r.successful for r in results] == [False, True, True, True]
    assert "read-only" in results[0].reason or "read only" in results[0].reason.lower()
    feed(harness, frames[:5])
    assert harness.wait_for(lambda: harness.count("odometry") >= 5, 60.0)
    assert len(harness.messages("path")[-1].poses) == 3
    assert harness.messages("odometry")[-1].header.frame_id == "world"
    assert harness.wait_for(lambda: harness.latest_diagnostics().get("tf", "").startswith("disabled"), 5.0)


def test_a_node_whose_start_failed_is_kept_for_its_context_to_destroy():
    """Session 28: destroying a half-built node inside its constructor, seconds after its creation while Fast DDS was
    still discovering peers, crashed the process (SIGSEGV in rmw_destroy_node, 1 of 42 starts of seven nodes at
    once) before the FATAL line.  The constructor now only stops the worker and raises; the node stays valid until
    its context shuts down, which destroys it."""
    from silk_ros.ros.node import SilkVoNode
    from silk_ros.schema import ConfigError

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        with pytest.raises(ConfigError, match="odom_frame and base_frame must differ"):
            SilkVoNode(context=context, parameter_overrides=[Parameter("base_frame", value="odom")])
        failed = [node for node in SilkVoNode._failed_starts if node.context is context]
        assert len(failed) == 1 and failed[0]._stop.is_set() and not failed[0]._destroyed
        assert failed[0].get_name() == "silk_vo_node"  # its native handle is still valid
    finally:
        context.try_shutdown()
    assert failed[0]._destroyed and failed[0] not in SilkVoNode._failed_starts
