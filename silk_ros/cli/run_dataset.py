"""``silk-vo run-dataset FORMAT PATH --out DIR``: a dataset through the odometry, and its report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from silk_ros.datasets import FORMATS, DatasetError
from silk_ros.evaluation.run_dataset import DEFAULT_CONFIG, load_config, run_dataset, summary_line
from silk_ros.odometry import ConfigError
from silk_ros.settings import parse_overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("format", choices=sorted(FORMATS) + ["auto"], help="dataset layout")
    parser.add_argument("path", nargs="?", help="dataset folder (not needed for 'synthetic')")
    parser.add_argument("--mode", choices=("auto", "mono", "rgbd"), default="auto",
                        help="auto: RGB-D when the dataset has depth")
    parser.add_argument("--features", choices=("silk", "orb", "sift"), help="front end (default: the config's)")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.add_argument("--stride", type=int, default=1, help="use every n-th frame")
    parser.add_argument("--start", type=int, default=0, help="first frame")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="odometry YAML (default config/odometry.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one odometry setting (YAML value), e.g. --set top_k=800")
    parser.add_argument("--out", required=True, help="output folder for the report")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, features=args.features, **parse_overrides(args.set))
        metrics = run_dataset(
            args.format, args.path, args.out, args.mode, config, args.max_frames, args.stride, args.start,
            progress=not args.no_progress,
        )
    except (ConfigError, DatasetError) as error:
        print(f"silk-vo run-dataset: error: {error}", file=sys.stderr)
        return 2
    print(summary_line(metrics))
    print(f"report: {Path(args.out) / 'report.md'}")
    return 0
