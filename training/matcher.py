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
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from silk_ros.datasets.paths import REPO_ROOT, shared_data_root
from silk_ros.matching.attention import AttentionMatcherConfig, AttentionMatcherNet
from silk_ros.weights import SHIPPED, SHIPPED_DIR, save_weights

from .checkpoint import CHECKPOINT_NAME, save_checkpoint_atomically
from .config import HomographyConfig, PhotometricConfig, config_from_dict, config_from_yaml
from .data import list_images, load_grey_images, make_pair

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
#: match-probability thresholds tried on the validation pool when the weights are written
THRESHOLD_CANDIDATES = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)


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
    pool_pairs: int = 1600
    val_pairs: int = 64
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
        self.matcher_config()  # raises on bad model options

    def matcher_config(self) -> AttentionMatcherConfig:
        bias, value = VARIANTS[self.variant]
        options = {**self.model, "bias_reweighting": bias, "value_reweighting": value}
        return AttentionMatcherConfig.from_dict(options)


# ----------------------------------------------------------------------------------------------------
# ground truth and data


def _warp(h: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.c_[xy.astype(np.float64), np.ones(len(xy))] @ h.T
    z = p[:, 2]
    return p[:, :2] / np.where(np.abs(z) < 1e-12, 1e-12, z)[:, None], z > 0


def reprojection_labels(
    kpts0: np.ndarray,
    kpts1: np.ndarray,
    h_1_0: np.ndarray,
    size1: tuple[int, int],
    size0: tuple[int, int],
    match_radius: float = 3.0,
    unmatched_radius: float = 5.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-keypoint targets ``gt0`` (N0,), ``gt1`` (N1,): partner index, -1 unmatched, -2 ignored.

    A match is a mutual nearest neighbour under the homography within ``match_radius`` px (in both
    views).  Unmatched: the nearest reprojected partner is beyond ``unmatched_radius`` or the keypoint
    warps outside the other view."""
    gt0 = np.full(len(kpts0), IGNORED, np.int64)
    gt1 = np.full(len(kpts1), IGNORED, np.int64)
    if len(kpts0) == 0 or len(kpts1) == 0:
        gt0[:] = UNMATCHED
        gt1[:] = UNMATCHED
        return gt0, gt1
    w0, front0 = _warp(h_1_0, kpts0)
    w1, front1 = _warp(np.linalg.inv(h_1_0), kpts1)
    d01 = np.linalg.norm(w0[:, None] - kpts1[None], axis=2)  # in view 1
    d10 = np.linalg.norm(kpts0[:, None] - w1[None], axis=2)  # in view 0
    dist = np.maximum(d01, d10)
    nn01, nn10 = dist.argmin(1), dist.argmin(0)
    rows = np.arange(len(kpts0))
    mutual = (nn10[nn01] == rows) & (dist[rows, nn01] <= match_radius)
    gt0[mutual] = nn01[mutual]
    gt1[nn01[mutual]] = rows[mutual]

    def outside(xy, front, size):
        h, w = size
        return ~front | (xy[:, 0] < -0.5) | (xy[:, 1] < -0.5) | (xy[:, 0] > w - 0.5) | (xy[:, 1] > h - 0.5)

    far0 = (dist.min(1) > unmatched_radius) | outside(w0, front0, size1)
    far1 = (dist.min(0) > unmatched_radius) | outside(w1, front1, size0)
    gt0[~mutual & far0] = UNMATCHED
    gt1[(gt1 == IGNORED) & far1] = UNMATCHED
    return gt0, gt1


def _pool_key(config: MatcherTrainConfig, split: str, count: int, silk_path: Path) -> str:
    """Cache key: everything that changes the pooled features (weights bytes included)."""
    digest = hashlib.sha256(silk_path.read_bytes()).hexdigest()[:16]
    keys = {
        "silk": digest,
        "images": config.train_images if split == "train" else config.val_images,
        "crop": config.crop,
        "top_k": config.top_k,
        "seed": config.seed,
        "count": count,
        "radii": [config.match_radius, config.unmatched_radius],
        "homography": asdict(config.homography),
        "photometric": asdict(config.photometric),
    }
    return hashlib.sha256(json.dumps(keys, sort_keys=True, default=list).encode()).hexdigest()[:16]


def _silk_path(name: str) -> Path:
    from silk_ros.weights import shipped_weights

    path = Path(name)
    return path if path.suffix or path.exists() else shipped_weights(name)


def build_pool(config: MatcherTrainConfig, split: str = "train", progress: bool = True) -> dict[str, torch.Tensor]:
    """SiLK features and labels of ``pool_pairs`` (train) or ``val_pairs`` (val) pairs, cached on disk.

    Returns padded tensors: kpts{0,1} (P, K, 2) pixels, desc (P, K, D), scores (P, K), mask (P, K),
    gt{0,1} (P, K) and h_1_0 (P, 3, 3)."""
    from silk_ros.features import PAPER_SELECTION, SilkExtractor

    count = config.pool_pairs if split == "train" else config.val_pairs
    silk_path = _silk_path(config.silk_weights)
    cache = Path(config.cache_dir)
    cache = cache if cache.is_absolute() else REPO_ROOT / cache
    path = cache / f"pool_{split}_{_pool_key(config, split, count, silk_path)}.pt"
    if path.exists():
        return torch.load(path, weights_only=True)
    root = Path(config.data_root) if config.data_root else shared_data_root()
    folders = config.train_images if split == "train" else config.val_images
    images = load_grey_images(list_images(folders, root), config.crop)
    # The shipped matcher was trained on the paper's keypoint selection; the pool key does not name it.
    extractor = SilkExtractor(
        weights=str(silk_path), backend="onnxruntime", threads=1, top_k=config.top_k, **PAPER_SELECTION
    )
    k, d, size = config.top_k, extractor.descriptor_dim, (config.crop, config.crop)
    pool = {
        **{f"kpts{v}": torch.zeros(count, k, 2) for v in (0, 1)},
        **{f"desc{v}": torch.zeros(count, k, d) for v in (0, 1)},
        **{f"scores{v}": torch.zeros(count, k) for v in (0, 1)},
        **{f"mask{v}": torch.zeros(count, k, dtype=torch.bool) for v in (0, 1)},
        **{f"gt{v}": torch.full((count, k), IGNORED, dtype=torch.long) for v in (0, 1)},
        "h_1_0": torch.zeros(count, 3, 3, dtype=torch.float64),
    }
    stream = 1 if split == "train" else 2  # distinct random streams from SiLK's own sampler
    for i in tqdm(range(count), desc=f"SiLK features ({split} pool)", disable=not progress, dynamic_ncols=True):
        rng = np.random.default_rng([config.seed, stream, i])
        image = images[int(rng.integers(len(images)))]
        view0, view1, h = make_pair(image, config.crop, rng, config.homography, config.photometric)
        f0, f1 = extractor.extract(view0), extractor.extract(view1)
        gt0, gt1 = reprojection_labels(
            f0.keypoints_xy, f1.keypoints_xy, h, size, size, config.match_radius, config.unmatched_radius
        )
        for v, (f, gt) in enumerate(((f0, gt0), (f1, gt1))):
            n = len(f)
            pool[f"kpts{v}"][i, :n] = torch.from_numpy(f.keypoints_xy)
            pool[f"desc{v}"][i, :n] = torch.from_numpy(f.descriptors)
            pool[f"scores{v}"][i, :n] = torch.from_numpy(f.scores)
            pool[f"mask{v}"][i, :n] = True
            pool[f"gt{v}"][i, :n] = torch.from_numpy(gt)
        pool["h_1_0"][i] = torch.from_numpy(h)
    pool["size"] = torch.tensor(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(pool, path.with_suffix(".tmp"))
    os.replace(path.with_suffix(".tmp"), path)
    return pool


def batch_from_pool(pool: dict[str, torch.Tensor], index: np.ndarray, swap: np.ndarray) -> dict[str, torch.Tensor]:
    """Network inputs and targets for pool rows ``index``; ``swap`` exchanges the two views (augmentation)."""
    h, w = (int(s) for s in pool["size"])
    scale = max(h, w) / 2.0
    centre = torch.tensor([w / 2.0, h / 2.0])
    idx = torch.from_numpy(index)
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
        torch.manual_seed(config.seed)
        self.model = AttentionMatcherNet(config.matcher_config())
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=1e-4)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.pool = build_pool(config, "train", progress)
        self.val_pool = build_pool(config, "val", progress) if config.val_pairs else None
        self.step = 0
        self.wall_s = 0.0
        self.history: list[dict] = []

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
        index = rng.choice(len(self.pool["h_1_0"]), cfg.batch_size, replace=False)
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
        totals, nll, n = np.zeros(3), 0.0, len(self.val_pool["h_1_0"])
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
        n, outputs = len(self.val_pool["h_1_0"]), []
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
            "silk_weights_sha256": hashlib.sha256(silk.read_bytes()).hexdigest(),
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
        if config.val_pairs:
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
