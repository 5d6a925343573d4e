"""The node's ROS parameters: names, defaults, descriptors, and their mapping onto OdometryConfig.

Why a table: every parameter gets a description, a range and a read-only flag in one place, the
odometry settings come from :class:`OdometryConfig` (one source of defaults), and the YAML file,
the launch file and the tests can all be checked against :data:`NODE_PARAMETERS`.

Odometry settings are read-only: the VO pipeline (network, matcher, thresholds) is built once at
start-up, so a change needs a restart.  Frame names, TF publishing, path length and the debug
overlay can change at runtime.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import yaml
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from silk_ros.odometry.config import OdometryConfig

__all__ = [
    "NODE_PARAMETERS",
    "ODOMETRY_PARAMETER_NAMES",
    "ParameterSpec",
    "check_choice",
    "descriptor",
    "odometry_config",
]


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    default: Any
    description: str
    read_only: bool = True
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None


_ODOMETRY_DEFAULTS = {f.name: f.default for f in fields(OdometryConfig)}

#: node parameter name -> OdometryConfig field, where they differ (the issue's names for the node).
_RENAMED = {"top_k": "max_keypoints", "allow_untrained_weights": "allow_untrained"}


def _odometry_spec(name: str, description: str, **options: Any) -> ParameterSpec | None:
    """A parameter whose default is OdometryConfig's (so the two can never disagree); None if it has no such field."""
    field = _RENAMED.get(name, name)
    if field not in _ODOMETRY_DEFAULTS:
        return None
    return ParameterSpec(name, _ODOMETRY_DEFAULTS[field], description, **options)


#: Odometry settings with the range or choices a user may set from ROS.
_ODOMETRY_SPECS: list[ParameterSpec | None] = [
    _odometry_spec("weights", "SiLK weights: shipped name (silk-mu, silk-4) or a .pt path"),
    _odometry_spec("allow_untrained_weights", "accept weights='untrained' (random network): plumbing tests only"),
    _odometry_spec("features", "feature extractor", choices=("silk", "orb", "sift")),
    _odometry_spec("backend", "SiLK inference backend", choices=("auto", "onnxruntime", "torch")),
    _odometry_spec("device", "inference device (cpu, cuda, cuda:N)"),
    _odometry_spec("threads", "inference threads (0: library default)", range=(0, 64)),
    _odometry_spec("blas_threads", "numpy BLAS threads (0: leave; 1 keeps idle BLAS workers off the cores)",
                   range=(0, 64)),
    _odometry_spec("top_k", "keypoints kept per frame", range=(10, 10000)),
    _odometry_spec("nms_radius", "keypoint non-maximum suppression radius (px)", range=(0, 16)),
    _odometry_spec("subpixel", "SiLK sub-pixel keypoint refinement (quadratic fit of the logits)"),
    _odometry_spec("input_width", "working width (px); 0 with input_height 0: shrink to max_pixels", range=(0, 8192)),
    _odometry_spec("input_height", "working height (px); 0 with input_width 0: shrink to max_pixels", range=(0, 8192)),
    _odometry_spec("max_pixels", "images larger than this are shrunk (aspect kept)", range=(1000, 50_000_000)),
    ParameterSpec("matcher", "mnn", "descriptor matcher", choices=("mnn", "ratio", "double_softmax", "attention")),
    ParameterSpec("matcher_options", "{}", "extra matcher settings as a YAML mapping, e.g. '{ratio: 0.8}'"),
    ParameterSpec(
        "keyframe_matcher",
        "auto",
        "re-matches keyframe candidates (auto: attention for SiLK, none: the tracking matches)",
        choices=("auto", "none", "mnn", "ratio", "double_softmax", "attention"),
    ),
    ParameterSpec(
        "mode", "mono", "mono: ignore depth; rgbd: pair the image with the depth topic", choices=("mono", "rgbd")
    ),
    _odometry_spec("ransac_threshold_px", "robust estimator inlier threshold (working px)", range=(0.1, 20.0)),
    _odometry_spec("ransac_confidence", "robust estimator confidence", range=(0.5, 0.999999)),
    _odometry_spec("ransac_iterations", "robust estimator iterations", range=(10, 100000)),
    _odometry_spec("min_inliers", "fewer inliers: tracking LOST", range=(5, 10000)),
    _odometry_spec("good_inliers", "fewer inliers: tracking DEGRADED", range=(5, 10000)),
    _odometry_spec("keyframe_parallax_px", "new keyframe above this parallax (px)", range=(0.5, 200.0)),
    _odometry_spec("keyframe_min_inliers", "new keyframe below this inlier count", range=(5, 10000)),
    _odometry_spec("depth_min", "RGB-D: nearest valid depth (m)", range=(0.0, 100.0)),
    _odometry_spec("depth_max", "RGB-D: farthest valid depth (m)", range=(0.1, 1000.0)),
    _odometry_spec("depth_window_radius", "RGB-D: keypoint depth = median of a (2r+1)^2 patch", range=(0, 10)),
    _odometry_spec(
        "depth_min_valid_fraction", "RGB-D: no keypoint depth with fewer valid patch pixels", range=(0.0, 1.0)
    ),
    _odometry_spec(
        "depth_max_relative_spread", "RGB-D: no keypoint depth across an edge ((max-min)/median)", range=(0.0, 10.0)
    ),
    _odometry_spec("epipolar_refinement", "monocular: refine PnP with the epipolar distance of every match"),
    _odometry_spec("window_keyframes", "local map: keyframes a new keyframe is refined / adjusted with", range=(1, 50)),
    _odometry_spec(
        "bundle_iterations", "monocular local bundle adjustment: iterations per keyframe (0: off)", range=(0, 100)
    ),
    _odometry_spec(
        "max_trajectory_poses", "poses the odometry keeps in memory (0: all; bound it on a robot)", range=(0, 10**9)
    ),
]

#: ROS wiring parameters (not odometry settings).
_NODE_SPECS: list[ParameterSpec] = [
    ParameterSpec(
        "image_transport", "raw", "subscribe 'image' (raw) or 'image/compressed'", choices=("raw", "compressed")
    ),
    ParameterSpec("odom_frame", "odom", "parent frame of ~/odometry and /tf (REP-105)", read_only=False),
    ParameterSpec("base_frame", "base_link", "child frame of ~/odometry and /tf (REP-105)", read_only=False),
    ParameterSpec("camera_frame", "", "camera optical frame; empty: the image header's frame_id", read_only=False),
    ParameterSpec(
        "base_from_camera",
        [0.0, 0.0, 0.0, -0.5, 0.5, -0.5, 0.5],
        "base <- camera optical extrinsics [x y z qx qy qz qw] used when TF has none; the default is the pure "
        "optical->body rotation (z forward -> x forward, x right -> -y, y down -> -z)",
        read_only=False,
    ),
    ParameterSpec("use_tf_extrinsics", True, "look base <- camera up in TF when tf2_ros is available"),
    ParameterSpec("publish_tf", True, "broadcast odom_frame -> base_frame on /tf", read_only=False),
    ParameterSpec("qos_reliability", "best_effort", "input QoS reliability", choices=("best_effort", "reliable")),
    ParameterSpec("qos_depth", 5, "input QoS history depth", range=(1, 1000)),
    ParameterSpec("path_length", 1000, "poses kept in ~/path", read_only=False, range=(1, 1_000_000)),
    ParameterSpec(
        "process_every_frame",
        False,
        "bag replay: process every frame in order (bounded blocking queue) instead of dropping stale frames",
    ),
    ParameterSpec("queue_size", 10, "capacity of the process_every_frame queue", range=(1, 1000)),
    ParameterSpec("depth_sync_tolerance", 0.02, "RGB-D: largest colour/depth stamp difference (s)", range=(0.0, 1.0)),
    ParameterSpec("diagnostics_period", 1.0, "seconds between /diagnostics messages", range=(0.05, 60.0)),
    ParameterSpec("max_debug_tracks", 300, "matches drawn in ~/debug_image", read_only=False, range=(0, 100000)),
]

_ODOMETRY_SPECS = [spec for spec in _ODOMETRY_SPECS if spec is not None]
NODE_PARAMETERS: list[ParameterSpec] = _ODOMETRY_SPECS + _NODE_SPECS
ODOMETRY_PARAMETER_NAMES = frozenset(s.name for s in _ODOMETRY_SPECS)


def descriptor(spec: ParameterSpec) -> ParameterDescriptor:
    text = spec.description
    if spec.choices:
        text += f" (one of: {', '.join(spec.choices)})"
    out = ParameterDescriptor(description=text, read_only=spec.read_only)
    if spec.choices:
        out.additional_constraints = f"one of {list(spec.choices)}"
    if spec.range is not None:
        lo, hi = spec.range
        if isinstance(spec.default, bool):
            pass
        elif isinstance(spec.default, int):
            out.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=0)]
        else:
            out.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
    return out


def check_choice(spec: ParameterSpec, value: Any) -> str | None:
    """Reason a value is refused (choices are not enforced by ROS descriptors), or None."""
    if spec.choices and value not in spec.choices:
        return f"parameter '{spec.name}' must be one of {list(spec.choices)}, got {value!r}"
    return None


def odometry_config(values: dict[str, Any]) -> OdometryConfig:
    """Node parameter values -> OdometryConfig (renames applied, matcher options merged)."""
    settings: dict[str, Any] = {}
    for name in ODOMETRY_PARAMETER_NAMES:
        if name in ("matcher_options",):
            continue
        settings[_RENAMED.get(name, name)] = values[name]
    options = yaml.safe_load(values.get("matcher_options") or "{}") or {}
    if not isinstance(options, dict):
        raise ValueError(f"matcher_options must be a YAML mapping, got {values.get('matcher_options')!r}")
    if options:
        settings["matcher"] = {"name": values["matcher"], **options}
    return OdometryConfig.from_dict(settings)
