"""The one feature container every part of silk_ros passes around."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Features"]


@dataclass
class Features:
    """Sparse features of one image.

    ``keypoints_xy``: (N, 2) float32 pixel coordinates in the *input* image, pixel-centre convention
    (the centre of the top-left pixel is (0, 0)).  ``scores``: (N,) float32 in [0, 1] (SiLK: the
    probability that the keypoint is matched correctly; classic detectors: a normalised response).
    ``descriptors``: (N, D), float32 L2-normalised for learned features, uint8 packed bits for ORB.
    ``image_size``: (height, width) of the input image.
    """

    keypoints_xy: np.ndarray
    scores: np.ndarray
    descriptors: np.ndarray
    image_size: tuple[int, int]

    def __post_init__(self) -> None:
        n = len(self.keypoints_xy)
        if self.keypoints_xy.shape != (n, 2) or self.scores.shape != (n,) or len(self.descriptors) != n:
            raise ValueError(
                f"inconsistent Features: keypoints {self.keypoints_xy.shape}, scores {self.scores.shape}, "
                f"descriptors {self.descriptors.shape}"
            )

    def __len__(self) -> int:
        return len(self.keypoints_xy)

    @property
    def is_binary(self) -> bool:
        """Binary (Hamming) descriptors, as ORB's."""
        return self.descriptors.dtype == np.uint8

    def subset(self, index: np.ndarray) -> Features:
        return Features(self.keypoints_xy[index], self.scores[index], self.descriptors[index], self.image_size)

    @classmethod
    def empty(cls, image_size: tuple[int, int], dim: int = 32, binary: bool = False) -> Features:
        dtype = np.uint8 if binary else np.float32
        return cls(
            np.zeros((0, 2), np.float32), np.zeros((0,), np.float32), np.zeros((0, dim), dtype), image_size
        )
