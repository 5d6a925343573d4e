"""The one feature container every part of silk_ros passes around."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry.camera import resized_pixels

__all__ = ["Features", "DescriptorWindows"]

#: Cells on each side of a keypoint's own cell in its descriptor window: a 5x5 window holds the 3x3 cells where a
#: match may peak and the neighbours of each for the parabola through the peak.
WINDOW_RADIUS = 2


@dataclass
class DescriptorWindows:
    """Each keypoint's own (full-resolution) descriptors on the 5x5 cells of the dense grid around its cell, which
    ``matching.refinement`` correlates to move a match to sub-pixel.

    ``descriptors``: (N, 5, 5, D) float32, L2-normalised, rows then columns (cells past the grid's edge repeat the
    edge).  ``centre_xy``: (N, 2) input pixels of each window's middle cell.  ``step_xy``: (N, 2) input pixels from
    one cell to the next (1 at the input size, more on a coarser pyramid level)."""

    descriptors: np.ndarray
    centre_xy: np.ndarray
    step_xy: np.ndarray

    def __post_init__(self) -> None:
        n, size = len(self.descriptors), 2 * WINDOW_RADIUS + 1
        shapes = self.descriptors.shape[1:3], self.centre_xy.shape, self.step_xy.shape
        if shapes != ((size, size), (n, 2), (n, 2)):
            raise ValueError(
                f"inconsistent DescriptorWindows: descriptors {self.descriptors.shape}, centres "
                f"{self.centre_xy.shape}, steps {self.step_xy.shape}"
            )

    def __len__(self) -> int:
        return len(self.descriptors)

    def subset(self, index: np.ndarray) -> DescriptorWindows:
        return DescriptorWindows(self.descriptors[index], self.centre_xy[index], self.step_xy[index])

    def scaled(self, ratio: np.ndarray) -> DescriptorWindows:
        """The windows of a level shrunk by ``1 / ratio`` in the input image's pixels (pixel-centre convention)."""
        return DescriptorWindows(self.descriptors, resized_pixels(self.centre_xy, ratio), self.step_xy * ratio)

    @classmethod
    def concatenate(cls, parts: list[DescriptorWindows]) -> DescriptorWindows:
        fields = ("descriptors", "centre_xy", "step_xy")
        return cls(*(np.concatenate([getattr(part, name) for part in parts]) for name in fields))


@dataclass
class Features:
    """Sparse features of one image.

    ``keypoints_xy``: (N, 2) float32 pixel coordinates in the *input* image, pixel-centre convention
    (the centre of the top-left pixel is (0, 0)).  ``scores``: (N,) float32 in [0, 1] (SiLK: the
    probability that the keypoint is matched correctly; classic detectors: a normalised response).
    ``descriptors``: (N, D), float32 L2-normalised for learned features, uint8 packed bits for ORB.
    ``image_size``: (height, width) of the input image.  ``windows``: SiLK's descriptor windows around each
    keypoint when the extractor keeps them (``ExtractorConfig.refine_matches``), else None.
    """

    keypoints_xy: np.ndarray
    scores: np.ndarray
    descriptors: np.ndarray
    image_size: tuple[int, int]
    windows: DescriptorWindows | None = None

    def __post_init__(self) -> None:
        n = len(self.keypoints_xy)
        if self.keypoints_xy.shape != (n, 2) or self.scores.shape != (n,) or len(self.descriptors) != n:
            raise ValueError(
                f"inconsistent Features: keypoints {self.keypoints_xy.shape}, scores {self.scores.shape}, "
                f"descriptors {self.descriptors.shape}"
            )
        if self.windows is not None and len(self.windows) != n:
            raise ValueError(f"inconsistent Features: {n} keypoints, {len(self.windows)} descriptor windows")

    def __len__(self) -> int:
        return len(self.keypoints_xy)

    @property
    def is_binary(self) -> bool:
        """Binary (Hamming) descriptors, as ORB's."""
        return self.descriptors.dtype == np.uint8

    def subset(self, index: np.ndarray) -> Features:
        windows = None if self.windows is None else self.windows.subset(index)
        return Features(self.keypoints_xy[index], self.scores[index], self.descriptors[index], self.image_size, windows)

    @classmethod
    def empty(cls, image_size: tuple[int, int], dim: int = 32, binary: bool = False) -> Features:
        dtype = np.uint8 if binary else np.float32
        return cls(
            np.zeros((0, 2), np.float32), np.zeros((0,), np.float32), np.zeros((0, dim), dtype), image_size
        )
