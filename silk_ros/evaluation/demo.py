"""``silk-vo demo --data DIR``: one command that shows the odometry working.

Runs ``run-dataset`` on the 7-Scenes RGB-D excerpt from the shared data folder when it is there (real Kinect
data, metric ground truth, well under two minutes on a laptop CPU), else on the synthetic room sequence the
package renders itself, and prints the result (ATE, frames, frames/s) and where the report went.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from silk_ros.datasets.paths import shared_data_root
from silk_ros.evaluation.run_dataset import DEFAULT_CONFIG, load_config, run_dataset, summary_line

__all__ = ["add_arguments", "run", "choose_sequence"]

SEVEN_SCENES = Path("sequences") / "7scenes_redkitchen"
DEMO_FRAMES = 120


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=None, help="shared data folder (default: ../shared/data beside the repo)")
    parser.add_argument("--features", choices=("silk", "orb", "sift"), default=None, help="front end")
    parser.add_argument("--out", default="runs/demo", help="report folder (default runs/demo)")
    parser.add_argument("--max-frames", type=int, default=DEMO_FRAMES, help=f"frames to run (default {DEMO_FRAMES})")


def choose_sequence(data: Path) -> tuple[str, Path | None, str]:
    """(format, path, mode): the real 7-Scenes RGB-D excerpt when present, else the synthetic room."""
    seven = data / SEVEN_SCENES
    if (seven / "seq-01").is_dir():
        return "7scenes", seven, "rgbd"
    return "synthetic", None, "rgbd"


def run(args: argparse.Namespace) -> int:
    data = Path(args.data) if args.data else shared_data_root()
    fmt, path, mode = choose_sequence(data)
    config = load_config(DEFAULT_CONFIG, features=args.features)
    if config.features == "silk":
        from silk_ros.weights import WeightsError, shipped_weights

        try:
            if not Path(config.weights).is_file():
                shipped_weights(config.weights)
        except WeightsError as exc:  # weights not shipped in this checkout: say so and show the ORB pipeline
            print(f"SiLK weights unavailable ({exc}); running the ORB baseline instead")
            config = config.replace(features="orb")
    where = path if path is not None else "synthetic room (rendered by silk_ros.datasets.synthetic)"
    print(f"demo: {fmt} {where}, {mode}, {config.features}, up to {args.max_frames} frames")
    metrics = run_dataset(fmt, path, args.out, mode, config, max_frames=args.max_frames)
    print(summary_line(metrics))
    print(f"report: {Path(args.out) / 'report.md'} (plot: trajectory.png)")
    return 0
