"""ROS message <-> numpy conversions (silk_ros/ros/conversions.py) on real message types."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

pytest.importorskip("rclpy")

from scipy.spatial.transform import Rotation  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from silk_ros.ros import conversions as conv  # noqa: E402

RNG = np.random.default_rng(7)


def _textured(h=48, w=64, channels=3):
    """A smooth, JPEG-friendly test image (so lossy round trips stay close)."""
    y, x = np.mgrid[0:h, 0:w]
    base = 128 + 60 * np.sin(x / 6.0) * np.cos(y / 5.0)
    planes = [np.clip(base + 20 * c, 0, 255) for c in range(channels)]
    image = np.stack(planes, axis=-1).astype(np.uint8)
    return image[:, :, 0] if channels == 1 else image


@pytest.mark.parametrize(
    "encoding, dtype, channels",
    [("mono8", np.uint8, 1), ("mono16", np.uint16, 1), ("bgr8", np.uint8, 3), ("rgb8", np.uint8, 3),
     ("bgra8", np.uint8, 4), ("rgba8", np.uint8, 4), ("16UC1", np.uint16, 1), ("32FC1", np.float32, 1)],
)
def test_image_round_trip_every_encoding(encoding, dtype, channels):
    shape = (5, 7) if channels == 1 else (5, 7, channels)
    if dtype == np.float32:
        array = RNG.random(shape).astype(np.float32)
    else:
        array = RNG.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    msg = conv.numpy_to_image(array, encoding, Header(frame_id="cam"))
    assert (msg.width, msg.height, msg.encoding, msg.header.frame_id) == (7, 5, encoding, "cam")
    back = conv.image_to_numpy(msg)
    assert back.dtype == dtype and back.shape == shape
    np.testing.assert_array_equal(back, array)


def test_row_padding_and_big_endian_are_honoured():
    array = RNG.integers(0, 65535, (4, 3)).astype(np.uint16)
    msg = Image(height=4, width=3, encoding="mono16", is_bigendian=1, step=8)  # 6 bytes of pixels + 2 padding
    rows = [array[r].astype(">u2").tobytes() + b"\xee\xee" for r in range(4)]
    msg.data = b"".join(rows)
    np.testing.assert_array_equal(conv.image_to_numpy(msg), array)


def test_vo_image_normalises_colour_order_and_depth():
    rgb = _textured(channels=3)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    np.testing.assert_array_equal(conv.to_vo_image(rgb, "rgb8"), bgr)
    np.testing.assert_array_equal(conv.to_vo_image(cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA), "bgra8"), bgr)
    np.testing.assert_array_equal(conv.to_vo_image(cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA), "rgba8"), bgr)
    mono16 = np.array([[0, 65535, 257 * 100]], np.uint16)
    np.testing.assert_array_equal(conv.to_vo_image(mono16, "mono16"), [[0, 255, 100]])
    depth_mm = np.array([[0, 1500, 65535]], np.uint16)
    metres = conv.depth_to_metres(depth_mm, "16UC1")
    assert np.isnan(metres[0, 0]) and metres[0, 1] == pytest.approx(1.5) and np.isnan(metres[0, 2])
    metres = conv.depth_to_metres(np.array([[2.0, np.inf, -1.0]], np.float32), "32FC1")
    assert metres[0, 0] == 2.0 and np.isnan(metres[0, 1:]).all()
    with pytest.raises(conv.InputError) as error:
        conv.depth_to_metres(np.zeros((2, 2), np.uint8), "mono8")
    assert error.value.kind == "unsupported_encoding"


@pytest.mark.parametrize(
    "make, kind",
    [
        (lambda: Image(height=4, width=4, encoding="yuv422", step=8, data=bytes(32)), "unsupported_encoding"),
        (lambda: Image(height=0, width=0, encoding="mono8", step=0), "empty_image"),
        (lambda: Image(height=4, width=4, encoding="bgr8", step=12, data=bytes(20)), "truncated_image"),
        (lambda: Image(height=4, width=4, encoding="bgr8", step=4, data=bytes(48)), "truncated_image"),
    ],
)
def test_bad_images_name_the_problem(make, kind):
    with pytest.raises(conv.InputError) as error:
        conv.image_to_numpy(make())
    assert error.value.kind == kind
    assert str(error.value)  # a message a user can read


def test_compressed_round_trip_and_corrupt_data():
    image = _textured(channels=3)
    jpeg = conv.numpy_to_compressed(image, "jpeg", Header(frame_id="cam"))
    assert jpeg.format.startswith("bgr8; jpeg") and jpeg.header.frame_id == "cam"
    decoded = conv.compressed_to_numpy(jpeg)
    assert decoded.shape == image.shape and np.abs(decoded.astype(int) - image).mean() < 3
    grey = _textured(channels=1)
    np.testing.assert_array_equal(conv.compressed_to_numpy(conv.numpy_to_compressed(grey, "png")), grey)
    with pytest.raises(conv.InputError) as error:
        conv.compressed_to_numpy(CompressedImage(format="jpeg", data=bytes(jpeg.data)[:40]))
    assert error.value.kind == "corrupt_compressed"
    with pytest.raises(conv.InputError) as error:
        conv.compressed_to_numpy(CompressedImage(format="jpeg", data=b""))
    assert error.value.kind == "empty_image"


def _camera_info(fx=500.0, d=(0.1, -0.2, 0.0, 0.0, 0.0)):
    return CameraInfo(
        width=320, height=240, distortion_model="plumb_bob", d=list(d),
        k=[fx, 0.0, 160.0, 0.0, 510.0, 120.0, 0.0, 0.0, 1.0],
    )


def test_camera_info_to_dict_and_rejections():
    info = conv.camera_info_to_dict(_camera_info())
    assert info == {
        "width": 320, "height": 240, "k": [500.0, 0.0, 160.0, 0.0, 510.0, 120.0, 0.0, 0.0, 1.0],
        "d": [0.1, -0.2, 0.0, 0.0, 0.0], "distortion_model": "plumb_bob",
    }
    assert conv.camera_info_to_dict(_camera_info(d=(0, 0, 0, 0, 0)))["distortion_model"] == "none"
    for bad in (_camera_info(fx=0.0), _camera_info(fx=float("nan")), CameraInfo()):
        with pytest.raises(conv.InputError) as error:
            conv.camera_info_to_dict(bad)
        assert error.value.kind == "invalid_camera_info"


def test_camera_info_feeds_camera_from_camera_info():
    camera_module = pytest.importorskip("silk_ros.geometry.camera")
    camera = camera_module.Camera.from_camera_info(conv.camera_info_to_dict(_camera_info()))
    assert (camera.width, camera.height) == (320, 240)
    assert (camera.fx, camera.fy, camera.cx, camera.cy) == (500.0, 510.0, 160.0, 120.0)


def test_pose_quaternion_and_transform_round_trips_match_scipy():
    rotations = Rotation.random(200, random_state=3).as_matrix()
    # Include the numerically awkward 180-degree turns about each axis.
    rotations = np.concatenate([rotations, Rotation.from_rotvec(np.pi * np.eye(3)).as_matrix()])
    for r in rotations:
        q = conv.rotation_to_quaternion(r)
        reference = Rotation.from_matrix(r).as_quat()
        assert np.allclose(q, reference, atol=1e-9) or np.allclose(q, -reference, atol=1e-9)
        np.testing.assert_allclose(conv.quaternion_to_rotation(q), r, atol=1e-9)
    transform = np.eye(4)
    transform[:3, :3] = rotations[0]
    transform[:3, 3] = [1.0, -2.0, 3.5]
    np.testing.assert_allclose(conv.pose_to_matrix(conv.matrix_to_pose(transform)), transform, atol=1e-12)
    np.testing.assert_allclose(conv.pose_to_matrix(conv.matrix_to_transform(transform)), transform, atol=1e-12)
    covariance = np.diag([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    message = conv.pose_with_covariance(transform, covariance)
    assert list(message.covariance) == covariance.reshape(-1).tolist()


def test_optical_to_body_rotation_is_rep103():
    forward_optical, right_optical, down_optical = np.eye(3)[2], np.eye(3)[0], np.eye(3)[1]
    np.testing.assert_allclose(conv.R_BODY_OPTICAL @ forward_optical, [1, 0, 0])  # z forward -> x forward
    np.testing.assert_allclose(conv.R_BODY_OPTICAL @ right_optical, [0, -1, 0])  # x right -> -y (y is left)
    np.testing.assert_allclose(conv.R_BODY_OPTICAL @ down_optical, [0, 0, -1])  # y down -> -z (z is up)
    covariance = np.diag([1.0, 2.0, 3.0, 0.1, 0.2, 0.3])
    body = conv.rotate_covariance(covariance, conv.R_BODY_OPTICAL)
    np.testing.assert_allclose(np.diag(body), [3.0, 1.0, 2.0, 0.3, 0.1, 0.2])


def test_stamp_round_trip_keeps_nanoseconds():
    stamp = conv.seconds_to_stamp(1700000000.123456789)
    assert stamp.sec == 1700000000 and abs(stamp.nanosec - 123456789) <= 256  # float64 resolution
    assert conv.stamp_to_seconds(conv.seconds_to_stamp(12.5)) == 12.5


def test_point_clouds_have_documented_fields_and_round_trip():
    header = Header(frame_id="camera")
    xy = RNG.random((30, 2)).astype(np.float32) * 100
    scores = RNG.random(30).astype(np.float32)
    cloud = conv.keypoints_to_cloud(header, xy, scores)
    assert isinstance(cloud, PointCloud2)
    assert [f.name for f in cloud.fields] == ["u", "v", "score"]
    assert all(f.datatype == PointField.FLOAT32 for f in cloud.fields)
    assert (cloud.width, cloud.height, cloud.point_step, len(cloud.data)) == (30, 1, 12, 360)
    fields = conv.unpack_cloud(cloud)
    np.testing.assert_array_equal(fields["u"], xy[:, 0])
    np.testing.assert_array_equal(fields["score"], scores)
    rays = np.column_stack([xy / 500.0, np.ones(30)])
    with_rays = conv.unpack_cloud(conv.keypoints_to_cloud(header, xy, scores, rays))
    assert list(with_rays) == ["u", "v", "score", "x", "y", "z"]
    np.testing.assert_allclose(with_rays["y"], xy[:, 1] / 500.0, rtol=1e-6)
    xy1 = xy + 1.5
    matches = conv.matches_to_cloud(header, xy, xy1, scores)
    fields = conv.unpack_cloud(matches)
    assert list(fields) == ["u0", "v0", "u1", "v1", "confidence"]
    np.testing.assert_array_equal(fields["v1"], xy1[:, 1])
    empty = conv.matches_to_cloud(header, np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0))
    assert empty.width == 0 and all(len(v) == 0 for v in conv.unpack_cloud(empty).values())
