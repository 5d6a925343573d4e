"""Metric scale of monocular odometry: the map's arbitrary unit -> metres, from a scale source the robot gives.

A monocular map has no unit of its own: the first map's baseline is 1, and everything after inherits that (up to
drift).  Without a scale source the odometry is in these arbitrary units, and says so (:class:`ScaleState`).  Two
sources turn it into metres:

* ``camera_height`` (ground robots): the height of the camera's optical centre above a flat ground.  At every new
  monocular keyframe the ground plane is fitted to the keyframe's map points (:func:`ground_plane`), and
  ``camera_height / distance from the camera to that plane`` is one measurement of metres per map unit.
  Assumptions, since nothing (no IMU) gives the direction of gravity:

  - the ground is locally flat and in view below the camera: the points used are those below the optical centre
    (``y > 0`` in the optical frame, y pointing down), i.e. in the lower half of a level camera's image;
  - the camera's roll and pitch to the ground stay below ``GROUND_MAX_TILT_DEG`` (30 degrees): the plane's normal
    is within that angle of the camera's down axis (so it is roughly perpendicular to the forward axis, and a
    wall beside the camera, with its normal along x, is never taken for the ground);
  - the ground is the plane below the camera that most map points lie on (RANSAC, inliers within
    ``GROUND_TOLERANCE`` x the camera's distance to the plane: a depth error of e % moves a ground point by e %
    of the camera height from the plane whatever its distance, so the tolerance is relative) *and* that few map
    points lie beneath (at most ``GROUND_MAX_BELOW`` x its inliers, the depth noise of the ground's own points):
    the ground is the lowest surface in view.  A plane through the lower parts of objects (box tops, a car's
    flank, a table) has the ground's points beneath it and is refused; when the ground itself is hardly seen
    there is no measurement, rather than a wrong one;
  - the camera height is constant (a car, a wheeled robot; not a walking robot's bobbing head);
  - the ground is seen over several keyframes: the points of the window's keyframes (the local map, in the
    measured keyframe's frame) are fitted together, not one keyframe's few ground points.

* ``depth_scale`` (a depth image with a monocular run, e.g. a stereo or RGB-D depth topic too sparse or noisy to
  track on): the median ratio of the measured depth at the keyframe's features to their map depth.

Measurements are taken once per new monocular keyframe (after its local bundle adjustment); the scale in force
is the median of the last ``SCALE_WINDOW`` measurements (robust to a few bad ground fits, and following the
map's slow scale drift).  It is applied to the *output* only: the map keeps its own unit, so tracking never sees
a change of scale.

* Until the first measurement the output translation is held where the map started (the rotation is tracked):
  a robot that asked for metres never gets a translation in another unit (a monocular map's unit can be several
  times a metre).  The first ``SCALE_SETTLING`` measurements of a map apply from the keyframe the map started
  at: the path since then is put into metres at once, and re-scaled while the median of the first few settles
  (one bad first fit is outvoted).  These are the only jumps of the output, when the scale becomes known
  (``ScaleState.metric`` turns true) and while it settles.
* Every later change of the scale re-anchors the output at the measured keyframe: the published pose does not
  jump, motion from that keyframe on is scaled by the new value.
* A map restarted after a loss may have another unit: the measurements of the old map are dropped; the scale in
  force stays until the new map's first measurement, which applies from the restart.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..geometry.pose import invert_pose, transform_points
from .keyframe import Keyframe

__all__ = [
    "GROUND_MAX_TILT_DEG",
    "GROUND_TOLERANCE",
    "GROUND_MIN_INLIERS",
    "DEPTH_MIN_POINTS",
    "SCALE_WINDOW",
    "SCALE_SETTLING",
    "GroundPlane",
    "ScaleState",
    "MetricScale",
    "ground_plane",
    "depth_ratio",
    "scale_source",
    "units_note",
]

#: Largest angle (degrees) between the ground's normal and the camera's down axis (y of the optical frame).
GROUND_MAX_TILT_DEG = 30.0
#: Ground inliers lie within this fraction of the camera's distance to the plane (5 %: 8 cm at 1.65 m).
GROUND_TOLERANCE = 0.05
#: At most this many map points (x the plane's inliers) may lie beneath the ground plane, beyond the tolerance.
GROUND_MAX_BELOW = 0.25
#: Fewest ground inliers for a measurement (20 points with 5 % noise fix the distance to ~1 %).
GROUND_MIN_INLIERS = 20
#: The inliers must spread over at least this fraction of the camera height (standard deviation along the plane's
#: second axis): a line of points does not fix a plane.
GROUND_MIN_SPREAD = 0.2
GROUND_RANSAC_ITERATIONS = 300
#: Fewest features with both a map point and a valid depth for a depth-ratio measurement.
DEPTH_MIN_POINTS = 10
#: The scale in force is the median of this many last measurements (one per keyframe).
SCALE_WINDOW = 7
#: The first this many measurements of a map apply from the map's start (the median of three outvotes one bad fit).
SCALE_SETTLING = 3


@dataclass(frozen=True)
class GroundPlane:
    """``normal . p = distance`` in the camera frame; ``normal`` points from the camera down to the plane."""

    normal: np.ndarray
    distance: float
    inliers: np.ndarray  # bool over the points given


def _fit(points: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Least-squares plane: (unit normal with n_y >= 0, distance from the origin, singular values)."""
    centroid = points.mean(axis=0)
    _, singular, vt = np.linalg.svd(points - centroid, full_matrices=False)
    normal = vt[-1] if vt[-1][1] >= 0 else -vt[-1]
    return normal, float(normal @ centroid), singular


def ground_plane(
    points: np.ndarray,
    max_tilt_deg: float = GROUND_MAX_TILT_DEG,
    tolerance: float = GROUND_TOLERANCE,
    min_inliers: int = GROUND_MIN_INLIERS,
    iterations: int = GROUND_RANSAC_ITERATIONS,
    seed: int = 0,
) -> GroundPlane | None:
    """The ground plane among camera-frame ``points`` (N, 3; NaN rows ignored), or None when none is supported.

    Candidates are the points below the optical centre (y > 0, z > 0).  RANSAC on three points, keeping planes
    below the camera whose normal is within ``max_tilt_deg`` of the down axis; inliers within ``tolerance`` x the
    plane's distance, and at most ``GROUND_MAX_BELOW`` x as many points beneath it; the best plane is refitted on
    its inliers (twice).  Deterministic (seeded)."""
    points = np.asarray(points, np.float64)
    finite = np.isfinite(points).all(axis=1)
    candidate = np.flatnonzero(finite & (points[:, 1] > 0) & (points[:, 2] > 0))
    if len(candidate) < max(3, min_inliers):
        return None
    p = points[candidate]
    min_cos = np.cos(np.radians(max_tilt_deg))

    def allowed(normal: np.ndarray, distance: float) -> bool:
        return normal[1] >= min_cos and distance > 0

    rng = np.random.default_rng(seed)
    best, best_count = None, 0
    for _ in range(iterations):
        a, b, c = p[rng.choice(len(p), 3, replace=False)]
        normal = np.cross(b - a, c - a)
        norm = np.linalg.norm(normal)
        if norm < 1e-12:
            continue
        normal = normal / norm
        normal = normal if normal[1] >= 0 else -normal
        distance = float(normal @ a)
        if not allowed(normal, distance):
            continue
        offset = p @ normal - distance
        count = int((np.abs(offset) < tolerance * distance).sum())
        if count > best_count and (offset > tolerance * distance).sum() <= GROUND_MAX_BELOW * count:
            best, best_count = (normal, distance), count
    if best is None or best_count < min_inliers:
        return None
    normal, distance = best
    for _ in range(2):
        inliers = np.abs(p @ normal - distance) < tolerance * distance
        if inliers.sum() < min_inliers:
            return None
        normal, distance, singular = _fit(p[inliers])
        if not allowed(normal, distance):
            return None
    offset = p @ normal - distance
    inliers = np.abs(offset) < tolerance * distance
    spread = singular[1] / np.sqrt(max(int(inliers.sum()), 1))
    if inliers.sum() < min_inliers or spread < GROUND_MIN_SPREAD * distance:
        return None
    if (offset > tolerance * distance).sum() > GROUND_MAX_BELOW * inliers.sum():
        return None
    mask = np.zeros(len(points), bool)
    mask[candidate[inliers]] = True
    return GroundPlane(normal, distance, mask)


def local_map(keyframe: Keyframe, window: Sequence[Keyframe]) -> np.ndarray:
    """The map points of ``keyframe`` and of the other ``window`` keyframes (landmarks it has are not repeated), in
    ``keyframe``'s frame."""
    T_kf_world = invert_pose(keyframe.pose_world)
    points = [keyframe.points]
    own = keyframe.landmarks[keyframe.landmarks >= 0]
    for older in window:
        if older is keyframe:
            continue
        keep = np.isfinite(older.points[:, 0]) & ~np.isin(older.landmarks, own)
        points.append(transform_points(T_kf_world @ older.pose_world, older.points[keep]))
    return np.concatenate(points)


def depth_ratio(map_depth: np.ndarray, measured_depth: np.ndarray, min_points: int = DEPTH_MIN_POINTS) -> float | None:
    """Median of ``measured / map`` depth over the features that have both (metres per map unit), or None."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = measured_depth / map_depth
    ratio = ratio[np.isfinite(ratio) & (map_depth > 0) & (measured_depth > 0)]
    if len(ratio) < min_points:
        return None
    return float(np.median(ratio))


def scale_source(camera_height: float, depth_scale: bool) -> str | None:
    """The configured monocular scale source, as the scale state names it (None: none)."""
    if camera_height > 0:
        return f"camera_height {camera_height:g} m"
    if depth_scale:
        return "depth ratio"
    return None


def units_note(depth_tracking: bool, camera_height: float, depth_scale: bool) -> tuple[bool, str]:
    """(metric, one line for a start-up log) on the unit of the odometry's translations."""
    if depth_tracking:
        return True, "odometry in metres (RGB-D: depth)"
    source = scale_source(camera_height, depth_scale)
    if source is not None:
        return True, (f"monocular odometry in metres from the scale source ({source}) once it is measured at a "
                      "keyframe; the translation is held until then (diagnostics: scale)")
    return False, ("monocular odometry in ARBITRARY units, not metres: no scale source (set camera_height for a "
                   "ground robot, or depth_scale with a depth topic)")


@dataclass(frozen=True)
class ScaleState:
    """What unit the odometry's translations are in (``describe()`` is the diagnostics' ``scale`` field)."""

    metric: bool
    #: "depth" (RGB-D tracking), the monocular scale source (``scale_source``), or None
    source: str | None
    #: metres per map unit in force (monocular with a source: 0 until measured; 1.0 otherwise)
    scale: float = 1.0
    measurements: int = 0

    def describe(self) -> str:
        if self.source == "depth":
            return "metric (depth)"
        if self.metric:
            return f"metric ({self.source})"
        if self.source is None:
            return "arbitrary (monocular, no scale source)"
        return f"not measured yet (monocular; {self.source}): translation held until it is"


class MetricScale:
    """Per-keyframe scale measurements, the filtered scale, and the output trajectory it gives (see the module)."""

    def __init__(self, camera_height: float = 0.0, depth_scale: bool = False):
        self.camera_height = float(camera_height)
        self.depth_scale = bool(depth_scale)
        self.source = scale_source(self.camera_height, self.depth_scale)
        self.reset()

    def reset(self) -> None:
        self._measurements: deque[float] = deque(maxlen=SCALE_WINDOW)  # log metres per map unit
        # metres per map unit in force; with a source, 0 until measured: the translation is held
        self.scale = 0.0 if self.source is not None else 1.0
        self.known = False
        self.count = 0
        self._anchor_internal = np.eye(4)
        self._anchor_output = np.eye(4)
        self._map_start = (np.eye(4), np.eye(4))  # (internal, output) pose of the current map's first keyframe
        self._measured: Keyframe | None = None
        self._measured_size = 0

    def restart(self, pose_internal: np.ndarray) -> None:
        """A map starts at this keyframe pose (after a loss: its unit may differ, the old measurements no longer
        apply; the first measurement of the new map applies from here)."""
        self._measurements.clear()
        self._map_start = (pose_internal.copy(), self.output_pose(pose_internal))

    def state(self, depth_tracking: bool) -> ScaleState:
        if depth_tracking:
            return ScaleState(True, "depth")
        return ScaleState(self.known, self.source, self.scale, self.count)

    def update(self, keyframe: Keyframe | None, min_points: int, window: Sequence[Keyframe] = ()) -> None:
        """Measure ``keyframe`` once, when it is new or its map has just been built (``min_points`` points);
        ``window``: the local map's keyframes (the ground plane is fitted to their points too)."""
        if self.source is None or keyframe is None:
            return
        size = keyframe.map_size
        if keyframe is self._measured and (self._measured_size >= min_points or size < min_points):
            return
        self._measured, self._measured_size = keyframe, size
        if size < min_points:
            return
        value = self._measure(keyframe, window)
        if value is None or not np.isfinite(value) or value <= 0:
            return
        self._measurements.append(float(np.log(value)))
        self.count += 1
        scale = float(np.exp(np.median(self._measurements)))
        if len(self._measurements) <= SCALE_SETTLING:  # the map's path so far goes into metres, from its start
            self._anchor_internal, self._anchor_output = (pose.copy() for pose in self._map_start)
        else:  # re-anchor at the keyframe: its output pose stays, motion after it is scaled by the new value
            self._anchor_output = self.output_pose(keyframe.pose_world)
            self._anchor_internal = keyframe.pose_world.copy()
        self.scale, self.known = scale, True

    def _measure(self, keyframe: Keyframe, window: Sequence[Keyframe]) -> float | None:
        if self.camera_height > 0:
            plane = ground_plane(local_map(keyframe, window))
            return None if plane is None else self.camera_height / plane.distance
        if keyframe.depth_z is None:
            return None
        return depth_ratio(keyframe.points[:, 2], keyframe.depth_z)

    def output_pose(self, internal: np.ndarray) -> np.ndarray:
        """``T_world_cam`` in output units of an internal (map-unit) pose: the motion since the anchor, scaled."""
        if self.source is None:
            return internal.copy()
        motion = invert_pose(self._anchor_internal) @ internal
        motion[:3, 3] *= self.scale
        return self._anchor_output @ motion

    def output_covariance(self, covariance: np.ndarray) -> np.ndarray:
        """A frame's 6x6 covariance (translation first) with its translation in output units."""
        if self.source is None or self.scale == 1.0 or not self.known:  # held: the map-unit covariance stands
            return covariance
        factor = np.array([self.scale] * 3 + [1.0] * 3)
        return covariance * factor[:, None] * factor[None, :]
