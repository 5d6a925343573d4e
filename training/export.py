"""``python -m training.export --run-dir runs/silk_mu_cpu --out silk_ros/weights/silk_vggnp_mu.pt``.

Turns a training checkpoint into a versioned silk_ros weights file (``silk_ros.weights.save_weights``)
with its provenance: data, steps, wall time, hardware, config, git commit and the last validation figures.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import torch

from silk_ros.bench.report import machine_line
from silk_ros.datasets.paths import REPO_ROOT
from silk_ros.features.model import SILK_CONFIGS
from silk_ros.weights import save_weights

from .checkpoint import BEST_CHECKPOINT_NAME, BEST_POSE_CHECKPOINT_NAME, CHECKPOINT_NAME

CHECKPOINTS = {"best": BEST_CHECKPOINT_NAME, "best_pose": BEST_POSE_CHECKPOINT_NAME, "last": CHECKPOINT_NAME}

__all__ = ["export_checkpoint", "hardware_description", "git_commit"]


def hardware_description(threads: int) -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{machine_line()}, torch {torch.__version__}, {threads} intra-op thread(s), {gpu}"


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def export_checkpoint(
    checkpoint: Path, out: Path, config_path: str | None = None, code_commit: str | None = None
) -> Path:
    """Write the checkpoint's model as a shipped weights file; returns the path written."""
    if not checkpoint.exists():
        raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
    record = torch.load(checkpoint, map_location="cpu", weights_only=False)
    config = record["config"]
    architecture = SILK_CONFIGS[config["model"]].to_dict()
    val = next((h for h in reversed(record.get("history", [])) if "val_f1" in h), {})
    provenance = {
        "data": {
            "train_images": config["train_images"],
            "val_images": config["val_images"],
            "data_root": config["data_root"] or "../shared/data",
        },
        "steps": int(record["step"]),
        "pairs_seen": int(record["step"]) * int(config["batch_size"]),
        "wall_time_s": round(float(record["wall_s"]), 1),
        "hardware": hardware_description(int(config.get("threads") or torch.get_num_threads())),
        "config": config,
        "config_file": config_path,
        "git_commit": code_commit or git_commit(),
        "validation": val,
        "trainer": "python -m training.silk (silk_ros, written from the SiLK paper)",
    }
    return save_weights(out, "silk", architecture, record["model"], provenance)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", required=True, help=f"training run folder holding {CHECKPOINT_NAME}")
    parser.add_argument(
        "--checkpoint", choices=tuple(CHECKPOINTS), default="best",
        help=f"best: the best validation F1 ({BEST_CHECKPOINT_NAME}); best_pose: the best validation pose AUC@10 "
        f"({BEST_POSE_CHECKPOINT_NAME}, runs with val_pose_pairs); last: {CHECKPOINT_NAME}",
    )
    parser.add_argument("--out", default=str(REPO_ROOT / "silk_ros/weights/silk_vggnp_mu.pt"))
    parser.add_argument("--config-file", help="the YAML the run was started with (recorded in provenance)")
    parser.add_argument("--code-commit", help="commit of the training code the run used (default: git HEAD)")
    parser.add_argument("--no-int8", action="store_true",
                        help="skip the 8-bit models (precision: int8 then refuses these weights until "
                        "`python -m training.quantize` makes them)")
    parser.add_argument("--int8-images", type=int, default=48, help="training photos that calibrate the 8-bit models")
    args = parser.parse_args(argv)
    name = CHECKPOINTS[args.checkpoint]
    path = export_checkpoint(Path(args.run_dir) / name, Path(args.out), args.config_file, args.code_commit)
    print(f"wrote {path}")
    if not args.no_int8:  # the run's own training photos calibrate them
        from .config import TrainConfig
        from .quantize import quantize_weights

        config = torch.load(Path(args.run_dir) / name, map_location="cpu", weights_only=False)["config"]
        for written in quantize_weights(path, TrainConfig.from_dict(config), args.int8_images).values():
            print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
