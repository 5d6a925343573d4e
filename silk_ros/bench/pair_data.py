"""Image pairs with geometric ground truth for the matching benchmarks, read in their public layouts.

* Homography pairs: HPatches (``1..6.ppm``, ``H_1_k``) and Oxford affine (``img1..6.ppm``, ``H1tokp``),
  image 1 against 2..6.
* Pose pairs: a SuperGlue pairs file (``name0 name1 rot0 rot1 K0(9) K1(9) T_0to1(16)``, ScanNet sample)
  and Strecha scenes (``NNNN.jpg`` + ``NNNN.jpg.camera``), consecutive views within a scene.

Resizing keeps geometry consistent: the pixel map old -> new (pixel-centre convention) is applied to
homographies (``S1 H S0^-1``) and intrinsics (``S K``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "HomographyPair",
    "PosePair",
    "read_grey",
    "resize",
    "homography_pairs",
    "pose_pairs",
    "strecha_camera",
    "HOMOGRAPHY_SOURCES",
]

#: (folder under the data root, image name pattern, homography file pattern)
HOMOGRAPHY_SOURCES = (
    ("homography/hpatches/v_churchill", "{}.ppm", "H_1_{}"),
    ("homography/oxford/graf", "img{}.ppm", "H1to{}p"),
)


@dataclass
class HomographyPair:
    name: str
    image0: np.ndarray
    image1: np.ndarray
    h_1_0: np.ndarray  # image-0 pixels -> image-1 pixels


@dataclass
class PosePair:
    name: str
    image0: np.ndarray
    image1: np.ndarray
    k0: np.ndarray
    k1: np.ndarray
    t_1_0: np.ndarray  # 4x4, camera-0 points -> camera 1 (SuperGlue's T_0to1)


def read_grey(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return image


def resize(
    image: np.ndarray, short_side: int | None = None, max_side: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Resize so the short side is ``short_side`` (or the long side at most ``max_side``).

    Returns the image and the 3x3 pixel map old -> new (pixel-centre convention).
    """
    h, w = image.shape[:2]
    if short_side:
        s = short_side / min(h, w)
    elif max_side:
        s = min(1.0, max_side / max(h, w))
    else:
        s = 1.0
    nw, nh = round(w * s), round(h * s)
    if (nw, nh) == (w, h):
        return image, np.eye(3)
    sx, sy = nw / w, nh / h
    scale = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])
    interpolation = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, (nw, nh), interpolation=interpolation), scale


def homography_pairs(root: Path, short_side: int | None = 480, max_side: int | None = None) -> list[HomographyPair]:
    pairs = []
    for folder_name, image_name, h_name in HOMOGRAPHY_SOURCES:
        folder = root / folder_name
        if not folder.exists():
            raise FileNotFoundError(f"homography data {folder} not found")
        image0, s0 = resize(read_grey(folder / image_name.format(1)), short_side, max_side)
        for k in range(2, 7):
            image1, s1 = resize(read_grey(folder / image_name.format(k)), short_side, max_side)
            h = s1 @ np.loadtxt(folder / h_name.format(k)) @ np.linalg.inv(s0)
            pairs.append(HomographyPair(f"{folder.name} 1-{k}", image0, image1, h / h[2, 2]))
    return pairs


def strecha_camera(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(K, T_cam_world) from a Strecha ``.camera`` file (R is camera-to-world, C the camera centre)."""
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if len(rows) < 9:
        raise ValueError(f"Strecha camera file {path}: expected 9 lines, found {len(rows)}")
    k = np.array(rows[0:3], float)
    r = np.array(rows[4:7], float)
    c = np.array(rows[7], float)
    t = np.eye(4)
    t[:3, :3], t[:3, 3] = r.T, -r.T @ c
    return k, t


def _scannet_pairs(folder: Path, max_side: int | None) -> list[PosePair]:
    pairs_file = folder / "scannet_sample_pairs_with_gt.txt"
    if not pairs_file.exists():
        raise FileNotFoundError(f"pairs file {pairs_file} not found")
    pairs = []
    for number, line in enumerate(pairs_file.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 38:
            raise ValueError(f"{pairs_file}:{number}: expected 38 fields, found {len(parts)}")
        image0, s0 = resize(read_grey(folder / "scannet_sample_images" / parts[0]), max_side=max_side)
        image1, s1 = resize(read_grey(folder / "scannet_sample_images" / parts[1]), max_side=max_side)
        values = np.array(parts[4:], float)
        k0, k1, t = values[:9].reshape(3, 3), values[9:18].reshape(3, 3), values[18:34].reshape(4, 4)
        pairs.append(PosePair(f"scannet {parts[0][:12]}", image0, image1, s0 @ k0, s1 @ k1, t))
    return pairs


def _strecha_pairs(folder: Path, max_side: int | None) -> list[PosePair]:
    pairs = []
    for scene in sorted(p for p in folder.iterdir() if p.is_dir()):
        views = sorted(scene.glob("*.jpg"))
        for a, b in zip(views[:-1], views[1:], strict=True):
            k0, t0 = strecha_camera(Path(f"{a}.camera"))
            k1, t1 = strecha_camera(Path(f"{b}.camera"))
            image0, s0 = resize(read_grey(a), max_side=max_side)
            image1, s1 = resize(read_grey(b), max_side=max_side)
            pairs.append(
                PosePair(f"{scene.name} {a.stem}-{b.stem}", image0, image1, s0 @ k0, s1 @ k1, t1 @ np.linalg.inv(t0))
            )
    return pairs


def pose_pairs(root: Path, max_side: int | None = 640) -> dict[str, list[PosePair]]:
    """{"scannet": [...], "strecha": [...]} (long side resized to ``max_side``)."""
    return {
        "scannet": _scannet_pairs(root / "pairs/scannet_sample", max_side),
        "strecha": _strecha_pairs(root / "pairs/strecha", max_side),
    }
