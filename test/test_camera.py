"""Camera model: projection and undistortion agree with OpenCV, resizing keeps pixel-centre geometry, bad
calibrations are refused with a message that names the problem."""

from __future__ import annotations

import math
import re

import cv2
import numpy as np
import pytest

from silk_ros.geometry.camera import Camera, CameraError

EUROC = Camera.from_intrinsics(458.654, 457.296, 367.215, 248.375, 752, 480,
                               [-0.28340811, 0.07395907, 0.00019359, 1.76187114e-05])
TUM_FR2 = Camera.from_intrinsics(520.9, 521.0, 325.1, 249.7, 640, 480, [0.2312, -0.7849, -0.0033, -0.0001, 0.9172])
RATIONAL = Camera(640, 480, [[500.0, 0, 321.3], [0, 498.0, 238.9], [0, 0, 1]],
                  [0.12, -0.05, 0.001, -0.0005, 0.01, 0.11, -0.04, 0.008], "rational_polynomial")
FISHEYE = Camera(800, 600, [[290.0, 0, 401.0], [0, 291.0, 298.5], [0, 0, 1]], [0.05, -0.01, 0.003, -0.0006],
                 "equidistant")


def points_in_view(camera: Camera, n: int = 400, seed: int = 0) -> np.ndarray:
    """3D points whose ideal projections fill the central 90 % of the image."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(0.05 * camera.width, 0.95 * camera.width, n)
    v = rng.uniform(0.05 * camera.height, 0.95 * camera.height, n)
    z = rng.uniform(0.5, 20.0, n)
    return np.column_stack([(u - camera.cx) / camera.fx * z, (v - camera.cy) / camera.fy * z, z])


def opencv_project(camera: Camera, points: np.ndarray) -> np.ndarray:
    zero = np.zeros(3)
    if camera.model == "equidistant":
        pix, _ = cv2.fisheye.projectPoints(points.reshape(-1, 1, 3), zero, zero, camera.K, camera.distortion)
    else:
        pix, _ = cv2.projectPoints(points, zero, zero, camera.K, camera.distortion)
    return pix.reshape(-1, 2)


@pytest.mark.parametrize("camera", [EUROC, TUM_FR2, RATIONAL, FISHEYE], ids=lambda c: c.model)
def test_undistort_round_trip_against_opencv_projection(camera):
    points = points_in_view(camera)
    distorted = opencv_project(camera, points)
    np.testing.assert_allclose(camera.project(points), distorted, atol=1e-9)
    ideal = points[:, :2] / points[:, 2:]
    np.testing.assert_allclose(camera.normalized(distorted), ideal, atol=1e-9)
    ideal_pixels = ideal * [camera.fx, camera.fy] + [camera.cx, camera.cy]
    # micro-pixels, even at EuRoC's strongly distorted corners
    np.testing.assert_allclose(camera.undistort_points(distorted), ideal_pixels, atol=1e-6)
    assert np.abs(distorted - camera.undistort_points(distorted)).max() > 1.0  # the lens really distorts


def test_backproject_inverts_project():
    points = points_in_view(EUROC, seed=3)
    np.testing.assert_allclose(EUROC.backproject(EUROC.project(points), points[:, 2]), points, atol=1e-8)


def test_points_behind_the_camera_project_to_nan():
    pix = TUM_FR2.project([[0.0, 0.0, -1.0], [0.1, 0.0, 2.0]])
    assert np.isnan(pix[0]).all() and np.isfinite(pix[1]).all()


def test_resize_rescales_intrinsics_with_pixel_centre_convention():
    half = TUM_FR2.scaled(320, 240)
    assert (half.width, half.height) == (320, 240)
    assert half.fx == pytest.approx(520.9 / 2) and half.fy == pytest.approx(521.0 / 2)
    assert half.cx == pytest.approx((325.1 + 0.5) / 2 - 0.5) and half.cy == pytest.approx((249.7 + 0.5) / 2 - 0.5)
    np.testing.assert_array_equal(half.distortion, TUM_FR2.distortion)
    # the same 3D points land on the resized pixel positions x' = (x + 0.5) * s - 0.5
    points = points_in_view(TUM_FR2, seed=1)
    np.testing.assert_allclose(half.project(points), (TUM_FR2.project(points) + 0.5) * 0.5 - 0.5, atol=1e-9)
    # and on a real resized image: a bright dot's centroid moves exactly that way
    image = np.zeros((480, 640), np.float32)
    cv2.circle(image, (400, 200), 6, 1.0, -1)
    small = cv2.resize(image, (320, 240), interpolation=cv2.INTER_AREA)
    ys, xs = np.nonzero(small)
    centroid = np.array([np.average(xs, weights=small[ys, xs]), np.average(ys, weights=small[ys, xs])])
    np.testing.assert_allclose(centroid, (np.array([400, 200]) + 0.5) * 0.5 - 0.5, atol=0.05)
    # anisotropic resize
    odd = EUROC.scaled(376, 300)
    assert odd.fx == pytest.approx(EUROC.fx * 0.5) and odd.fy == pytest.approx(EUROC.fy * 300 / 480)


def test_camera_info_round_trip_and_aliases():
    info = EUROC.to_camera_info()
    assert info["distortion_model"] == "plumb_bob" and len(info["k"]) == 9 and len(info["p"]) == 12
    assert Camera.from_camera_info(info) == EUROC
    ros1 = {"width": 640, "height": 480, "K": TUM_FR2.K.ravel().tolist(), "D": list(TUM_FR2.distortion),
            "distortion_model": "plumb_bob"}
    assert Camera.from_camera_info(ros1) == TUM_FR2
    plain = Camera.from_camera_info({"width": 10, "height": 8, "k": [5, 0, 4.5, 0, 5, 3.5, 0, 0, 1], "d": [0] * 5,
                                     "distortion_model": "plumb_bob"})
    assert not plain.is_distorted
    np.testing.assert_allclose(plain.undistort_points([[1.0, 2.0]]), [[1.0, 2.0]])
    assert Camera(10, 8, np.eye(3), [0.1, 0, 0, 0], "radial-tangential").model == "plumb_bob"
    assert Camera(10, 8, np.eye(3), [0.1, 0, 0, 0], "fisheye").model == "equidistant"


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"K": [[0.0, 0, 1], [0, 500, 1], [0, 0, 1]]}, "focal lengths must be positive"),
        ({"K": [[-500.0, 0, 1], [0, 500, 1], [0, 0, 1]]}, "focal lengths must be positive"),
        ({"K": [[math.nan, 0, 1], [0, 500, 1], [0, 0, 1]]}, "NaN"),
        ({"K": [[500.0, 0, 1], [0, 500, 1]]}, "9 entries"),
        ({"K": np.eye(3) * [500, 500, 2]}, "last row"),
        ({"K": [[500.0, 0.5, 1], [0, 500, 1], [0, 0, 1]]}, "skew"),
        ({"model": "division"}, "unknown distortion model 'division'"),
        ({"model": "plumb_bob", "distortion": [0.1, 0.2]}, "needs 4 or 5 coefficients, got 2"),
        ({"model": "equidistant", "distortion": [0.1] * 5}, "needs 4 coefficients"),
        ({"model": "none", "distortion": [0.1, 0, 0, 0]}, "non-zero coefficients"),
        ({"model": "plumb_bob", "distortion": [0.1, math.inf, 0, 0]}, "NaN or infinity"),
        ({"width": 0}, "positive integers"),
    ],
)
def test_bad_calibrations_are_refused(kwargs, message):
    args = {"width": 640, "height": 480, "K": [[500.0, 0, 320], [0, 500, 240], [0, 0, 1]], "distortion": (),
            "model": "none", **kwargs}
    with pytest.raises(CameraError, match=message):
        Camera(**args)


def test_bad_inputs_to_methods():
    with pytest.raises(CameraError, match="lacks k"):
        Camera.from_camera_info({"width": 640, "height": 480})
    with pytest.raises(CameraError, match=r"shape \(N, 2\)"):
        EUROC.undistort_points(np.zeros((4, 3)))
    with pytest.raises(CameraError, match="non-positive"):
        EUROC.scaled(0, 100)


@pytest.mark.parametrize(
    "intrinsics, message",
    [
        ((1e9, 1e9, 319.5, 239.5), "fx = 1e\\+09 px gives a"),  # issue 15: accepted before
        ((3.6, 3.6, 319.5, 239.5), "fx = 3.6 px"),  # focal length in millimetres
        ((525.0, 525.0, 639.5, 479.5), None),  # principal point at the corner: odd but on the image
        ((525.0, 525.0, 1279.0, 959.0), "principal point .* lies off the 640x480 image"),  # another resolution's
        ((525.0, 105.0, 319.5, 239.5), "fx / fy"),
    ],
)
def test_implausible_intrinsics_are_named(intrinsics, message):
    from silk_ros.geometry.camera import intrinsics_problem

    problem = intrinsics_problem(640, 480, *intrinsics)
    if message is None:
        assert problem is None
    else:
        assert problem is not None and re.search(message, problem), problem


def test_the_cameras_of_the_datasets_are_plausible():
    from silk_ros.geometry.camera import intrinsics_problem

    cameras = {
        "KITTI 07": (1226, 370, 707.09, 707.09, 601.89, 183.11),
        "TUM fr2": (640, 480, 520.9, 521.0, 325.1, 249.7),
        "EuRoC": (752, 480, 458.65, 457.30, 367.22, 248.38),
        "7-Scenes": (640, 480, 585.0, 585.0, 320.0, 240.0),
        "TartanAir": (640, 480, 320.0, 320.0, 320.0, 240.0),
        "fisheye (equidistant, 190 degrees)": (1280, 1024, 390.0, 390.0, 640.0, 512.0),
        "1x1 test image": (1, 1, 1.0, 1.0, 0.0, 0.0),
    }
    assert {name: intrinsics_problem(*c) for name, c in cameras.items() if intrinsics_problem(*c)} == {}
