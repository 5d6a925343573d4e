"""``silk-vo demo --data DIR``: one command that shows the odometry working (see silk_ros.evaluation.demo)."""

from __future__ import annotations

import argparse
from pathlib import Path

from silk_ros.datasets.paths import shared_data_root
from silk_ros.evaluation.demo import DEMO_FRAMES, choose_sequence, demo_config
from silk_ros.evaluation.run_dataset import run_dataset, summary_line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=None, help="shared data folder (default: ../shared/data beside the repo)")
    parser.add_argument("--features", choices=("silk", "orb", "sift"), default=None, help="front end")
    parser.add_argument("--out", default="runs/demo", help="report folder (default runs/demo)")
    parser.add_argument("--max-frames", type=int, default=DEMO_FRAMES, help=f"frames to run (default {DEMO_FRAMES})")


def run(args: argparse.Namespace) -> int:
    data = Path(args.data) if args.data else shared_data_root()
    fmt, path, mode = choose_sequence(data)
    config, fallback = demo_config(args.features)
    if fallback:
        print(fallback)
    where = path if path is not None else "synthetic room (rendered by silk_ros.datasets.synthetic)"
    print(f"demo: {fmt} {where}, {mode}, {config.extractor.features}, up to {args.max_frames} frames")
    metrics = run_dataset(fmt, path, args.out, mode, config, max_frames=args.max_frames)
    print(summary_line(metrics))
    print(f"report: {Path(args.out) / 'report.md'} (plot: trajectory.png)")
    return 0
