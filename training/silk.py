"""``python -m training.silk --config training/configs/mu.yaml``: self-supervised SiLK training.

One trainer for every scale: a single CPU or GPU process, or several processes launched by
``torchrun`` (DistributedDataParallel; gloo on CPU, NCCL on GPUs).  Each process draws its own pairs
(the rank is part of the data seed); gradients are averaged by DDP so all replicas stay identical.

Checkpoints (``<run_dir>/checkpoint_last.pt``, written atomically) hold the model, the optimiser, the
RNG states, the step and the accumulated wall time.  Because the pairs of step k are a pure function of
(seed, rank, k), a run killed at any point and restarted with the same command continues exactly as if
it had never stopped.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import gc
import json
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from silk_ros.datasets.paths import REPO_ROOT, shared_data_root
from silk_ros.features.model import SILK_CONFIGS, SilkNet

from .checkpoint import BEST_CHECKPOINT_NAME, BEST_POSE_CHECKPOINT_NAME, CHECKPOINT_NAME, save_checkpoint_atomically
from .config import HomographyConfig, PhotometricConfig, TrainConfig
from .correspondence import pair_correspondences
from .data import PairSampler, list_images, load_grey_images
from .losses import mnn_labels, pair_loss, shrunk_views, with_context
from .room_pairs import RoomPairSource

__all__ = ["Trainer", "main", "CHECKPOINT_NAME"]

#: The checkpoint kept for the best value of each validation figure.
BEST_CHECKPOINTS = {"val_f1": BEST_CHECKPOINT_NAME, "val_pose_auc10": BEST_POSE_CHECKPOINT_NAME}

#: Scene and camera draws of the pose-validation pairs: one fixed set, so every run is validated on the same pairs.
POSE_VALIDATION_SEED = 0



@dataclass
class StepStats:
    loss: float
    descriptor: float
    keypoint: float
    #: Share of the true correspondences whose mutual nearest neighbour is correct (match recall).
    recall: float


def match_f1(matches: int, correct: int, correspondences: int) -> tuple[float, float, float]:
    """(precision, recall, F1) of mutual-nearest-neighbour matches against the true correspondences."""
    precision = correct / matches if matches else 0.0
    recall = correct / correspondences if correspondences else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f1


def validation_images(config: TrainConfig, root: Path) -> list[Path]:
    """The held-out images: the first ``val_count`` of ``val_images`` (all when 0), none without val pairs."""
    if not config.val_images or not config.val_pairs:
        return []
    paths = list_images(config.val_images, root)
    return paths[: config.val_count] if config.val_count else paths


def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) for a plain process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


class Trainer:
    def __init__(self, config: TrainConfig, run_dir: str | Path | None = None, progress: bool = True):
        self.config = config
        self.rank, self.world, local_rank = _distributed()
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        device = config.device
        if device.startswith("cuda") and self.world > 1:
            device = f"cuda:{local_rank}"
            torch.cuda.set_device(device)
        self.device = torch.device(device)
        if self.world > 1 and config.context_scale:
            raise ValueError("context_scale training runs in one process: its second forward pass is not under DDP")
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if self.device.type == "cuda" else "gloo")
        self.run_dir = Path(run_dir or config.run_dir)
        if not self.run_dir.is_absolute():
            self.run_dir = REPO_ROOT / self.run_dir
        self.progress = progress and self.rank == 0

        torch.manual_seed(config.seed)
        random.seed(config.seed)
        np.random.seed(config.seed)
        self.model = SilkNet(SILK_CONFIGS[config.model]).to(self.device)
        self.border = self.model.border
        self.grid = config.crop - 2 * self.border
        self.val_crop = config.val_crop or config.crop
        self.val_grid = self.val_crop - 2 * self.border
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.ddp = None
        if self.world > 1:
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )

        root = Path(config.data_root) if config.data_root else shared_data_root()
        self.val_paths = validation_images(config, root)
        held_out = set(self.val_paths)
        self.train_paths = [p for p in list_images(config.train_images, root) if p not in held_out]
        if not self.train_paths:
            raise ValueError(f"no training images left in {config.train_images} after the validation split")
        images = load_grey_images(self.train_paths, config.crop)
        rooms = RoomPairSource(images, config.crop, self.border, config.seed) if config.room_pairs else None
        self.sampler = PairSampler(
            images, config.crop, config.homography, config.photometric, config.seed, self.rank, rooms,
            config.room_pairs,
        )
        self._val_batches = None
        self._val_pose_pairs = None
        self.step = 0
        self.wall_s = 0.0
        self.history: list[dict] = []

    # ---------------------------------------------------------------- checkpoints
    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    def save_checkpoint(self, name: str = CHECKPOINT_NAME) -> Path:
        record = {
            "step": self.step,
            "wall_s": self.wall_s,
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "numpy": np.random.get_state(),
                "python": random.getstate(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
            "history": self.history,
        }
        return save_checkpoint_atomically(record, self.run_dir / name)

    def load_checkpoint(self, path: Path | None = None) -> bool:
        path = path or self.checkpoint_path
        if not path.exists():
            return False
        record = torch.load(path, map_location=self.device, weights_only=False)
        self.model.load_state_dict(record["model"])
        self.optimizer.load_state_dict(record["optimizer"])
        torch.set_rng_state(record["rng"]["torch"].cpu())
        np.random.set_state(record["rng"]["numpy"])
        random.setstate(record["rng"]["python"])
        if record["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(record["rng"]["cuda"])
        self.step = int(record["step"])
        self.wall_s = float(record["wall_s"])
        self.history = list(record.get("history", []))
        return True

    def initialise_from(self, weights: str) -> None:
        """Start from ``weights`` (a SiLK weights file, shipped name or path, or a training checkpoint); the
        optimizer starts afresh.  Only for a run without a checkpoint: resuming restores everything instead."""
        path = Path(weights)
        if path.suffix and path.is_file():
            record = torch.load(path, map_location=self.device, weights_only=False)
            if isinstance(record, dict) and "optimizer" in record and "model" in record:  # a training checkpoint
                self.model.load_state_dict(record["model"])
                return
        from silk_ros.features.extractor import load_silk_model

        self.model.load_state_dict(load_silk_model(weights).state_dict())

    # ---------------------------------------------------------------- training
    def _forward(self, views0: torch.Tensor, views1: torch.Tensor):
        net = self.ddp or self.model
        views = torch.cat([views0, views1]).to(self.device)
        logits, desc = net(views)
        desc = self._matched_descriptors(views, desc)
        b = len(views0)
        return logits[:b, 0], desc[:b], logits[b:, 0], desc[b:]

    def _matched_descriptors(self, views: torch.Tensor, desc: torch.Tensor) -> torch.Tensor:
        """The dense descriptors the losses and the validation match: the network's own, or joined with the
        context pass's (``context_scale``; its second forward pass runs outside DDP, which is refused then)."""
        cfg = self.config
        if not cfg.context_scale:
            return desc
        _, small = self.model(shrunk_views(views, cfg.context_scale, self.border))
        return with_context(desc, small, self.border, tuple(views.shape[-2:]), cfg.context_weight)

    def train_step(self) -> StepStats:
        cfg = self.config
        self.model.train()
        v0, v1, hs = self.sampler.batch(self.step, cfg.batch_size)
        logits0, desc0, logits1, desc1 = self._forward(torch.from_numpy(v0), torch.from_numpy(v1))
        generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + self.rank * 7919 + self.step)
        losses = []
        for k in range(len(hs)):
            gt01, gt10 = pair_correspondences(hs[k], self.grid, self.border)
            losses.append(
                pair_loss(
                    logits0[k], desc0[k], logits1[k], desc1[k], gt01.to(self.device), gt10.to(self.device),
                    cfg.temperature, cfg.block_size, cfg.anchors, generator,
                    cfg.descriptor_weight, cfg.keypoint_weight, cfg.keypoint_mask,
                )
            )
        loss = torch.stack([p.loss for p in losses]).mean()
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr_at(self.step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.world > 1:
            # DDP broadcasts BatchNorm running statistics only at the *start* of a forward pass; doing it
            # after the step as well keeps every replica (and rank 0's checkpoint) bit-identical.
            for buffer in self.model.buffers():
                dist.broadcast(buffer, src=0)
        self.step += 1
        n = len(losses)
        recall = sum(p.correct for p in losses) / max(sum(p.correspondences for p in losses), 1)
        return StepStats(
            float(loss.detach()), sum(p.descriptor for p in losses) / n, sum(p.keypoint for p in losses) / n, recall
        )

    @torch.no_grad()
    def validate(self) -> dict:
        """Match precision / recall / F1 and keypoint-label accuracy on fixed held-out pairs."""
        if not self.val_paths:
            return {}
        if self._val_batches is None:
            # SiLK's sampler and the default augmentation whatever the training config says, so that runs with
            # other training distributions (the ablations) are validated on the same pairs.
            sampler = PairSampler(
                load_grey_images(self.val_paths, self.val_crop), self.val_crop, HomographyConfig(),
                PhotometricConfig(), seed=self.config.seed + 10_000,
            )
            self._val_batches = [sampler.batch(i, 1) for i in range(self.config.val_pairs)]
        self.model.eval()
        totals = np.zeros(3)
        kp_agree, kp_total = 0, 0
        for v0, v1, hs in self._val_batches:
            views = torch.from_numpy(np.concatenate([v0, v1])).to(self.device)
            logits, desc = self.model(views)
            desc = self._matched_descriptors(views, desc)
            gt01, gt10 = pair_correspondences(hs[0], self.val_grid, self.border)
            d0 = torch.nn.functional.normalize(desc[0].flatten(1).T, dim=1)
            d1 = torch.nn.functional.normalize(desc[1].flatten(1).T, dim=1)
            label0, _, mutual0 = mnn_labels(d0, d1, gt01.to(self.device), gt10.to(self.device), self.config.block_size)
            totals += [int(mutual0.sum()), int(label0.sum()), int((gt01 >= 0).sum())]
            has_partner = gt01.to(self.device) >= 0  # the cells the keypoint head is trained on
            kp_agree += int(((logits[0, 0].flatten() > 0) == label0)[has_partner].sum())
            kp_total += int(has_partner.sum())
        precision, recall, f1 = match_f1(*(int(t) for t in totals))
        metrics = {"val_precision": precision, "val_recall": recall, "val_f1": f1,
                   "val_keypoint_acc": kp_agree / max(kp_total, 1)}
        if self.config.val_pose_pairs:
            metrics["val_pose_auc10"] = self.validation_pose_auc()
        self.model.train()
        return metrics

    def validation_pose_auc(self) -> float:
        """Pose AUC@10 (SuperGlue protocol) with MNN on synthetic-room pairs of the validation photos, the
        keypoints selected as ``silk-vo bench pose-pairs`` selects them (640x480, <= 2,000)."""
        from silk_ros.bench.pose_pairs import evaluate_pose
        from silk_ros.features import SilkExtractor

        from .pose_check import synthetic_pose_pairs

        if self._val_pose_pairs is None:
            self._val_pose_pairs = synthetic_pose_pairs(
                self.config.val_pose_pairs, POSE_VALIDATION_SEED, width=640, height=480, photo_paths=self.val_paths,
                progress=self.progress,
            )
        # The descriptors the run trains: the network's own, or context descriptors (``context_scale``).  Matches at
        # the keypoints, as the curve was recorded before refined matches existed (session 26): it stays comparable.
        cfg = self.config
        extractor = SilkExtractor(model=copy.deepcopy(self.model).cpu(), top_k=2000, backend="torch", threads=0,
                                  context_scale=cfg.context_scale, context_weight=cfg.context_weight,
                                  refine_matches=False)
        return float(evaluate_pose(extractor, self._val_pose_pairs)["auc@10"])  # RANSAC seeded: repeatable

    def leave_process_group(self) -> None:
        """Tear down DDP before its process group, after every replica got here.  Why: the DDP reducer keeps the
        group's gloo threads alive; left to interpreter exit, a replica died once with "terminate called without
        an active exception" (SIGABRT) after its work was done (CI, a 2-process run)."""
        dist.barrier()
        self.ddp = None
        gc.collect()
        dist.destroy_process_group()

    def parameter_digest(self) -> str:
        """SHA-256 of every parameter and buffer: equal digests = bit-identical replicas."""
        import hashlib

        digest = hashlib.sha256()
        for key, value in sorted(self.model.state_dict().items()):
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()

    def fit(self, steps: int | None = None, stop_after: int | None = None) -> list[dict]:
        """Train until ``steps`` (default config.steps); ``stop_after`` ends this call early (tests, budgets)."""
        cfg = self.config
        total = steps or cfg.steps
        end = total if stop_after is None else min(total, self.step + stop_after)
        bar = tqdm(total=total, initial=self.step, disable=not self.progress, dynamic_ncols=True, desc="silk")
        log_path = self.run_dir / "log.jsonl"
        if self.rank == 0:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        smooth = None
        while self.step < end:
            start = time.perf_counter()
            stats = self.train_step()
            self.last_stats = stats
            self.wall_s += time.perf_counter() - start
            smooth = stats if smooth is None else StepStats(
                *(0.95 * a + 0.05 * b for a, b in zip(vars(smooth).values(), vars(stats).values(), strict=True))
            )
            bar.update(1)
            bar.set_postfix(loss=f"{smooth.loss:.3f}", desc=f"{smooth.descriptor:.3f}", kp=f"{smooth.keypoint:.3f}",
                            recall=f"{smooth.recall:.3f}")
            if self.rank != 0:
                continue
            entry = None
            if self.step % cfg.log_every == 0:
                rounded = {k: round(v, 5) for k, v in vars(stats).items()}
                entry = {"step": self.step, "wall_s": round(self.wall_s, 2), **rounded}
            if self.step % cfg.val_every == 0 or self.step == total:
                entry = {**(entry or {"step": self.step, "wall_s": round(self.wall_s, 2)}), **self.validate()}
                for metric, name in BEST_CHECKPOINTS.items():
                    best = max((h[metric] for h in self.history if metric in h), default=-np.inf)
                    if entry.get(metric, -np.inf) > best:
                        self.save_checkpoint(name)
                self.history.append(entry)
            if entry is not None:
                entry["utc"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
                with log_path.open("a") as log:
                    log.write(json.dumps(entry) + "\n")
            if self.step % cfg.checkpoint_every == 0 or self.step == end:
                self.save_checkpoint()
        bar.close()
        if self.world > 1:
            dist.barrier()
        return self.history


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.silk", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="YAML training config (training/configs/*.yaml)")
    parser.add_argument("--run-dir", help="override config.run_dir (checkpoints, log.jsonl)")
    parser.add_argument("--steps", type=int, help="override config.steps")
    parser.add_argument("--stop-after", type=int, help="stop this invocation after N steps (resumable)")
    parser.add_argument("--threads", type=int, help="override config.threads (torch intra-op threads)")
    parser.add_argument("--device", help="override config.device (cpu, cuda)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key (YAML value; homography.* / photometric.* for the sections)")
    parser.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in the run dir")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = TrainConfig.from_yaml(args.config, overrides=args.set)
    for key in ("steps", "threads", "device"):
        if getattr(args, key) is not None:
            setattr(config, key, getattr(args, key))
    if args.run_dir:
        config.run_dir = args.run_dir
    config.validate()
    trainer = Trainer(config, progress=not args.no_progress)
    if not args.fresh and trainer.load_checkpoint():
        print(f"resumed from {trainer.checkpoint_path} at step {trainer.step}", file=sys.stderr)
    elif config.init_weights:
        trainer.initialise_from(config.init_weights)
        print(f"started from the weights {config.init_weights}", file=sys.stderr)
    trainer.fit(stop_after=args.stop_after)
    if trainer.rank == 0 and trainer.history:
        print(json.dumps(trainer.history[-1]))
    if trainer.world > 1:
        # One record per replica, so that the DDP test (and a user) can check that all replicas are identical: a file
        # each, since the replicas' lines on the shared stdout can interleave (seen in a fresh-clone test run).
        last = getattr(trainer, "last_stats", None)
        record = {"rank": trainer.rank, "step": trainer.step, "parameter_digest": trainer.parameter_digest(),
                  "last_loss": last.loss if last else None}
        (trainer.run_dir / f"replica_{trainer.rank}.json").write_text(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)
        trainer.leave_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
