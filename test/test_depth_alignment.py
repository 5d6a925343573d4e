"""Depth-only tracking (``odometry.depth_alignment``): point-to-plane ICP between two depth images recovers the
camera's motion where the scene's shape fixes it, and refuses a bare wall, which does not."""

from __future__ import annotations

import numpy as np
import pytest

from silk_ros.geometry.camera import Camera
from silk_ros.geometry.pose import invert_pose, make_pose, rotation_angle_deg, so3_exp
from silk_ros.odometry.depth_alignment import FINEST_COLUMNS, MIN_SURFACE_AGREEMENT, DepthGrid, _Pairing, align_depth

CAMERA = Camera.from_intrinsics(260.0, 260.0, 159.5, 119.5, 320, 240)
#: A room's corner: the floor (y = 1), the left wall (x = -1.5), the back wall (z = 3) in the world frame.
PLANES = ((np.array([0.0, -1.0, 0.0]), -1.0), (np.array([1.0, 0.0, 0.0]), -1.5), (np.array([0.0, 0.0, -1.0]), -3.0))


def render_depth(T_world_cam: np.ndarray, planes=PLANES, size=(480, 640)) -> np.ndarray:
    """Depth (z along the optical axis, m) of the nearest plane n.x = d in front of a 640x480 camera (CAMERA x 2)."""
    height, width = size
    scale = width / CAMERA.width
    u, v = np.meshgrid(np.arange(width), np.arange(height))
    rays_cam = np.stack([((u + 0.5) / scale - 0.5 - CAMERA.cx) / CAMERA.fx,
                         ((v + 0.5) / scale - 0.5 - CAMERA.cy) / CAMERA.fy, np.ones(u.shape)], axis=-1)
    R, t = T_world_cam[:3, :3], T_world_cam[:3, 3]
    rays = rays_cam @ R.T
    depth = np.full(u.shape, np.inf)
    for normal, d in planes:
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (d - normal @ t) / (rays @ normal)  # ray parameter = depth along the optical axis (rays have z = 1)
        depth = np.where((z > 0) & (z < depth), z, depth)
    return np.where(np.isfinite(depth), depth, 0.0).astype(np.float32)


def grid(depth: np.ndarray) -> DepthGrid:
    return DepthGrid.from_depth(depth, CAMERA, CAMERA.width / FINEST_COLUMNS, 0.1, 20.0)


def looking_into_the_corner(angle_deg: float = 0.0, shift=(0.0, 0.0, 0.0)) -> np.ndarray:
    """T_world_cam of a camera at the room's middle turned towards the corner, then turned and moved a little."""
    base = make_pose(so3_exp(np.array([-0.35, -0.35, 0.0])), np.array([0.2, 0.1, 0.5]))
    step = make_pose(so3_exp(np.radians(angle_deg) * np.array([0.3, 0.9, 0.3]) / np.linalg.norm([0.3, 0.9, 0.3])),
                     np.asarray(shift, float))
    return base @ step


@pytest.mark.parametrize("angle_deg", [2.0, 8.0])
def test_corner_motion_is_recovered_from_the_constant_velocity_guess(angle_deg):
    """A 2 / 8 degree turn and 4 cm step in front of three planes: the ICP started from a guess that is off by a
    third of the motion (a shake slowing down) lands within a millimetre and a tenth of a degree."""
    T0 = looking_into_the_corner()
    T1 = looking_into_the_corner(angle_deg, (0.03, -0.01, 0.025))
    truth = invert_pose(T1) @ T0  # T_dst_src
    half_way = invert_pose(looking_into_the_corner(angle_deg * 2 / 3, (0.02, -0.007, 0.017))) @ T0
    result = align_depth(grid(render_depth(T0)), grid(render_depth(T1)), CAMERA, half_way)
    assert result is not None
    error = invert_pose(truth) @ result.T_dst_src
    assert np.linalg.norm(error[:3, 3]) < 1e-3, error
    assert rotation_angle_deg(error[:3, :3]) < 0.1
    assert result.paired_fraction > 0.6  # the rest turned out of view
    assert result.surface_agreement > 0.99  # every point that lands on measured depth lands on the surface
    assert np.all(np.isfinite(result.covariance)) and np.linalg.eigvalsh(result.covariance).min() > 0


def test_a_bare_wall_is_refused():
    """One plane fixes three of six degrees of freedom (a slide along it is invisible): no pose, not a guess."""
    wall = ((np.array([0.0, 0.0, -1.0]), -3.0),)
    T0 = make_pose(np.eye(3), np.zeros(3))
    T1 = make_pose(so3_exp(np.radians([0.0, 1.0, 0.0])), np.array([0.05, 0.0, 0.0]))
    assert align_depth(grid(render_depth(T0, wall)), grid(render_depth(T1, wall)), CAMERA, np.eye(4)) is None


def test_depth_of_another_resolution_and_holes():
    """The depth image may be larger than the camera's image and have holes (0: a window, a black screen): the grid
    reads it at the camera's pixels, holes give no points, and the motion is still found."""
    T0, T1 = looking_into_the_corner(), looking_into_the_corner(3.0, (0.02, 0.0, 0.0))
    depth0, depth1 = render_depth(T0), render_depth(T1)
    depth1[100:250, 200:400] = 0.0
    depth1[300:420, 50:150] = 0.0
    source = grid(depth0)
    assert source.points.shape == (120, 160, 3)
    assert np.isnan(grid(depth1).points[..., 2]).mean() > 0.1
    result = align_depth(source, grid(depth1), CAMERA, np.eye(4))
    assert result is not None
    error = invert_pose(invert_pose(T1) @ T0) @ result.T_dst_src
    assert np.linalg.norm(error[:3, 3]) < 2e-3


def test_a_pose_off_the_surface_does_not_agree_with_it():
    """The acceptance check on its own: under the true motion every point that lands on measured depth lands on the
    surface; 10 cm along the floor (a slide the back and left walls see) most do not."""
    T0, T1 = looking_into_the_corner(), looking_into_the_corner(3.0, (0.02, 0.0, 0.0))
    source, target = grid(render_depth(T0)), grid(render_depth(T1))
    points = source.points.reshape(-1, 3)
    truth = invert_pose(T1) @ T0
    assert _Pairing(truth, points, target, CAMERA, 0.08).surface_agreement() > 0.99
    slid = make_pose(np.eye(3), np.array([0.1, 0.0, 0.1])) @ truth
    assert _Pairing(slid, points, target, CAMERA, 0.08).surface_agreement() < MIN_SURFACE_AGREEMENT
