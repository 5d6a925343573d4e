"""Make the 8-bit models of SiLK weights (``precision: int8``; ``silk_ros.features.quantize`` says how and why).

Calibration photos are training photos: those of the training config's ``train_images`` without its validation
photos, spread evenly over the list (never evaluation data).  The models are written beside the weights file, each
recording the weights' SHA-256, so the extractor refuses them once the weights change.

    python -m training.quantize                      # the shipped silk-mu weights
    python -m training.quantize --weights runs/my_silk.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from silk_ros.datasets.paths import shared_data_root
from silk_ros.features import load_silk_model
from silk_ros.features.extractor import weights_path
from silk_ros.features.fusion import FusedSilk
from silk_ros.features.quantize import quantize_silk

from .config import TrainConfig
from .data import list_images, load_grey_images
from .silk import validation_images

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "mu_cpu.yaml"


def calibration_photos(config: TrainConfig, count: int, root: Path) -> list[Path]:
    """``count`` training photos of ``config``, evenly spread, none of its validation photos."""
    held_out = set(validation_images(config, root))
    photos = [p for p in list_images(config.train_images, root) if p not in held_out]
    if not photos:
        raise SystemExit(f"no training photos in {config.train_images} after the validation split")
    picks = np.unique(np.linspace(0, len(photos) - 1, min(count, len(photos))).round().astype(int))
    return [photos[i] for i in picks]


def quantize_weights(weights: str | Path, config: TrainConfig, count: int = 48, data: Path | None = None,
                     out_dir: Path | None = None) -> dict[str, Path]:
    """The 8-bit models of ``weights``, calibrated on ``count`` training photos of ``config``; returns their paths."""
    root = data or (Path(config.data_root) if config.data_root else shared_data_root())
    images = [im.astype(np.float32) / 255.0 for im in load_grey_images(calibration_photos(config, count, root), 32)]
    path = weights_path(weights)
    return quantize_silk(FusedSilk.from_model(load_silk_model(path)), path, images, out_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="silk-mu", help="SiLK weights: shipped name or .pt path")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help="training config whose photos (minus its validation photos) calibrate")
    parser.add_argument("--images", type=int, default=48, help="calibration photos")
    parser.add_argument("--data", type=Path, default=None, help="shared data folder (default ../shared/data)")
    parser.add_argument("--out-dir", type=Path, default=None, help="write here instead of beside the weights")
    args = parser.parse_args(argv)
    if args.images < 1:
        parser.error("--images must be at least 1")
    written = quantize_weights(args.weights, TrainConfig.from_yaml(args.config), args.images, args.data, args.out_dir)
    for role, out in written.items():
        print(f"{role}: {out} ({out.stat().st_size:,} bytes; calibrated on {args.config.name}'s training photos)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
