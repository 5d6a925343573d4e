"""Self-supervised image pairs from single images, as in SiLK.

Each sample: a random square crop of an image (view 0) and a random homographic warp of the same
region (view 1), both photometrically augmented independently.  The homography ``H_1_0`` maps
view-0 pixel coordinates (pixel-centre convention) to view-1 pixel coordinates.

Every random draw of a sample comes from ``numpy.random.default_rng([seed, rank, step, index])``, so
the data order is a pure function of the step: resuming at step k reproduces the exact batches of an
uninterrupted run with no sampler state to save.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .config import HomographyConfig, PhotometricConfig

if TYPE_CHECKING:
    from .room_pairs import RoomPairSource

__all__ = [
    "IMAGE_SUFFIXES",
    "list_images",
    "load_grey_images",
    "sample_homography",
    "perspective_strength",
    "orient_at",
    "photometric",
    "make_pair",
    "PairSampler",
]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".tif", ".tiff"}


def list_images(folders: list[str], root: Path) -> list[Path]:
    """All image files under the given folders (recursively), sorted so every process sees one order."""
    paths: list[Path] = []
    for folder in folders:
        base = Path(folder) if Path(folder).is_absolute() else root / folder
        if not base.exists():
            raise FileNotFoundError(f"training image folder {base} does not exist")
        found = sorted(p for p in base.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise FileNotFoundError(f"no images ({sorted(IMAGE_SUFFIXES)}) under {base}")
        paths += found
    return paths


def load_grey_images(paths: list[Path], min_side: int) -> list[np.ndarray]:
    """Decode once into memory (BSDS500 is ~60 MB grey); images smaller than a crop are refused."""
    images = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise ValueError(f"cannot decode training image {path}")
        if min(image.shape) < min_side:
            raise ValueError(f"training image {path} is {image.shape}, smaller than the {min_side} px needed")
        images.append(image)
    return images


def _rotation(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def sample_homography(rng: np.random.Generator, config: HomographyConfig) -> np.ndarray:
    """Homography in normalised crop coordinates ([-1, 1]^2, centre 0) from view 1 to the source.

    The crop, a square on a plane at distance ``d`` seen by a pinhole camera of focal length ``d``, is
    scaled (first, as in SiLK, or after the tilt), tilted out of plane about x and y and rotated in plane;
    its centre stays fixed (no translation).
    """
    s = rng.uniform(*config.scale)
    tilt_x, tilt_y = rng.uniform(-config.out_of_plane, config.out_of_plane, size=2)
    angle = rng.uniform(-config.in_plane, config.in_plane)
    d = config.plane_distance
    r = _rotation(tilt_x, tilt_y, 0.0)
    # Plane point (x, y, 0) -> rotated, then seen at depth d + z by a camera of focal length d.
    tilt = np.diag([d, d, 1.0]) @ np.column_stack([r[:, 0], r[:, 1], [0.0, 0.0, d]])
    tilt /= tilt[2, 2]
    scale = np.diag([s, s, 1.0])
    rotation = _rotation(0.0, 0.0, angle)
    return rotation @ tilt @ scale if config.scale_first else scale @ rotation @ tilt


def perspective_strength(h_norm: np.ndarray) -> float:
    """Length of the projective row (h20, h21) of a normalised-coordinate homography with h22 = 1: how far
    the depth of the warped crop varies across it (0 for an affine warp)."""
    return float(np.hypot(h_norm[2, 0], h_norm[2, 1]) / abs(h_norm[2, 2]))


def orient_at(h: np.ndarray, point: tuple[float, float]) -> np.ndarray:
    """``h`` scaled so that its homogeneous w is +1 at ``point``: z > 0 then marks the side of the vanishing
    line that ``point`` is on (normalising by h22 would orient it at pixel (0, 0) instead)."""
    w = h[2, 0] * point[0] + h[2, 1] * point[1] + h[2, 2]
    if w == 0:
        raise ValueError(f"the homography sends {point} to infinity")
    return h / w


def _normaliser(size: int) -> np.ndarray:
    """Pixel-centre coordinates of a ``size`` square -> [-1, 1] (pixel centres at +-(1 - 1/size))."""
    half = size / 2.0
    return np.array([[1 / half, 0, -(size - 1) / 2 / half], [0, 1 / half, -(size - 1) / 2 / half], [0, 0, 1]])


def photometric(image: np.ndarray, rng: np.random.Generator, config: PhotometricConfig) -> np.ndarray:
    """float32 [0, 1] grey -> augmented float32 [0, 1]: brightness, contrast, gamma, blur, motion blur, noise."""
    out = image.astype(np.float32)
    out = out + rng.uniform(-config.brightness, config.brightness)
    mean = float(out.mean())
    out = (out - mean) * rng.uniform(*config.contrast) + mean
    out = np.clip(out, 0.0, 1.0) ** rng.uniform(*config.gamma)
    if rng.random() < config.blur_prob:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(*config.blur_sigma))
    if rng.random() < config.motion_blur_prob:
        length = int(rng.integers(config.motion_blur_length[0], config.motion_blur_length[1] + 1))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0
        rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), rng.uniform(0, 180), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (length, length))
        out = cv2.filter2D(out, -1, kernel / max(kernel.sum(), 1e-6), borderType=cv2.BORDER_REFLECT)
    out = out + rng.normal(0.0, rng.uniform(0.0, config.noise_sigma), out.shape).astype(np.float32)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def make_pair(
    image: np.ndarray,
    crop: int,
    rng: np.random.Generator,
    homography: HomographyConfig,
    photo: PhotometricConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(view0, view1, H_1_0): two ``crop x crop`` float32 views of one uint8 grey image."""
    h, w = image.shape
    n = _normaliser(crop)
    # Both views cover a crop-sized region around one centre; view 1 is the homographic warp.
    h_norm = sample_homography(rng, homography)
    corners = np.array([[-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1]], float).T
    quad = h_norm @ corners
    reach = max(1.0, float(np.abs(quad[:2] / quad[2]).max())) * crop / 2.0
    # Keep the warped quad inside the image where possible (otherwise reflect the border).
    margin_x, margin_y = min(reach, w / 2.0), min(reach, h / 2.0)
    cx = rng.uniform(margin_x - 0.5, w - margin_x - 0.5)
    cy = rng.uniform(margin_y - 0.5, h - margin_y - 0.5)
    to_source = np.array([[crop / 2.0, 0, cx], [0, crop / 2.0, cy], [0, 0, 1]])
    src_from_view0 = to_source @ n
    src_from_view1 = to_source @ h_norm @ n
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    source = image.astype(np.float32) * (1.0 / 255.0)
    view0 = cv2.warpPerspective(source, src_from_view0, (crop, crop), flags=flags, borderMode=cv2.BORDER_REFLECT)
    view1 = cv2.warpPerspective(source, src_from_view1, (crop, crop), flags=flags, borderMode=cv2.BORDER_REFLECT)
    h_1_0 = np.linalg.inv(src_from_view1) @ src_from_view0
    centre = (crop - 1) / 2.0
    return photometric(view0, rng, photo), photometric(view1, rng, photo), orient_at(h_1_0, (centre, centre))


class PairSampler:
    """Batches of pairs as a pure function of (seed, rank, step): exact resume without sampler state.

    With ``rooms`` (a :class:`training.room_pairs.RoomPairSource`), a share ``room_share`` of the pairs are two
    views of a 3D room instead of a homographic warp; that draw has its own generator, so the homography pairs of
    a run without rooms are unchanged.
    """

    def __init__(
        self,
        images: list[np.ndarray],
        crop: int,
        homography: HomographyConfig,
        photo: PhotometricConfig,
        seed: int,
        rank: int = 0,
        rooms: RoomPairSource | None = None,
        room_share: float = 0.0,
    ):
        if not images:
            raise ValueError("PairSampler needs at least one image")
        self.images, self.crop, self.homography, self.photo = images, crop, homography, photo
        self.seed, self.rank = seed, rank
        self.rooms, self.room_share = rooms, room_share

    def batch(self, step: int, batch_size: int) -> tuple[np.ndarray, np.ndarray, list]:
        """(views0 (B, 1, S, S), views1 (B, 1, S, S), B geometries: H_1_0 (3, 3) or a DepthPairGeometry;
        :func:`training.correspondence.pair_correspondences` turns either into correspondences)."""
        v0, v1, geometries = [], [], []
        for i in range(batch_size):
            room_rng = np.random.default_rng([self.seed, self.rank, step, i, 1]) if self.rooms is not None else None
            if room_rng is not None and room_rng.random() < self.room_share:
                a, b, g = self.rooms.pair(room_rng, self.photo)
            else:
                rng = np.random.default_rng([self.seed, self.rank, step, i])
                image = self.images[int(rng.integers(len(self.images)))]
                a, b, g = make_pair(image, self.crop, rng, self.homography, self.photo)
            v0.append(a)
            v1.append(b)
            geometries.append(g)
        return np.stack(v0)[:, None], np.stack(v1)[:, None], geometries
