"""The odometry's settings: one typed config holding the extractor's and the matchers' as sections.

Each setting is declared once, with its default, description and range (``silk_ros.schema.setting``); the settings
table (``silk_ros.settings``), the node's parameters and ``config/odometry.yaml`` all follow from these fields.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..features.config import FEATURE_KINDS, ExtractorConfig
from ..matching.config import MatchingConfig
from ..schema import ConfigError, coerce_numbers, section_fields, setting, setting_fields

__all__ = ["OdometryConfig", "ConfigError", "FEATURE_KINDS", "MODES", "uses_depth"]

MODES = ("auto", "mono", "rgbd")


def uses_depth(mode: str, has_depth: bool, depth_scale: bool = False) -> bool:
    """Whether the odometry runs RGB-D: depth comes with the frames and the mode does not ignore it (``auto`` with
    ``depth_scale`` tracks monocular and uses the depth for the scale only)."""
    return has_depth and (mode == "rgbd" or (mode == "auto" and not depth_scale))


def _odometry_extractor() -> ExtractorConfig:
    """The extractor at the odometry's working resolution (<= 320x240): NMS radius 2 + sub-pixel.  Chosen with the
    step-19,500 SiLK weights on the validation rooms of ``training.vo_check`` (mean of median ATE, 3 seeds: radius 1
    0.0311 m, radius 2 0.0198 m, 0 lost), then through the benchmark gate (MODEL_CARD.md, "Session 13").  Context
    descriptors on, as in the extractor: every sequence's median ATE lower over perturbed runs (BENCHMARKS.md `vo`,
    "Session 20"; fast synthetic head shakes are worse).  Refined matches off, unlike the extractor: every benchmark
    sequence's median ATE was higher with them (BENCHMARKS.md `vo`, "Session 26")."""
    return ExtractorConfig(nms_radius=2, refine_matches=False)


@dataclass
class OdometryConfig:
    """Every setting of the odometry: the front end's (``extractor``, ``matching``) and its own.

    Files and command lines name each setting by its field name alone (``top_k``, ``matcher``, ``ransac_threshold_px``):
    :meth:`from_dict` and :meth:`replace` find the section a name belongs to."""

    # --- front end -------------------------------------------------------------------------------
    extractor: ExtractorConfig = field(default_factory=_odometry_extractor)
    matching: MatchingConfig = field(default_factory=MatchingConfig)
    blas_threads: int = setting(
        1, "numpy BLAS threads (0: leave; 1 keeps idle BLAS workers off the cores: matching is tiny)", range=(0, 64)
    )
    #: Working resolution: explicit ``input_width`` x ``input_height`` when both > 0, else images larger than
    #: ``max_pixels`` are shrunk (aspect kept).  The camera is rescaled with the image.  The pixel settings (parallax,
    #: RANSAC and NMS radii) are tuned at the default 320x240: at 640x480 with them unchanged 7-Scenes mono was 5x
    #: worse, with the parallax and NMS doubled still 2x (BENCHMARKS.md ``vo``, session 24).
    input_width: int = setting(0, "working width (px); 0 with input_height 0: shrink to max_pixels", range=(0, 8192))
    input_height: int = setting(0, "working height (px); 0 with input_width 0: shrink to max_pixels", range=(0, 8192))
    max_pixels: int = setting(76800, "images larger than this are shrunk (aspect kept)", range=(1000, 50_000_000))
    # --- geometry --------------------------------------------------------------------------------
    #: The node pairs images with the depth topic only in ``rgbd`` (or with ``depth_scale``).
    mode: str = setting("auto", "auto: use depth when given; mono: ignore depth; rgbd: require depth", choices=MODES)
    ransac_threshold_px: float = setting(
        1.0, "robust estimator inlier threshold (working-resolution px)", range=(0.1, 20.0)
    )
    ransac_confidence: float = setting(0.999, "robust estimator confidence", range=(0.5, 0.999999))
    ransac_iterations: int = setting(1000, "robust estimator iterations", range=(10, 100000))
    #: OpenCV seeds its robust estimators itself (the same draws every run): another seed shuffles the
    #: correspondences first, which is another draw (``bench vo --perturb`` uses it to measure the spread).
    ransac_seed: int = setting(
        0, "robust estimators' random draw: 0 keeps OpenCV's fixed sampling, any other value shuffles the "
        "correspondences first (another draw, same estimator)", range=(0, 2**31 - 1)
    )
    #: MAGSAC++ stops once its confidence is reached, at a few pixels of parallax sometimes on a wrong pose that
    #: explains nearly as many matches as the true one. With more draws a new map's pose is the best-supported draw
    #: (``estimation.more_essential_draws``); the first draw alone still decides whether and when a map starts. Draws
    #: that also decided when (session 33) started maps earlier, at marginal parallax, and two synthetic-room tests got
    #: worse (orientation ten frames in 0.13 -> 0.85 degrees; a restart's scale 0.85x -> 1.65x the first map's); draws
    #: on every keyframe's essential matrix were slightly worse on the design set (session 32). On a Zen 3 three draws
    #: fix TUM desk's wrong first map (worst of 10 runs 9.9x -> 1.4x the median) and leave KITTI 07, 7-Scenes and the
    #: design set level: BENCHMARKS.md ``vo``, sessions 32-34.
    init_essential_draws: int = setting(
        3, "monocular: essential-matrix estimations for a new map, each another draw; the pose with the most "
        "matches within the inlier threshold of its epipolar geometry is kept", range=(1, 20)
    )
    #: Below this median rotation-compensated parallax translation is not observable: rotation only, the
    #: translation stays with the keyframe (deferred, never lost or invented).
    static_parallax_px: float = setting(
        1.0, "median rotation-compensated parallax (px) below which only rotation is estimated", range=(0.0, 100.0)
    )
    init_parallax_px: float = setting(
        4.0, "monocular: parallax (px) needed to initialise the map", range=(0.0, 200.0)
    )
    init_min_points: int = setting(40, "monocular: triangulated points needed to initialise the map", range=(5, 10000))
    #: A GRIC-like test: the pure-rotation model keeping fewer than this fraction of the essential matrix's inliers.
    rotation_inlier_ratio: float = setting(
        0.8, "monocular, no map: translation counts as observable when the pure rotation keeps fewer than this "
        "fraction of the essential matrix's inliers", range=(0.0, 1.0)
    )
    keyframe_parallax_px: float = setting(14.0, "new keyframe above this parallax (px)", range=(0.5, 200.0))
    #: ... or (monocular: with enough parallax to triangulate) below this inlier count.
    keyframe_min_inliers: int = setting(80, "new keyframe below this inlier count", range=(5, 10000))
    #: A turn away from the map with the camera near the keyframe (a head shake swinging back): PnP still poses the
    #: frame but its inliers run out, and there is no parallax to triangulate a successor.  Such a frame (fewer than
    #: twice ``min_inliers`` inliers, under ``init_parallax_px``) turned at least this far from its keyframe becomes a
    #: keyframe at its own pose carrying the map points it sees, as after a pure rotation.  Driving forward also
    #: loses inliers at low parallax but turns little: the angle tells the two apart (BENCHMARKS.md `vo`, session 37).
    turn_keyframe_deg: float = setting(
        5.0, "monocular: a PnP frame this many degrees from its keyframe, with under twice min_inliers inliers and no "
        "parallax to triangulate, becomes a keyframe carrying the map points it sees (0: off)", range=(0.0, 180.0)
    )
    epipolar_refinement: bool = setting(
        True, "monocular tracking: PnP pose refined jointly on the map points and the epipolar distance of every match"
    )
    #: Tracking with a motion model (as ORB-SLAM does): the last two frames' poses on the same keyframe predict this
    #: one, and the map correspondences that reproject near the prediction are refined by Levenberg-Marquardt; the
    #: robust estimator runs only when that keeps fewer inliers (``good_inliers``, 80 % of the last frame's).
    motion_prior: bool = setting(
        True, "track from the constant-velocity prediction on the keyframe's map; robust estimation only when the "
        "prediction loses inliers (false: robust estimation every frame)"
    )
    guided_radius_px: float = setting(
        0.0, "with a motion prediction, the keyframe's map points are matched to the frame's features within this "
        "radius (px, working resolution) of where the prediction projects them: mutual nearest neighbours in the "
        "neighbourhood, not the whole image (0: off)", range=(0.0, 100.0)
    )
    #: RGB-D: a new keyframe's pose is refined against the depth points of the last ``window_keyframes`` keyframes
    #: (the new one included; 1 = chaining only).  Monocular: they are bundle-adjusted together, the oldest two fixed.
    window_keyframes: int = setting(
        5, "local map: RGB-D pose refinement on, monocular bundle adjustment of, the last N keyframes", range=(1, 50)
    )
    #: RGB-D tracking on the local map (as ORB-SLAM does): each frame's PnP pose is refined on the depth points of
    #: the window's keyframes it matches, not only its keyframe's.  Measured on 7-Scenes RGB-D (5 perturbed runs):
    #: median ATE 0.0408 -> 0.0395 m, worst 0.0423 -> 0.0404 m; ~4 MNN matches more per frame.
    local_map_tracking: bool = setting(
        True, "RGB-D: every tracked frame is refined on the window keyframes' depth points (false: new keyframes only)"
    )
    #: Monocular tracking on the local map: each frame's pose (PnP on its keyframe's map, refined with the epipolar
    #: distances) is also refined on the landmarks of the window's other keyframes that it matches (points two or
    #: more keyframes observed, bundle-adjusted).  Over 10 perturbed runs (BENCHMARKS.md, session 17): KITTI 07's
    #: worst ATE 0.680 -> 0.521 m and lost frames 4 -> 0 (worst/median 1.91 -> 1.41), medians within 5 % (KITTI
    #: +3.9 %, 7-Scenes mono +1.8 %, TUM desk -4.7 %); fast synthetic motion 4-18 % lower; ~6 ms more per frame.
    landmark_tracking: bool = setting(
        True, "monocular: every tracked frame is also refined on the window keyframes' landmarks it matches"
    )
    #: Monocular: a keyframe made while turning in place (no parallax to triangulate) also takes the landmarks of
    #: the window's older keyframes that it matches (descriptor match gated by their reprojection), not only the
    #: points its predecessor saw, so a head shake on sparse texture does not thin the map until it restarts.  The
    #: covisible keyframes come from the keyframe memory, which monocular runs keep for this (bounded: up to
    #: ``KEYFRAME_MEMORY`` keyframes, ~60 MB with context descriptors).  Measured on the design set (BENCHMARKS.md
    #: ``design``, session 24): head shakes on blank walls lose fewer frames; the benchmark sequences (7-Scenes,
    #: KITTI 07, TUM desk, EuRoC at rest; 25 perturbed runs) are unchanged to the last digit.
    rotation_keeps_window_map: bool = setting(
        True, "monocular: a keyframe made while turning keeps the window's landmarks it sees (not only its "
        "predecessor's)"
    )
    #: Remembered keyframes outside the window whose points project into a new keyframe's view join its local map,
    #: so the window does not drift off an area it comes back to: RGB-D, their depth points refine the keyframe's pose.
    covisible_keyframes: int = setting(
        4, "older keyframes seeing a new keyframe's area join its local map (RGB-D pose refinement; monocular bundle "
        "adjustment with covisible_bundle) (0: off)", range=(0, 20),
    )
    #: Monocular: the covisible keyframes are also matched to the new keyframe (landmark fusion) and held fixed in its
    #: bundle adjustment, so the window's scale and position stay tied to the map it moves along.  On since session
    #: 35: 7-Scenes mono median ATE of 10 perturbed runs 0.0399 -> 0.0330 m (BENCHMARKS.md `vo`).  Session 10 had
    #: measured it mixed on the odometry of then (7-Scenes mono 0.097 -> 0.119 m).
    covisible_bundle: bool = setting(
        True, "monocular: the covisible keyframes join the local bundle adjustment, held fixed, landmarks fused"
    )
    #: Two passes: all observations, then without the outliers.
    bundle_iterations: int = setting(
        5, "local bundle adjustment (monocular; RGB-D with rgbd_bundle): Levenberg-Marquardt iterations per pass "
        "(0: off)", range=(0, 100)
    )
    #: RGB-D keyframes bundle-adjusted with their landmarks and measured depths instead of pose-only refinement on
    #: the window's depth points.  Off: measured worse (7-Scenes RGB-D ATE 0.0394 -> 0.0430 m; synthetic rooms with
    #: Kinect-like depth noise, mean 1.46 -> 1.65 mm).
    rgbd_bundle: bool = setting(
        False, "RGB-D: new keyframes are bundle-adjusted with the window's landmarks and their measured depths"
    )
    #: RGB-D: the window refinement of a frame's pose also fits the depth its own image measured at the matched
    #: keypoints (``estimation.refine_pose_with_depth``), as ORB-SLAM's RGB-D tracking does, not only the reprojection
    #: of the keyframes' depth points.  0.05 1/m per pixel is ORB-SLAM3's weighting of a Kinect (bf = 40 px m at 640
    #: px) at the 320-px working width.  Measured (BENCHMARKS.md ``vo``, session 28): the synthetic rooms with
    #: Kinect-like depth noise, median ATE 1.5 -> 1.4 mm (every room lower; 0.005: 1.2 mm); 7-Scenes RGB-D, whose
    #: ground truth and unregistered depth limit it, level (median 0.0378 m, worst 0.0403 -> 0.0399 m; 0.005: 0.0383).
    tracking_inverse_depth_sigma: float = setting(
        0.05, "RGB-D: the frame's own depth joins its pose refinement, an inverse-depth error of this size (1/m) "
        "counting like a pixel (0: off)", range=(0.0, 10.0)
    )
    #: RGB-D: a pose must agree with the depth its own frame measured.  On a blank wall under fast motion and blur,
    #: RANSAC PnP can settle on a wrong pose held by a few reprojection inliers (design set, room8 RGB-D: a 0.7 m jump
    #: on 30 inliers, none of them within 0.05 1/m of the frame's depth).  Such a frame is lost instead (lost
    #: covariance, relocalisation), not published as tracked.  The gate is loose, twice
    #: ``tracking_inverse_depth_sigma``: only gross contradictions count.  Measured (BENCHMARKS.md ``vo``, session
    #: 38): RGB-D design set, room8 ATE 0.212 -> 0.101 m, the other nine rooms identical; on 7-Scenes RGB-D it never
    #: fires (at most 3 % of a pose's inliers disagree, never fewer than 68 agree).
    depth_gate_inverse_m: float = setting(
        0.1, "RGB-D: a pose is rejected when fewer than min_inliers of its inliers lie within this inverse depth "
        "(1/m) of the depth the frame measured (0: off)", range=(0.0, 10.0)
    )
    min_triangulation_deg: float = setting(
        0.6, "triangulated points need this angle between the two rays (degrees)", range=(0.0, 90.0)
    )
    depth_min: float = setting(0.1, "RGB-D: nearest valid depth (m)", range=(0.0, 100.0))
    depth_max: float = setting(20.0, "RGB-D: farthest valid depth (m)", range=(0.1, 1000.0))
    #: Learned keypoints sit on edges, where the single nearest depth sample often belongs to the background.
    depth_window_radius: int = setting(
        2, "RGB-D: keypoint depth = median of a (2r+1)^2 patch at depth resolution (r: this radius)", range=(0, 10)
    )
    depth_min_valid_fraction: float = setting(
        0.5, "RGB-D: no depth with fewer valid patch pixels (holes, the sensor's shadow)", range=(0.0, 1.0)
    )
    depth_max_relative_spread: float = setting(
        0.1, "RGB-D: no depth across a depth edge ((max - min) > this x median)", range=(0.0, 10.0)
    )
    # --- metric scale of monocular runs (silk_ros.odometry.metric_scale) ---------------------------
    camera_height: float = setting(
        0.0, "monocular, ground robots: height (m) of the camera above a flat ground, which scales the trajectory to "
        "metres (ground plane fitted to the map points below the camera); 0: off (arbitrary units)",
        range=(0.0, 100.0),
    )
    depth_scale: bool = setting(
        False, "track monocular and scale the trajectory to metres by the depth images given with the frames "
        "(median ratio of depth to map depth at keyframes); the node then subscribes to depth"
    )
    # --- tracking state --------------------------------------------------------------------------
    min_inliers: int = setting(20, "fewer inliers: tracking LOST", range=(5, 10000))
    good_inliers: int = setting(60, "fewer inliers: tracking DEGRADED (covariance inflated)", range=(5, 10000))
    max_lost_frames: int = setting(
        3, "consecutive lost frames before the current frame becomes a new keyframe (re-initialisation)",
        range=(0, 10000),
    )
    #: A frame its keyframe cannot track (motion blur, a fast turn) is matched to the window's other keyframes,
    #: newest first; PnP on one's map with twice ``min_inliers`` resumes tracking in the same map (monocular: with its
    #: scale) instead of re-initialising a new one after ``max_lost_frames``.
    relocalise_keyframes: int = setting(
        4, "window keyframes a lost frame is matched to, to resume tracking on their map (0: none)", range=(0, 50)
    )
    #: RGB-D: a lost frame's pose follows the last two tracked frames' motion (constant velocity, at most
    #: ``MAX_PREDICTED_INTERVALS`` frame intervals past the last tracked one) instead of holding still, so a map that
    #: restarts after ``max_lost_frames`` starts nearer where the camera is.  Monocular restarts take a new scale
    #: anyway; not tried there.  Measured (BENCHMARKS.md ``vo``, session 38): RGB-D design set, room8 (blank walls,
    #: head shake, blur; 4 lost frames a run) ATE 0.101 -> 0.061 m with ``depth_gate_inverse_m`` (without the gate it
    #: coasts on a wrong pose: 0.88 m); no other room and no RGB-D benchmark sequence loses a frame.
    coast_lost_frames: bool = setting(
        True, "RGB-D: a lost frame's pose follows the last tracked motion (constant velocity) instead of holding still"
    )
    #: RGB-D: a frame that neither its keyframe nor the window's keyframes pose (blank walls, blur, a fast turn) is
    #: aligned by its depth to the last posed frame's (``depth_alignment.align_depth``: projective point-to-plane
    #: ICP from the constant-velocity guess), and becomes a keyframe at that pose, so the next frames track features
    #: near it in the same map instead of coasting and restarting one.  Accepted only when the depth fixes all six
    #: degrees of freedom (not one bare wall).  Measured (BENCHMARKS.md ``vo``, session 39, a Zen 4): RGB-D design
    #: set, room8 (blank walls, head shake, blur) over six seeds mean ATE 0.0323 -> 0.0233 m, lost frames 24 -> 0;
    #: the other nine rooms and 7-Scenes RGB-D lose no frame and are unchanged.
    depth_alignment: bool = setting(
        True, "RGB-D: a frame the features cannot pose is aligned to the last posed frame's depth (ICP)"
    )
    # --- covariance ------------------------------------------------------------------------------
    min_pixel_sigma: float = setting(
        0.3, "floor of the reprojection residual sigma (px) scaling the pose covariance", range=(0.0, 100.0)
    )
    degraded_inflation: float = setting(25.0, "covariance multiplier while DEGRADED", range=(1.0, 1.0e6))
    #: Large, finite: consumers can still fuse it.
    lost_variance: float = setting(1.0e6, "variance of every axis while LOST", range=(0.0, 1.0e12))
    static_translation_sigma: float = setting(
        0.05, "translation sigma (map units) of rotation-only updates when no map gives a depth scale",
        range=(0.0, 1000.0),
    )
    # --- memory ----------------------------------------------------------------------------------
    max_trajectory_poses: int = setting(
        0, "poses the odometry keeps in memory (0: all, for evaluation; bound it on a robot)", range=(0, 10**9)
    )

    def __post_init__(self) -> None:
        coerce_numbers(self)
        self.validate()

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got '{self.mode}'")
        positive = ("max_pixels", "ransac_threshold_px", "min_inliers", "init_min_points")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.extractor.top_k > 0:
            raise ConfigError(f"top_k must be positive, got {self.extractor.top_k}")
        if (self.input_width > 0) != (self.input_height > 0):
            raise ConfigError("input_width and input_height must be given together (or both 0)")
        if self.good_inliers < self.min_inliers:
            raise ConfigError(f"good_inliers ({self.good_inliers}) must be >= min_inliers ({self.min_inliers})")
        if not 0 <= self.static_parallax_px < self.init_parallax_px <= self.keyframe_parallax_px:
            raise ConfigError("need 0 <= static_parallax_px < init_parallax_px <= keyframe_parallax_px")
        if self.window_keyframes < 1:
            raise ConfigError(f"window_keyframes must be >= 1, got {self.window_keyframes}")
        if self.bundle_iterations < 0:
            raise ConfigError(f"bundle_iterations must be >= 0, got {self.bundle_iterations}")
        if self.depth_window_radius < 0 or not 0 <= self.depth_min_valid_fraction <= 1:
            raise ConfigError("need depth_window_radius >= 0 and 0 <= depth_min_valid_fraction <= 1")
        if not self.depth_min < self.depth_max:
            raise ConfigError(
                f"depth_min ({self.depth_min} m) must be below depth_max ({self.depth_max} m): no depth would be valid"
            )
        if not self.depth_max_relative_spread > 0:
            raise ConfigError(f"depth_max_relative_spread must be positive, got {self.depth_max_relative_spread}")
        if self.camera_height < 0:
            raise ConfigError(f"camera_height must be >= 0 (0: off), got {self.camera_height}")
        if self.camera_height > 0 and self.depth_scale:
            raise ConfigError("camera_height and depth_scale are two scale sources: set one")
        if self.mode == "rgbd" and self.depth_scale:
            raise ConfigError("depth_scale tracks monocular with depth as the scale only; mode rgbd tracks with depth "
                              "(use mode mono or auto with depth_scale)")
        if not 0 < self.ransac_confidence < 1:
            raise ConfigError(f"ransac_confidence must be in (0, 1), got {self.ransac_confidence}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> OdometryConfig:
        """Build from settings by name; unknown names are an error (a typo must not silently keep a default)."""
        return cls().replace(**dict(values or {}))

    @classmethod
    def from_settings(cls, **values: Any) -> OdometryConfig:
        """``OdometryConfig.from_settings(features="orb", mode="rgbd")``: :meth:`from_dict` by keyword."""
        return cls.from_dict(values)

    @classmethod
    def from_yaml(cls, path: str | Path) -> OdometryConfig:
        """Read a YAML file; the settings may sit at top level or under an ``odometry:`` key."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"odometry config file not found: {path}")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
        if "odometry" in data and isinstance(data["odometry"], dict):
            data = data["odometry"]
        try:
            return cls.from_dict(data)
        except (ConfigError, TypeError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc

    def replace(self, **changes: Any) -> OdometryConfig:
        """A copy with the named settings changed, in whichever section each lives."""
        sections = {f.name: {} for f in section_fields(OdometryConfig)}
        own = {}
        for name, value in changes.items():
            section = _SECTION_OF.get(name)
            if section is None:
                raise ConfigError(f"unknown odometry settings {sorted(set(changes) - set(_SECTION_OF))}; "
                                  f"known: {sorted(_SECTION_OF)}")
            (own if section == "odometry" else sections[section])[name] = value
        nested = {name: dataclasses.replace(getattr(self, name), **values) for name, values in sections.items()}
        return dataclasses.replace(self, **nested, **own)

    def to_dict(self) -> dict[str, Any]:
        """Every setting by name (flat, as files and command lines write them)."""
        values = {f.name: getattr(getattr(self, section), f.name) for section, f in _section_settings()}
        values.update({f.name: getattr(self, f.name) for f in setting_fields(OdometryConfig)})
        return copy.deepcopy(values)


def _section_settings() -> list[tuple[str, dataclasses.Field]]:
    """(section name, setting field) of the nested configs."""
    return [(s.name, f) for s in section_fields(OdometryConfig) for f in setting_fields(type(s.default_factory()))]


#: setting name -> the section holding it ("odometry": OdometryConfig itself)
_SECTION_OF: dict[str, str] = {
    **{f.name: section for section, f in _section_settings()},
    **{f.name: "odometry" for f in setting_fields(OdometryConfig)},
}
