"""``python -m training.matcher --config training/configs/matcher_mu.yaml [--variant both]``: train the
matchability-reweighted attention matcher on frozen SiLK-µ features.

Data: the SiLK training pairs (same homography sampler and photometric augmentation,
:func:`training.data.make_pair`), SiLK keypoints and descriptors from the shipped frozen weights, and
ground truth by reprojection: keypoint i of view 0 matches j of view 1 when they are mutual nearest
neighbours under ``H_1_0`` within ``match_radius`` px; a keypoint whose nearest reprojected partner is
farther than ``unmatched_radius`` (or that falls outside the other view) is labelled unmatched for the
dustbin; keypoints in between are ambiguous and ignored.

SiLK features of a fixed pool of pairs are computed once and cached (``cache_dir``); every variant of
the ablation trains on the same pool.  Step ``k`` draws its batch from ``default_rng([seed, k])``, so a
run restarted from ``checkpoint_last.pt`` continues exactly (model, optimiser, schedule, step, wall time).

Loss, at every layer: NLL of the log-assignment on true matches and on unmatched keypoints (dustbins),
plus BCE of the layer's matchability against the matched / unmatched labels.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from silk_ros.datasets.paths import REPO_ROOT, shared_data_root
from silk_ros.features.quantize import weights_sha256
from silk_ros.matching.attention import AttentionMatcherConfig, AttentionMatcherNet, load_attention_net
from silk_ros.weights import SHIPPED, SHIPPED_DIR, save_weights

from .checkpoint import CHECKPOINT_NAME, save_checkpoint_atomically
from .config import HomographyConfig, PhotometricConfig, config_from_dict, config_from_yaml
from .data import list_images, load_grey_images, make_pair, photometric

__all__ = [
    "MatcherTrainConfig",
    "VARIANTS",
    "reprojection_labels",
    "build_pool",
    "matcher_loss",
    "MatcherTrainer",
    "main",
]

#: ablation variant -> (bias_reweighting, value_reweighting)
VARIANTS = {"none": (False, False), "bias": (True, False), "value": (False, True), "both": (True, True)}
UNMATCHED, IGNORED = -1, -2
KEYPOINT_SELECTIONS = ("paper", "default")
#: a new room (walls, boxes, photos) every this many 3D pairs
PAIRS_PER_ROOM = 16
#: match-probability thresholds tried on the validation pool when the weights are written (up to 0.5: every wide
#: matcher of session 28-29 had its F1 optimum at 0.2, the end of the earlier grid)
THRESHOLD_CANDIDATES = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)


@dataclass
class MatcherTrainConfig:
    #: frozen SiLK weights (shipped name or path) that produce the keypoints and descriptors
    silk_weights: str = "silk-mu"
    train_images: list[str] = field(default_factory=lambda: ["train/bsds500/train", "train/bsds500/val"])
    val_images: list[str] = field(default_factory=lambda: ["train/bsds500/test"])
    #: "" means silk_ros.datasets.paths.shared_data_root()
    data_root: str = ""
    crop: int = 224
    top_k: int = 512
    #: SiLK keypoint selection of the pooled features: "paper" (top-k cells, integer positions) or "default"
    #: (``ExtractorConfig``'s: NMS + sub-pixel, what the benches and ``training.pose_check`` extract)
    keypoint_selection: str = "paper"
    #: the extractor's context pass (``ExtractorConfig.context_scale``) for the pooled descriptors: 0 trains on the
    #: network's own 32-d descriptors, 0.5 on the 64-d context descriptors the odometry and benches use; the
    #: matcher's ``descriptor_dim`` follows the extractor
    context_scale: float = 0.0
    pool_pairs: int = 1600
    val_pairs: int = 64
    #: 3D pairs added to each pool: two views of a synthetic room (walls, floor, boxes) papered with the split's
    #: photos, labels by depth reprojection with occlusion; homographies alone never show parallax or occlusion
    room_pairs: int = 0
    val_room_pairs: int = 0
    #: rendered view size of the room pairs (width, height)
    room_size: list[int] = field(default_factory=lambda: [320, 240])
    match_radius: float = 3.0
    unmatched_radius: float = 5.0
    batch_size: int = 4
    steps: int = 3000
    lr: float = 5e-4
    #: learning rate decays linearly to ``lr * lr_final`` over the last ``1 - lr_decay_start`` of training
    lr_decay_start: float = 0.5
    lr_final: float = 0.1
    matchability_weight: float = 1.0
    seed: int = 0
    checkpoint_every: int = 100
    val_every: int = 250
    log_every: int = 10
    threads: int = 1
    variant: str = "both"
    run_dir: str = "runs/matcher_mu"
    cache_dir: str = "runs/matcher_cache"
    #: matcher weights (shipped name or path) to start from instead of a random initialisation (a fine-tune); their
    #: architecture must be the one ``model`` and ``variant`` make. "" trains from scratch
    init_matcher: str = ""
    #: architecture options of AttentionMatcherConfig (the variant sets the two reweighting switches)
    model: dict = field(default_factory=lambda: {"width": 64, "num_heads": 1, "num_layers": 3})
    homography: HomographyConfig = field(default_factory=HomographyConfig)
    photometric: PhotometricConfig = field(default_factory=PhotometricConfig)

    @classmethod
    def from_dict(cls, data: dict) -> MatcherTrainConfig:
        return config_from_dict(cls, data, "matcher training")

    @classmethod
    def from_yaml(cls, path: str | Path) -> MatcherTrainConfig:
        return config_from_yaml(cls, path, "matcher training")

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))

    def validate(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got '{self.variant}'")
        for name in ("crop", "top_k", "pool_pairs", "batch_size", "steps", "checkpoint_every", "val_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 < self.match_radius <= self.unmatched_radius:
            raise ValueError("need 0 < match_radius <= unmatched_radius")
        if self.keypoint_selection not in KEYPOINT_SELECTIONS:
            raise ValueError(
                f"keypoint_selection must be one of {KEYPOINT_SELECTIONS}, got '{self.keypoint_selection}'"
            )
        if self.room_pairs < 0 or self.val_room_pairs < 0:
            raise ValueError("room_pairs and val_room_pairs must be >= 0")
        if len(self.room_size) != 2 or min(self.room_size) < 32:
            raise ValueError(f"room_size must be [width, height] of at least 32 px, got {self.room_size}")
        self.matcher_config()  # raises on bad model options

    def matcher_config(self, descriptor_dim: int | None = None) -> AttentionMatcherConfig:
        """The matcher's architecture; ``descriptor_dim`` is the pooled descriptors' size (the SiLK weights', twice
        that with ``context_scale``)."""
        bias, value = VARIANTS[self.variant]
        options = {**self.model, "bias_reweighting": bias, "value_reweighting": value}
        if descriptor_dim is not None:
            options["descriptor_dim"] = descriptor_dim
        return AttentionMatcherConfig.from_dict(options)


# ----------------------------------------------------------------------------------------------------
# ground truth and data


def _warp(h: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.c_[xy.astype(np.float64), np.ones(len(xy))] @ h.T
    z = p[:, 2]
    return p[:, :2] / np.where(np.abs(z) < 1e-12, 1e-12, z)[:, None], z > 0


def _outside(xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    return (xy[:, 0] < -0.5) | (xy[:, 1] < -0.5) | (xy[:, 0] > w - 0.5) | (xy[:, 1] > h - 0.5)


def labels_from_projections(
    kpts0: np.ndarray,
    kpts1: np.ndarray,
    w0: np.ndarray,
    w1: np.ndarray,
    lost0: np.ndarray,
    lost1: np.ndarray,
    match_radius: float,
    unmatched_radius: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Targets from the keypoints' projections into the other view (``w0``: view-0 keypoints in view 1,
    ``w1``: view-1 keypoints in view 0); ``lost``: the keypoint has no partner there (outside, behind the
    camera, occluded).  A match is a mutual nearest neighbour within ``match_radius`` px in both views."""
    gt0 = np.full(len(kpts0), IGNORED, np.int64)
    gt1 = np.full(len(kpts1), IGNORED, np.int64)
    if len(kpts0) == 0 or len(kpts1) == 0:
        gt0[:] = UNMATCHED
        gt1[:] = UNMATCHED
        return gt0, gt1
    d01 = np.linalg.norm(w0[:, None] - kpts1[None], axis=2)  # in view 1
    d10 = np.linalg.norm(kpts0[:, None] - w1[None], axis=2)  # in view 0
    dist = np.maximum(d01, d10)
    nn01, nn10 = dist.argmin(1), dist.argmin(0)
    rows = np.arange(len(kpts0))
    mutual = (nn10[nn01] == rows) & (dist[rows, nn01] <= match_radius)
    gt0[mutual] = nn01[mutual]
    gt1[nn01[mutual]] = rows[mutual]
    far0 = (dist.min(1) > unmatched_radius) | lost0
    far1 = (dist.min(0) > unmatched_radius) | lost1
    gt0[~mutual & far0] = UNMATCHED
    gt1[(gt1 == IGNORED) & far1] = UNMATCHED
    return gt0, gt1


def reprojection_labels(
    kpts0: np.ndarray,
    kpts1: np.ndarray,
    h_1_0: np.ndarray,
    size1: tuple[int, int],
    size0: tuple[int, int],
    match_radius: float = 3.0,
    unmatched_radius: float = 5.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-keypoint targets ``gt0`` (N0,), ``gt1`` (N1,) of a homography pair: partner index, -1 unmatched,
    -2 ignored.  Unmatched: the nearest reprojected partner is beyond ``unmatched_radius`` or the keypoint
    warps outside the other view."""
    w0, front0 = _warp(h_1_0, kpts0)
    w1, front1 = _warp(np.linalg.inv(h_1_0), kpts1)
    return labels_from_projections(
        kpts0, kpts1, w0, w1, ~front0 | _outside(w0, size1), ~front1 | _outside(w1, size0),
        match_radius, unmatched_radius,
    )


#: a projected depth that differs from the other view's depth by more than this fraction is occluded there
OCCLUSION_TOLERANCE = 0.05


def _nearest_depth(depth: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Depth at the pixels nearest to ``xy`` (the odometry's ``keypoint_depth`` with one sample), NaN without."""
    from silk_ros.odometry.depth import keypoint_depth

    return keypoint_depth(depth, xy, depth.shape, radius=0, depth_min=1e-6, depth_max=np.inf)


def _project_with_depth(kpts: np.ndarray, depth: np.ndarray, camera_src, camera_dst, t_dst_src: np.ndarray,
                        depth_dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints of the source view (their depth read at the nearest pixel) in the other view's pixels, and
    whether each is lost there: outside, behind the camera, without depth or hidden behind a nearer surface."""
    z = _nearest_depth(depth, kpts)
    points = camera_src.backproject(kpts, z) @ t_dst_src[:3, :3].T + t_dst_src[:3, 3]
    xy = camera_dst.project(points)
    lost = ~np.isfinite(z) | ~camera_dst.in_image(xy)
    inside = ~lost
    z_dst = points[inside, 2]
    lost[inside] = ~(np.abs(_nearest_depth(depth_dst, xy[inside]) - z_dst) <= OCCLUSION_TOLERANCE * z_dst)
    xy[lost] = 1e6  # never anyone's neighbour
    return xy, lost


def depth_labels(
    kpts0: np.ndarray,
    kpts1: np.ndarray,
    depth0: np.ndarray,
    depth1: np.ndarray,
    camera0,
    camera1,
    t_1_0: np.ndarray,
    match_radius: float = 3.0,
    unmatched_radius: float = 5.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Targets of a 3D pair (depth maps, ``silk_ros.geometry.camera.Camera`` of each view, ``t_1_0`` maps view-0
    camera points into view 1), as :func:`reprojection_labels`; keypoints occluded in the other view are unmatched."""
    w0, lost0 = _project_with_depth(kpts0, depth0, camera0, camera1, t_1_0, depth1)
    w1, lost1 = _project_with_depth(kpts1, depth1, camera1, camera0, np.linalg.inv(t_1_0), depth0)
    return labels_from_projections(kpts0, kpts1, w0, w1, lost0, lost1, match_radius, unmatched_radius)


#: The code that turns images into pooled features: a change to it (session 21's padded context pass) must not
#: leave earlier pools in the cache looking current.
EXTRACTION_SOURCES = ("features/extractor.py", "features/fusion.py", "features/config.py", "features/model.py")


def _extraction_code_digest() -> str:
    digest = hashlib.sha256()
    for name in EXTRACTION_SOURCES:
        digest.update((REPO_ROOT / "silk_ros" / name).read_bytes())
    return digest.hexdigest()[:16]


def _pool_key(config: MatcherTrainConfig, split: str, count: int, silk_path: Path, rooms: bool = False) -> str:
    """Cache key: everything that changes the pooled features (weights bytes and the extraction code included).  The
    room pairs are the same for every training seed (rendering is the costly part), the homography pairs are drawn
    per seed."""
    digest = weights_sha256(silk_path)[:16]
    keys = {
        "silk": digest,
        "code": _extraction_code_digest(),
        "images": config.train_images if split == "train" else config.val_images,
        "top_k": config.top_k,
        "count": count,
        "radii": [config.match_radius, config.unmatched_radius],
        "photometric": asdict(config.photometric),
        "selection": config.keypoint_selection,
        "format": 2,
        **({"context_scale": config.context_scale} if config.context_scale else {}),
    }
    if rooms:
        keys.update(rooms=True, room_size=config.room_size, pairs_per_room=PAIRS_PER_ROOM)
    else:
        keys.update(crop=config.crop, seed=config.seed, homography=asdict(config.homography))
    return hashlib.sha256(json.dumps(keys, sort_keys=True, default=list).encode()).hexdigest()[:16]


def _silk_path(name: str) -> Path:
    from silk_ros.weights import shipped_weights

    path = Path(name)
    return path if path.suffix or path.exists() else shipped_weights(name)


def _extractor(config: MatcherTrainConfig, silk_path: Path):
    from silk_ros.features import PAPER_SELECTION, SilkExtractor

    selection = PAPER_SELECTION if config.keypoint_selection == "paper" else {}
    return SilkExtractor(  # keypoints and descriptors only: the pairs keep no descriptor windows
        weights=str(silk_path), backend="onnxruntime", threads=1, top_k=config.top_k,
        **{**selection, "context_scale": config.context_scale, "refine_matches": False},
    )


def _empty_pool(count: int, k: int, d: int) -> dict[str, torch.Tensor]:
    return {
        **{f"kpts{v}": torch.zeros(count, k, 2) for v in (0, 1)},
        **{f"desc{v}": torch.zeros(count, k, d) for v in (0, 1)},
        **{f"scores{v}": torch.zeros(count, k) for v in (0, 1)},
        **{f"mask{v}": torch.zeros(count, k, dtype=torch.bool) for v in (0, 1)},
        **{f"gt{v}": torch.full((count, k), IGNORED, dtype=torch.long) for v in (0, 1)},
        "size": torch.zeros(count, 2, dtype=torch.long),  # (height, width) of each pair's views
    }


def _store(pool: dict[str, torch.Tensor], i: int, features, labels, size: tuple[int, int]) -> None:
    for v, (f, gt) in enumerate(zip(features, labels, strict=True)):
        n = len(f)
        pool[f"kpts{v}"][i, :n] = torch.from_numpy(f.keypoints_xy)
        pool[f"desc{v}"][i, :n] = torch.from_numpy(f.descriptors)
        pool[f"scores{v}"][i, :n] = torch.from_numpy(f.scores)
        pool[f"mask{v}"][i, :n] = True
        pool[f"gt{v}"][i, :n] = torch.from_numpy(gt)
    pool["size"][i] = torch.tensor(size)


#: pairs per saved chunk of a pool being built: a build cut off (a session's end) resumes at its last full chunk
CHUNK_PAIRS = 100


def _cached(path: Path, count: int, top_k: int, pair_maker, desc: str, progress: bool) -> dict[str, torch.Tensor]:
    """The pool at ``path``, else built from ``pair = pair_maker()``, ``pair(i) -> (features, labels, size)`` for
    i < ``count`` (at most ``top_k`` keypoints an image).

    Built in chunks of ``CHUNK_PAIRS`` saved beside ``path`` (``<stem>.chunkNNN.pt``): each pair depends only on its
    index, so a build resumed from the chunks is the one an uninterrupted build gives, and a session that ends
    while the (several-hundred-MB, never committed) cache is built loses at most one chunk."""
    if path.exists():
        return torch.load(path, weights_only=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    starts = range(0, count, CHUNK_PAIRS)
    chunk_paths = [path.with_name(f"{path.stem}.chunk{c:03d}.pt") for c in range(len(starts))]
    chunks, pair = [], None
    bar = tqdm(total=count, desc=desc, disable=not progress, dynamic_ncols=True)
    for start, chunk_path in zip(starts, chunk_paths, strict=True):
        stop = min(start + CHUNK_PAIRS, count)
        if chunk_path.exists():
            chunks.append(torch.load(chunk_path, weights_only=True))
            bar.update(stop - start)
            continue
        pair = pair or pair_maker()
        chunk = None
        for i in range(start, stop):
            features, labels, size = pair(i)
            if chunk is None:
                chunk = _empty_pool(stop - start, top_k, features[0].descriptors.shape[1])
            _store(chunk, i - start, features, labels, size)
            bar.update(1)
        _save_atomically(chunk, chunk_path)
        chunks.append(chunk)
    bar.close()
    pool = {name: torch.cat([chunk[name] for chunk in chunks]) for name in chunks[0]}
    _save_atomically(pool, path)
    for chunk_path in chunk_paths:
        chunk_path.unlink(missing_ok=True)
    return pool


def _save_atomically(tensors: dict[str, torch.Tensor], path: Path) -> None:
    torch.save(tensors, path.with_suffix(".tmp"))
    os.replace(path.with_suffix(".tmp"), path)


def _homography_pair(config: MatcherTrainConfig, split: str, silk_path: Path, root: Path):
    """``i -> (features, labels, size)`` of the i-th homography pair of ``split``."""
    folders = config.train_images if split == "train" else config.val_images
    images = load_grey_images(list_images(folders, root), config.crop)
    extractor = _extractor(config, silk_path)
    size = (config.crop, config.crop)
    stream = 1 if split == "train" else 2  # distinct random streams from SiLK's own sampler

    def pair(i: int):
        rng = np.random.default_rng([config.seed, stream, i])
        image = images[int(rng.integers(len(images)))]
        view0, view1, h = make_pair(image, config.crop, rng, config.homography, config.photometric)
        f0, f1 = extractor.extract(view0), extractor.extract(view1)
        labels = reprojection_labels(
            f0.keypoints_xy, f1.keypoints_xy, h, size, size, config.match_radius, config.unmatched_radius
        )
        return (f0, f1), labels, size

    return pair


def _room_pair(config: MatcherTrainConfig, split: str, silk_path: Path, root: Path):
    """``i -> (features, labels, size)`` of the i-th rendered 3D pair of ``split`` (``training.pose_check``'s camera
    pairs: 0.2-0.7 m apart, 5-35 degrees), photometrically augmented as the homography pairs are, labelled with the
    rendered depth; ``PAIRS_PER_ROOM`` consecutive pairs share a room."""
    from silk_ros.datasets.synthetic import build_room, render
    from silk_ros.geometry.camera import Camera
    from silk_ros.geometry.pose import invert_pose

    from .pose_check import camera_pair

    folders = config.train_images if split == "train" else config.val_images
    photos = load_grey_images(list_images(folders, root), min_side=32)
    extractor = _extractor(config, silk_path)
    width, height = config.room_size
    focal = 0.8 * width
    camera = Camera.from_intrinsics(focal, focal, (width - 1) / 2, (height - 1) / 2, width, height)
    stream = 3 if split == "train" else 4
    @functools.lru_cache(maxsize=1)  # consecutive pairs share a room
    def room(first: int):
        room_rng = np.random.default_rng([stream, first, 1])
        chosen = room_rng.choice(len(photos), 21, replace=len(photos) < 21)
        return build_room(room_rng, [cv2.cvtColor(photos[j], cv2.COLOR_GRAY2BGR) for j in chosen])

    def pair(i: int):
        quads = room(i - i % PAIRS_PER_ROOM)
        rng = np.random.default_rng([stream, i])
        pose0, pose1 = camera_pair(rng)
        views, depths = [], []
        for pose in (pose0, pose1):
            image, depth = render(quads, camera, pose)
            grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
            views.append(photometric(grey, rng, config.photometric))
            depths.append(depth)
        f0, f1 = (extractor.extract(v) for v in views)
        labels = depth_labels(
            f0.keypoints_xy, f1.keypoints_xy, *depths, camera, camera, invert_pose(pose1) @ pose0,
            config.match_radius, config.unmatched_radius,
        )
        return (f0, f1), labels, (height, width)

    return pair


def build_pool(config: MatcherTrainConfig, split: str = "train", progress: bool = True) -> dict[str, torch.Tensor]:
    """SiLK features and labels of ``pool_pairs`` homography pairs + ``room_pairs`` 3D pairs (train) or
    ``val_pairs`` + ``val_room_pairs`` (val), each part cached on disk.

    Returns padded tensors: kpts{0,1} (P, K, 2) pixels, desc (P, K, D), scores (P, K), mask (P, K),
    gt{0,1} (P, K) and size (P, 2) (height, width)."""
    silk_path = _silk_path(config.silk_weights)
    cache = Path(config.cache_dir)
    cache = cache if cache.is_absolute() else REPO_ROOT / cache
    root = Path(config.data_root) if config.data_root else shared_data_root()
    count, rooms = (config.pool_pairs, config.room_pairs) if split == "train" else (config.val_pairs,
                                                                                     config.val_room_pairs)
    parts = []
    if count:
        key = _pool_key(config, split, count, silk_path)
        parts.append(_cached(cache / f"pool_{split}_{key}.pt", count, config.top_k,
                             lambda: _homography_pair(config, split, silk_path, root),
                             f"SiLK features ({split} pool)", progress))
    if rooms:
        key = _pool_key(config, split, rooms, silk_path, rooms=True)
        parts.append(_cached(cache / f"rooms_{split}_{key}.pt", rooms, config.top_k,
                             lambda: _room_pair(config, split, silk_path, root),
                             f"SiLK features ({split} rooms)", progress))
    if not parts:
        raise ValueError(f"the {split} pool is empty: set pool_pairs / room_pairs (or val_pairs / val_room_pairs)")
    return {name: torch.cat([part[name] for part in parts]) for name in parts[0]}


def pool_size(pool: dict[str, torch.Tensor]) -> int:
    return len(pool["size"])


def batch_from_pool(pool: dict[str, torch.Tensor], index: np.ndarray, swap: np.ndarray) -> dict[str, torch.Tensor]:
    """Network inputs and targets for pool rows ``index``; ``swap`` exchanges the two views (augmentation).
    Keypoints are normalised per pair as the matcher does at inference (``normalize_keypoints``)."""
    idx = torch.from_numpy(index)
    size = pool["size"][idx].to(torch.float32)  # (B, 2) height, width
    centre = torch.stack([size[:, 1], size[:, 0]], 1)[:, None] / 2.0
    scale = size.max(1).values[:, None, None] / 2.0
    out = {}
    for v in (0, 1):
        for name in ("kpts", "desc", "scores", "mask", "gt"):
            a, b = pool[f"{name}{v}"][idx], pool[f"{name}{1 - v}"][idx]
            s = torch.from_numpy(swap).view(-1, *([1] * (a.dim() - 1)))
            out[f"{name}{v}"] = torch.where(s, b, a)
        out[f"kpts{v}"] = (out[f"kpts{v}"] - centre) / scale
    return out


# ----------------------------------------------------------------------------------------------------
# loss


def assignment_nll(log_p: torch.Tensor, gt0: torch.Tensor, gt1: torch.Tensor) -> torch.Tensor:
    """Balanced NLL: mean over true matches and mean over unmatched keypoints (both dustbins), averaged."""
    b, n0p1, n1p1 = log_p.shape
    n0, n1 = n0p1 - 1, n1p1 - 1
    matched = gt0 >= 0
    batch, rows = matched.nonzero(as_tuple=True)
    positive = -log_p[batch, rows, gt0[batch, rows]]
    negative = torch.cat([-log_p[:, :n0, n1][gt0 == UNMATCHED], -log_p[:, n0, :n1][gt1 == UNMATCHED]])
    pos = positive.mean() if positive.numel() else log_p.new_zeros(())
    neg = negative.mean() if negative.numel() else log_p.new_zeros(())
    return 0.5 * (pos + neg)


def matchability_bce(m: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    labelled = gt != IGNORED
    if not labelled.any():
        return m.new_zeros(())
    target = (gt[labelled] >= 0).float()
    return F.binary_cross_entropy(m[labelled].clamp(1e-6, 1 - 1e-6), target)


def matcher_loss(out, gt0: torch.Tensor, gt1: torch.Tensor, matchability_weight: float) -> dict[str, torch.Tensor]:
    """Deep supervision: every layer's assignment NLL and every refined matchability's BCE, averaged."""
    nll = torch.stack([assignment_nll(lp, gt0, gt1) for lp in out.log_assignment]).mean()
    bce = (
        torch.stack(
            [
                matchability_bce(m0, gt0) + matchability_bce(m1, gt1)
                for m0, m1 in zip(out.matchability0[1:], out.matchability1[1:], strict=True)
            ]
        ).mean()
        / 2
    )
    return {"loss": nll + matchability_weight * bce, "nll": nll, "bce": bce}


def match_stats(log_p: torch.Tensor, gt0: torch.Tensor, mask0: torch.Tensor, threshold: float) -> tuple[int, int, int]:
    """(predicted mutual matches, correct ones, true matches) of a batch."""
    scores = log_p[:, :-1, :-1]
    best1, best0 = scores.argmax(2), scores.argmax(1)
    rows = torch.arange(scores.shape[1]).expand_as(best1)
    mutual = (best0.gather(1, best1) == rows) & mask0
    prob = scores.gather(2, best1[..., None])[..., 0].exp()
    predicted = mutual & (prob > threshold)
    correct = predicted & (best1 == gt0)
    return int(predicted.sum()), int(correct.sum()), int((gt0 >= 0).sum())


# ----------------------------------------------------------------------------------------------------
# trainer


class MatcherTrainer:
    def __init__(self, config: MatcherTrainConfig, progress: bool = True):
        self.config = config
        self.progress = progress
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        self.run_dir = Path(config.run_dir)
        self.run_dir = self.run_dir if self.run_dir.is_absolute() else REPO_ROOT / self.run_dir
        # The pools first (they draw no torch random numbers): the matcher takes their descriptors' size.
        self.pool = build_pool(config, "train", progress)
        self.val_pool = build_pool(config, "val", progress) if config.val_pairs or config.val_room_pairs else None
        torch.manual_seed(config.seed)
        self.model = AttentionMatcherNet(config.matcher_config(self.pool["desc0"].shape[-1]))
        if config.init_matcher:
            self._start_from(config.init_matcher)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=1e-4)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.step = 0
        self.wall_s = 0.0
        self.history: list[dict] = []

    def _start_from(self, weights: str) -> None:
        """Copy a trained matcher's parameters into the model; a different architecture is an error, not a
        partial load."""
        start = load_attention_net(weights)
        own, theirs = self.model.config.architecture(), start.config.architecture()
        if own != theirs:
            changed = {k: (theirs.get(k), own.get(k)) for k in set(own) | set(theirs) if own.get(k) != theirs.get(k)}
            raise ValueError(f"init_matcher {weights}: architecture differs from the config's (file, config): "
                             f"{changed}")
        self.model.load_state_dict(start.state_dict())

    def _lr_factor(self, step: int) -> float:
        cfg = self.config
        start = cfg.lr_decay_start * cfg.steps
        if step < start:
            return 1.0
        return 1.0 - (1.0 - cfg.lr_final) * min(1.0, (step - start) / max(1.0, cfg.steps - start))

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    def save_checkpoint(self) -> Path:
        record = {
            "step": self.step,
            "wall_s": self.wall_s,
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "history": self.history,
        }
        return save_checkpoint_atomically(record, self.checkpoint_path)

    def load_checkpoint(self) -> bool:
        if not self.checkpoint_path.exists():
            return False
        record = torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)
        if record["config"] != self.config.to_dict():
            raise ValueError(f"checkpoint {self.checkpoint_path} was written with another config; use --fresh")
        self.model.load_state_dict(record["model"])
        self.optimizer.load_state_dict(record["optimizer"])
        self.scheduler.load_state_dict(record["scheduler"])
        torch.set_rng_state(record["torch_rng"])
        self.step, self.wall_s = int(record["step"]), float(record["wall_s"])
        self.history = list(record["history"])
        return True

    def train_step(self) -> dict[str, float]:
        cfg = self.config
        self.model.train()
        rng = np.random.default_rng([cfg.seed, self.step])
        index = rng.choice(pool_size(self.pool), cfg.batch_size, replace=False)
        batch = batch_from_pool(self.pool, index, rng.random(cfg.batch_size) < 0.5)
        out = self.model(*self._inputs(batch), all_layers=True)
        losses = matcher_loss(out, batch["gt0"], batch["gt1"], cfg.matchability_weight)
        self.optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return {k: float(v.detach()) for k, v in losses.items()}

    @staticmethod
    def _inputs(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        return tuple(batch[f"{n}{v}"] for v in (0, 1) for n in ("kpts", "desc", "scores", "mask"))

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Final-layer loss and match precision / recall on the fixed held-out pool."""
        if self.val_pool is None:
            return {}
        self.model.eval()
        totals, nll, n = np.zeros(3), 0.0, pool_size(self.val_pool)
        for start in range(0, n, 8):
            index = np.arange(start, min(n, start + 8))
            batch = batch_from_pool(self.val_pool, index, np.zeros(len(index), bool))
            out = self.model(*self._inputs(batch))
            nll += float(assignment_nll(out.log_assignment[-1], batch["gt0"], batch["gt1"])) * len(index)
            totals += match_stats(
                out.log_assignment[-1], batch["gt0"], batch["mask0"], self.model.config.filter_threshold
            )
        self.model.train()
        precision = totals[1] / max(totals[0], 1)
        recall = totals[1] / max(totals[2], 1)
        return {"val_nll": nll / n, "val_precision": float(precision), "val_recall": float(recall)}

    @torch.no_grad()
    def choose_filter_threshold(self, candidates=THRESHOLD_CANDIDATES) -> tuple[float, dict[str, float]]:
        """Match-probability threshold with the best F1 on the held-out pool (never on benchmark pairs)."""
        if self.val_pool is None:
            return self.model.config.filter_threshold, {}
        self.model.eval()
        n, outputs = pool_size(self.val_pool), []
        for start in range(0, n, 8):
            index = np.arange(start, min(n, start + 8))
            batch = batch_from_pool(self.val_pool, index, np.zeros(len(index), bool))
            outputs.append((self.model(*self._inputs(batch)).log_assignment[-1], batch["gt0"], batch["mask0"]))
        self.model.train()
        f1s = {}
        for threshold in candidates:
            predicted, correct, true = np.sum([match_stats(lp, gt, m, threshold) for lp, gt, m in outputs], axis=0)
            precision, recall = correct / max(predicted, 1), correct / max(true, 1)
            f1s[str(threshold)] = float(2 * precision * recall / max(precision + recall, 1e-9))
        best = max(candidates, key=lambda t: f1s[str(t)])
        return float(best), f1s

    def fit(self, stop_after: int | None = None) -> list[dict]:
        cfg = self.config
        end = cfg.steps if stop_after is None else min(cfg.steps, self.step + stop_after)
        bar = tqdm(
            total=cfg.steps,
            initial=self.step,
            disable=not self.progress,
            dynamic_ncols=True,
            desc=f"matcher[{cfg.variant}]",
        )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        smooth: dict[str, float] = {}
        while self.step < end:
            start = time.perf_counter()
            stats = self.train_step()
            self.wall_s += time.perf_counter() - start
            smooth = {k: 0.95 * smooth.get(k, v) + 0.05 * v for k, v in stats.items()}
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in smooth.items()})
            entry = None
            if self.step % cfg.log_every == 0:
                entry = {
                    "step": self.step,
                    "wall_s": round(self.wall_s, 1),
                    **{k: round(v, 4) for k, v in stats.items()},
                }
            if self.step % cfg.val_every == 0 or self.step == cfg.steps:
                entry = {**(entry or {"step": self.step, "wall_s": round(self.wall_s, 1)}), **self.validate()}
                self.history.append(entry)
                bar.write(json.dumps(entry))
            if entry is not None:
                entry["utc"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
                with (self.run_dir / "log.jsonl").open("a") as log:
                    log.write(json.dumps(entry) + "\n")
            if self.step % cfg.checkpoint_every == 0 or self.step == end:
                self.save_checkpoint()
        bar.close()
        return self.history

    def save_matcher(self, path: Path | None = None) -> Path:
        """The trained network as a versioned ``kind="matcher"`` weights file."""
        path = path or self.run_dir / "matcher.pt"
        silk = _silk_path(self.config.silk_weights)
        provenance = {
            "trainer": "training.matcher",
            "variant": self.config.variant,
            "steps": self.step,
            "wall_s": round(self.wall_s, 1),
            "train_config": self.config.to_dict(),
            "silk_weights": silk.name,
            "silk_weights_sha256": weights_sha256(silk),
            "final_validation": self.history[-1] if self.history else {},
        }
        threshold, f1s = self.choose_filter_threshold()
        provenance["filter_threshold"] = threshold  # default inference threshold (validation-pool F1)
        provenance["validation_f1_by_threshold"] = f1s
        provenance = json.loads(json.dumps(provenance, default=float))  # plain types only (weights_only load)
        return save_weights(path, "matcher", self.model.config.architecture(), self.model.state_dict(), provenance)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.matcher", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="YAML config (training/configs/matcher_mu.yaml)")
    parser.add_argument("--variant", choices=sorted(VARIANTS), help="override the reweighting ablation variant")
    parser.add_argument("--run-dir", help="override config.run_dir")
    parser.add_argument("--silk-weights", help="override config.silk_weights (shipped name or path)")
    parser.add_argument("--steps", type=int, help="override config.steps")
    parser.add_argument("--stop-after", type=int, help="stop this invocation after N steps (resumable)")
    parser.add_argument("--threads", type=int, help="override config.threads")
    parser.add_argument("--seed", type=int, help="override config.seed (batch draws and initialisation)")
    parser.add_argument("--prepare-only", action="store_true", help="build the cached SiLK feature pools and exit")
    parser.add_argument(
        "--ship", action="store_true", help=f"copy the result to silk_ros/weights/{SHIPPED['matcher-mu']}"
    )
    parser.add_argument("--copy-to", type=Path, help="also copy the final weights file here (ablation variants)")
    parser.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    parser.add_argument(
        "--export", action="store_true", help="write the weights file from the last checkpoint now (no training)"
    )
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = MatcherTrainConfig.from_yaml(args.config)
    for key in ("variant", "steps", "threads", "run_dir", "silk_weights", "seed"):
        if getattr(args, key) is not None:
            setattr(config, key, getattr(args, key))
    if args.variant and not args.run_dir:
        config.run_dir = f"{config.run_dir}_{args.variant}"
    config.validate()
    if args.prepare_only:
        build_pool(config, "train", not args.no_progress)
        if config.val_pairs or config.val_room_pairs:
            build_pool(config, "val", not args.no_progress)
        return 0
    trainer = MatcherTrainer(config, progress=not args.no_progress)
    if not args.fresh and trainer.load_checkpoint():
        print(f"resumed from {trainer.checkpoint_path} at step {trainer.step}", file=sys.stderr)
    if not args.export:
        trainer.fit(stop_after=args.stop_after)
    if trainer.step >= config.steps or args.export:
        path = trainer.save_matcher()
        print(f"wrote {path}", file=sys.stderr)
        if args.copy_to:
            args.copy_to.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, args.copy_to)
        if args.ship:
            target = SHIPPED_DIR / SHIPPED["matcher-mu"]
            shutil.copyfile(path, target)
            print(f"shipped {target}", file=sys.stderr)
    if trainer.history:
        print(json.dumps(trainer.history[-1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
