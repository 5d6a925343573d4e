"""OpenCV ORB and SIFT behind the same ``extract(image) -> Features`` interface as SiLK.

They are the baselines of every benchmark and a fallback front end for the odometry, so they must
return exactly what SiLK returns: pixel-centre keypoints in input-image coordinates, scores in [0, 1],
and descriptors the matchers understand.

* ORB: uint8 packed 256-bit binary descriptors (Hamming matching, ``Features.is_binary``).
* SIFT: float32 descriptors, L2-normalised.  ``root_sift=True`` (the default) applies RootSIFT
  (L1-normalise, element-wise square root; Arandjelovic & Zisserman 2012), which makes the cosine
  similarity used by ``silk_ros.matching`` equal to the Hellinger kernel; ``root_sift=False`` gives
  plain SIFT divided by its L2 norm.

Scores: the detector response divided by the largest response in the image, so the strongest
keypoint scores 1.  OpenCV keypoints already use the pixel-centre convention.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from .config import ExtractorConfig
from .extractor import ImageError, to_grey_float
from .types import Features

__all__ = ["ClassicExtractor", "CLASSIC_KINDS"]

CLASSIC_KINDS = ("orb", "sift")


class ClassicExtractor:
    """``ClassicExtractor("orb" | "sift", top_k=...).extract(image) -> Features``, or from an ExtractorConfig."""

    def __init__(self, config: ExtractorConfig | str = "orb", **overrides):
        if isinstance(config, str):  # the kind, e.g. ClassicExtractor("sift", top_k=500)
            config, overrides = ExtractorConfig(), {"features": config, **overrides}
        self.config = replace(config, **overrides)
        kind, top_k = self.config.features, self.config.top_k
        if kind not in CLASSIC_KINDS:
            raise ValueError(f"unknown classic extractor kind '{kind}'; expected one of {CLASSIC_KINDS}")
        if top_k <= 0:
            raise ValueError(f"top_k must be positive, got {top_k}")
        if kind == "orb":
            self._detector = cv2.ORB_create(
                nfeatures=top_k,
                fastThreshold=self.config.orb_fast_threshold,
                nlevels=self.config.orb_levels,
            )
            self.descriptor_dim = 32
        else:
            self._detector = cv2.SIFT_create(nfeatures=top_k)
            self.descriptor_dim = 128

    @property
    def kind(self) -> str:
        return self.config.features

    @property
    def binary(self) -> bool:
        return self.config.features == "orb"

    def _to_uint8(self, image: np.ndarray, color_order: str) -> np.ndarray:
        if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 2:
            return image
        grey = to_grey_float(image, color_order)
        return np.round(grey * 255.0).astype(np.uint8)

    def extract(self, image: np.ndarray, color_order: str = "bgr") -> Features:
        if not isinstance(image, np.ndarray):
            raise ImageError(f"expected a numpy array, got {type(image).__name__}")
        grey = self._to_uint8(image, color_order)
        size = (int(grey.shape[0]), int(grey.shape[1]))
        keypoints, descriptors = self._detector.detectAndCompute(grey, None)
        if not keypoints or descriptors is None:
            return Features.empty(size, self.descriptor_dim, binary=self.binary)
        # SIFT may return a few more than nfeatures (ties, duplicated orientations): keep the strongest.
        order = np.argsort([-k.response for k in keypoints], kind="stable")[: self.config.top_k]
        xy = np.array([keypoints[i].pt for i in order], np.float32).reshape(-1, 2)
        response = np.array([keypoints[i].response for i in order], np.float32)
        scores = response / max(float(response.max()), 1e-12)
        desc = descriptors[order]
        if not self.binary:
            desc = self._normalise(desc.astype(np.float32))
        return Features(xy, np.clip(scores, 0.0, 1.0).astype(np.float32), desc, size)

    def extract_batch(self, images: list[np.ndarray], color_order: str = "bgr") -> list[Features]:
        return [self.extract(image, color_order) for image in images]

    def _normalise(self, desc: np.ndarray) -> np.ndarray:
        if self.config.root_sift:
            desc = desc / np.maximum(np.abs(desc).sum(axis=1, keepdims=True), 1e-12)
            desc = np.sqrt(np.maximum(desc, 0.0))
        return (desc / np.maximum(np.linalg.norm(desc, axis=1, keepdims=True), 1e-12)).astype(np.float32)
