"""Odometry settings: one dataclass, defaults mirrored in ``config/odometry.yaml`` (also read by the ROS node)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

__all__ = ["OdometryConfig", "ConfigError", "FEATURE_KINDS", "MODES"]

FEATURE_KINDS = ("silk", "orb", "sift")
MODES = ("auto", "mono", "rgbd")


class ConfigError(ValueError):
    """An odometry setting that is unknown or out of range."""


@dataclass
class OdometryConfig:
    # --- front end -------------------------------------------------------------------------------
    #: ``silk`` (learned), ``orb`` or ``sift`` (OpenCV baselines through the same pipeline).
    features: str = "silk"
    #: SiLK weights: shipped name (``silk-mu``), a path, or ``untrained`` (plumbing tests only).
    weights: str = "silk-mu"
    allow_untrained: bool = False
    #: SiLK backend: ``auto`` (ONNX Runtime when present), ``onnxruntime`` or ``torch``; ``device`` cpu/cuda.
    backend: str = "auto"
    device: str = "cpu"
    threads: int = 0
    #: numpy BLAS threads for this process (matching is tiny; idle BLAS workers slow the network): 0 = leave.
    blas_threads: int = 1
    #: Keypoints per frame (SiLK top-k, ORB/SIFT nfeatures).
    max_keypoints: int = 1000
    #: SiLK non-maximum suppression radius in pixels (spreads keypoints; 0 = none).
    nms_radius: int = 1
    #: SiLK sub-pixel keypoint refinement (quadratic fit of the keypoint logits).
    subpixel: bool = True
    #: Matcher of every frame against its keyframe (tracking), a ``silk_ros.matching.build_matcher`` spec:
    #: ``mnn`` or e.g. ``{name: attention}``.
    matcher: Any = "mnn"
    #: Matcher that re-matches a frame about to become a keyframe (or to initialise the map) against its keyframe:
    #: the new map is triangulated from its matches.  ``auto``: the attention matcher for SiLK features whose
    #: descriptors it takes, else ``none`` (the tracking matches); or a matcher spec.
    keyframe_matcher: Any = "auto"
    #: Working resolution: explicit ``input_width`` x ``input_height`` when both > 0, else images larger than
    #: ``max_pixels`` are shrunk (aspect kept).  The camera is rescaled with the image.
    input_width: int = 0
    input_height: int = 0
    max_pixels: int = 76800
    # --- geometry --------------------------------------------------------------------------------
    #: ``auto`` uses depth when given, ``mono`` ignores it, ``rgbd`` requires it.
    mode: str = "auto"
    #: Robust estimator inlier threshold in working-resolution pixels.
    ransac_threshold_px: float = 1.0
    ransac_confidence: float = 0.999
    ransac_iterations: int = 1000
    #: Median rotation-compensated parallax (px) below which translation is not observable: rotation
    #: only, the translation stays with the keyframe (deferred, never lost or invented).
    static_parallax_px: float = 1.0
    #: Monocular initialisation needs this much parallax (px) and ``init_min_points`` triangulated points.
    init_parallax_px: float = 4.0
    init_min_points: int = 40
    #: Translation counts as observable (monocular, no map) when the pure-rotation model keeps fewer than this
    #: fraction of the essential matrix's inliers.
    rotation_inlier_ratio: float = 0.8
    #: New keyframe when the parallax to the current keyframe exceeds this (px) ...
    keyframe_parallax_px: float = 14.0
    #: ... or the inliers fall below this count.
    keyframe_min_inliers: int = 80
    #: Monocular tracking: refine the PnP pose jointly on the map points and the Sampson distance of every match.
    epipolar_refinement: bool = True
    #: Local map: the last ``window_keyframes`` keyframes (the new one included).  RGB-D: a new keyframe's pose is
    #: refined against all their depth points, not only its predecessor's (1 = chaining only).  Monocular: they
    #: are bundle-adjusted together, the oldest two held fixed.
    window_keyframes: int = 5
    #: Monocular local bundle adjustment when a keyframe is added: Levenberg-Marquardt iterations per pass (two
    #: passes: all observations, then without the outliers; 0 = off).
    bundle_iterations: int = 5
    #: Triangulated points need this angle between the two rays (degrees).
    min_triangulation_deg: float = 0.6
    #: Valid depth range (metres) for RGB-D keyframe points.
    depth_min: float = 0.1
    depth_max: float = 20.0
    #: A keypoint's depth is the median of a (2r+1)^2 neighbourhood at depth resolution (r = this radius):
    #: learned keypoints sit on edges, where the single nearest depth sample often belongs to the background.
    depth_window_radius: int = 2
    #: ... rejected when fewer than this fraction of the neighbourhood has valid depth (holes, edges of the
    #: sensor's shadow) ...
    depth_min_valid_fraction: float = 0.5
    #: ... or when the neighbourhood spans a depth discontinuity: (max - min) > this fraction of the median.
    depth_max_relative_spread: float = 0.1
    # --- tracking state --------------------------------------------------------------------------
    #: Fewer inliers than this: LOST.  Fewer than ``good_inliers``: DEGRADED (covariance inflated).
    min_inliers: int = 20
    good_inliers: int = 60
    #: Consecutive lost frames before the current frame becomes a new keyframe (re-initialisation).
    max_lost_frames: int = 3
    # --- covariance ------------------------------------------------------------------------------
    #: Floor of the reprojection residual standard deviation (px) used to scale ``(J^T J)^-1``.
    min_pixel_sigma: float = 0.3
    #: Variance multiplier while DEGRADED.
    degraded_inflation: float = 25.0
    #: Variance of every axis while LOST (large, finite: consumers can still fuse it).
    lost_variance: float = 1.0e6
    #: Translation sigma (map units) reported for rotation-only updates when no map gives a depth scale.
    static_translation_sigma: float = 0.05
    # --- memory ----------------------------------------------------------------------------------
    #: Poses kept in ``VisualOdometry.trajectory`` (0 = all, for evaluation; a robot node bounds it).
    max_trajectory_poses: int = 0

    def __post_init__(self) -> None:
        self._coerce_numbers()
        self.validate()

    def _coerce_numbers(self) -> None:
        """YAML 1.1 reads ``1.0e6`` as a string and ROS params may give ints for floats: convert, or say which."""
        for f in fields(self):
            value, default = getattr(self, f.name), f.default
            if isinstance(default, bool) or not isinstance(default, (int, float)) or isinstance(value, bool):
                continue
            try:
                setattr(self, f.name, type(default)(float(value)) if isinstance(default, float) else int(value))
            except (TypeError, ValueError):
                raise ConfigError(f"{f.name} must be a number, got {value!r}") from None

    def validate(self) -> None:
        if self.features not in FEATURE_KINDS:
            raise ConfigError(f"features must be one of {FEATURE_KINDS}, got '{self.features}'")
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got '{self.mode}'")
        positive = ("max_keypoints", "max_pixels", "ransac_threshold_px", "min_inliers", "init_min_points")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
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
        if not self.depth_max_relative_spread > 0:
            raise ConfigError(f"depth_max_relative_spread must be positive, got {self.depth_max_relative_spread}")
        if not 0 < self.ransac_confidence < 1:
            raise ConfigError(f"ransac_confidence must be in (0, 1), got {self.ransac_confidence}")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> OdometryConfig:
        """Build from a mapping; unknown keys are an error (a typo must not silently keep a default)."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown odometry settings {unknown}; known: {sorted(known)}")
        return cls(**values)

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
        values = asdict(self)
        values.update(changes)
        return OdometryConfig.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
