"""Front end of the odometry: working resolution and the matchers chosen by the config (the extractor:
``silk_ros.features.build_extractor(config.extractor)``)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..geometry.camera import Camera
from ..matching import Matcher, build_matcher, matcher_spec
from ..schema import ConfigError
from .config import OdometryConfig

__all__ = [
    "build_keyframe_matcher",
    "build_vo_matcher",
    "build_window_matcher",
    "working_size",
    "resize_image",
    "working_camera",
]


def _matcher(spec: str | dict, device: str) -> Matcher:
    """Build ``spec``.  The attention matcher runs on ONNX Runtime on CPU unless the spec names a backend, and its
    workers do not spin-wait in the odometry: it alternates with SiLK on the same cores (silk+attention on
    7-Scenes: 5.2 -> 7.5 frames/s)."""
    spec = matcher_spec(spec)
    if spec["name"] == "attention":
        spec.setdefault("spin_wait", False)
        spec.setdefault("backend", "auto")
        spec.setdefault("device", device)
    return build_matcher(spec)


def _ready(matcher: Matcher, config: OdometryConfig) -> Matcher:
    """ONNX Runtime matcher: export its session for the keypoint budget now, not at the first keyframe (a 1.3 s
    stall)."""
    if hasattr(matcher, "bucket_for"):
        matcher.session(matcher.bucket_for(config.extractor.top_k))
    return matcher


def _fitting(matcher: Matcher, descriptor_dim: int | None, role: str) -> Matcher:
    """``matcher`` if it takes descriptors of the extractor's size; a learned matcher is trained on one size (the
    shipped attention matcher on the 64-d context descriptors, the odometry's default, not the network's own 32-d)."""
    takes = getattr(getattr(matcher, "config", None), "descriptor_dim", None)
    if takes is not None and descriptor_dim is not None and takes != descriptor_dim:
        raise ConfigError(
            f"the {role} matcher takes {takes}-d descriptors, the extractor gives {descriptor_dim}-d: SiLK's context "
            "descriptors (extractor context_scale > 0) are twice the network's own (context_scale: 0); set the kind "
            "the matcher was trained on (python -m training.matcher, its config's context_scale)"
        )
    return matcher


def build_vo_matcher(config: OdometryConfig, descriptor_dim: int | None = None) -> Matcher:
    """The config's tracking matcher, ready to run; a ConfigError when it cannot take the extractor's descriptors
    (``descriptor_dim``)."""
    matcher = _matcher(config.matching.tracking_spec, config.extractor.device)
    return _ready(_fitting(matcher, descriptor_dim, "tracking"), config)


def build_keyframe_matcher(config: OdometryConfig, descriptor_dim: int | None) -> Matcher | None:
    """The matcher that re-matches keyframe candidates, or None (keyframes use the tracking matches).

    Why two matchers: the learned matcher costs 100-170 ms a pair on 2 cores, too much for every frame at 8 frames/s,
    while its matches matter most where the map is built.  Tracking with MNN and re-matching the one frame in 3-10
    that becomes a keyframe keeps its accuracy (session 30, 10 perturbed runs: 7-Scenes mono median 0.0457 -> 0.040 m,
    KITTI 07 0.344 -> 0.276 m) at a fraction of its cost.  ``auto`` picks the attention
    matcher for SiLK features of the matcher's descriptor size (``descriptor_dim``) when its weights show it no
    less accurate than MNN on validation pose pairs (``attention.loses_to_mnn``), else None; a spec equal to the
    tracking matcher's is None too (nothing to re-match)."""
    spec, tracking = config.matching.keyframe_matcher, config.matching.tracking_spec
    if spec == "none" or not spec or matcher_spec(spec) == tracking:
        return None
    if spec != "auto":
        return _ready(_fitting(_matcher(spec, config.extractor.device), descriptor_dim, "keyframe"), config)
    if config.extractor.features != "silk" or tracking["name"] == "attention":
        return None
    from ..matching.attention import loses_to_mnn

    if loses_to_mnn():
        return None
    matcher = _matcher({"name": "attention"}, config.extractor.device)
    return _ready(matcher, config) if matcher.config.descriptor_dim == descriptor_dim else None


def build_window_matcher(config: OdometryConfig, matcher: Matcher) -> Matcher:
    """Matcher from a new keyframe to the older keyframes of the window: ``matcher`` itself when it compares
    descriptors, mutual nearest neighbours instead of the learned matcher.  Those matches are gated by the
    geometry anyway (landmark reprojection, the window pose's inliers), and the learned matcher costs 30-40 ms
    a pair on 2 cores, for 3-4 pairs per keyframe: about 8 ms per frame on 7-Scenes (pose step 27 -> 20 ms)."""
    return build_matcher("mnn") if config.matching.matcher == "attention" else matcher


def working_size(config: OdometryConfig, width: int, height: int) -> tuple[int, int]:
    """(width, height) the odometry works at: explicit size, else shrink to ``max_pixels`` keeping the aspect."""
    if config.input_width > 0:
        return config.input_width, config.input_height
    pixels = width * height
    if pixels <= config.max_pixels:
        return width, height
    scale = math.sqrt(config.max_pixels / pixels)
    return max(16, round(width * scale)), max(16, round(height * scale))


def resize_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[1] == width and image.shape[0] == height:
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def working_camera(camera: Camera, width: int, height: int) -> Camera:
    if camera.width == width and camera.height == height:
        return camera
    return camera.scaled(width, height)
