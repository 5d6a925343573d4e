"""``silk-vo run-dataset FORMAT PATH --out DIR`` (or ``--format FORMAT PATH``): replay a dataset through the
odometry and write a report (trajectory TUM, report.json / report.md with ATE, RPE, lost frames, FPS per stage,
trajectory.png). A dataset that cannot be read (missing folder, wrong layout) ends in one line on stderr that
names the path and what is missing, and exit code 2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from silk_ros.datasets import FORMATS, DatasetError, Sequence, detect_format, open_sequence
from silk_ros.datasets.paths import REPO_ROOT
from silk_ros.evaluation.trajectory import TrajectoryError
from silk_ros.geometry.camera import CameraError

if TYPE_CHECKING:  # the odometry (torch) is imported when it runs: a bad dataset path fails in a second
    from silk_ros.odometry import OdometryConfig

__all__ = ["add_arguments", "run", "run_dataset", "load_config", "DEFAULT_CONFIG"]

DEFAULT_CONFIG = REPO_ROOT / "config" / "odometry.yaml"


#: Exit code of a dataset that cannot be read (like argparse's for bad arguments).
EXIT_BAD_DATASET = 2
#: What a dataset that cannot be read raises (each message names the file and what is wrong with it).
DATASET_ERRORS = (DatasetError, TrajectoryError, CameraError)
FORMAT_CHOICES = sorted(FORMATS) + ["auto"]
#: reader option -> the run-dataset flag that sets it (folder format only)
FOLDER_FLAGS = {"camera": "--intrinsics/--calib", "ground_truth": "--gt", "times": "--times"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", nargs="*", metavar="[FORMAT] PATH",
                        help=f"dataset layout ({', '.join(FORMAT_CHOICES)}; or --format) and folder "
                             "(no folder for 'synthetic')")
    parser.add_argument("--format", dest="format_option", choices=FORMAT_CHOICES, help="dataset layout")
    folder = parser.add_argument_group("--format folder (an image folder of your own)")
    folder.add_argument("--intrinsics", nargs="+", type=float, metavar="V",
                        help="FX FY CX CY [D1 ... Dn] (plumb_bob distortion); default: camera.yaml/json in the folder")
    folder.add_argument("--calib", help="camera calibration file (fx/fy/cx/cy YAML or JSON, or a ROS camera YAML)")
    folder.add_argument("--gt", help="TUM ground truth (default: groundtruth.txt in the folder when present)")
    folder.add_argument("--times", help="one timestamp per image (default: times.txt, else the file names)")
    parser.add_argument("--mode", choices=("auto", "mono", "rgbd"), default="auto",
                        help="auto: RGB-D when the dataset has depth")
    parser.add_argument("--features", choices=("silk", "orb", "sift"), help="front end (default: the config's)")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.add_argument("--stride", type=int, default=1, help="use every n-th frame")
    parser.add_argument("--start", type=int, default=0, help="first frame")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="odometry YAML (default config/odometry.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one odometry setting (YAML value), e.g. --set max_keypoints=800")
    parser.add_argument("--out", required=True, help="output folder for the report")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    overrides = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def load_config(path: str | Path | None, **overrides: Any) -> OdometryConfig:
    """The YAML defaults (when the file exists) with ``overrides`` applied; ``None`` values are ignored."""
    from silk_ros.odometry import OdometryConfig

    config = OdometryConfig.from_yaml(path) if path and Path(path).is_file() else OdometryConfig()
    changes = {k: v for k, v in overrides.items() if v is not None}
    return config.replace(**changes) if changes else config


def _sequence_options(fmt: str, mode: str, max_frames: int | None, stride: int, start: int) -> dict[str, Any]:
    options: dict[str, Any] = {"stride": stride, "start": start}
    if max_frames is not None:
        options["max_frames"] = max_frames
    if mode == "mono":  # do not read depth images that would be ignored
        if fmt in ("7scenes", "tum", "tartanair"):
            options["depth"] = False
        elif fmt == "synthetic":
            options["with_depth"] = False
    return options


def open_dataset(fmt: str, path: str | Path | None, mode: str = "auto", max_frames: int | None = None,
                 stride: int = 1, start: int = 0, sequence_options: dict[str, Any] | None = None) -> Sequence:
    """The sequence with run-dataset's options (depth not read in mono mode) and the reader's own options."""
    options = _sequence_options(fmt, mode, max_frames, stride, start)
    options.update(sequence_options or {})
    return open_sequence(fmt, path, **options)


def run_dataset(
    fmt: str,
    path: str | Path | None,
    out: str | Path | None,
    mode: str = "auto",
    config: OdometryConfig | None = None,
    max_frames: int | None = None,
    stride: int = 1,
    start: int = 0,
    progress: bool = True,
    sequence_options: dict[str, Any] | None = None,
    title: str | None = None,
    sequence: Sequence | None = None,
) -> dict[str, Any]:
    """Open the sequence (unless ``sequence`` is given, already opened), run the odometry, write the report into
    ``out`` (if given); return the metrics with the run statistics under ``"run"``."""
    from silk_ros.evaluation.report import FrameEvents, compute_metrics, write_report
    from silk_ros.odometry import VisualOdometry, run_sequence

    config = config or load_config(DEFAULT_CONFIG)
    if sequence is None:
        sequence = open_dataset(fmt, path, mode, max_frames, stride, start, sequence_options)
    if mode == "auto":
        mode = "rgbd" if sequence.has_depth else "mono"
    if mode == "rgbd" and not sequence.has_depth:
        raise SystemExit(f"--mode rgbd: {sequence.name} has no depth images")
    vo = FrameEvents(VisualOdometry(config.replace(mode=mode)))
    trajectory, stats = run_sequence(vo, sequence, progress=progress)
    stats.update(mode=mode, metric=mode == "rgbd", stride=stride, **vo.stats())
    title = title or f"{sequence.name} ({mode}, {config.features})"
    if out is not None:
        metrics = write_report(out, trajectory, sequence.ground_truth, stats, title)
    else:
        metrics = compute_metrics(trajectory, sequence.ground_truth, stats, 0.02)
    metrics["run"] = stats
    metrics["trajectory"] = trajectory
    return metrics


def summary_line(metrics: dict[str, Any]) -> str:
    run = metrics["run"]
    headline = metrics.get("headline")
    error = f"{headline['name']} {headline['rmse_m']:.4f} m" if headline else "no ground truth"
    fps = run["timings"].get("total", {}).get("fps", float("nan"))
    return (
        f"{run['sequence']} [{run['mode']}, {run['features']}]: {error}, {run['frames']} frames, "
        f"{run['lost_frames']} lost, {run['keyframes']} keyframes, path {metrics['estimate_path_length']:.3f}, "
        f"{fps:.1f} frames/s ({run['backend']})"
    )


def dataset_arguments(args: argparse.Namespace) -> tuple[str, str | None, dict[str, Any]]:
    """(format, path, reader options) from ``[FORMAT] PATH`` or ``--format FORMAT PATH`` and the folder flags."""
    given = list(args.dataset)
    fmt = args.format_option or (given.pop(0) if given else None)
    if fmt is None:
        raise DatasetError("no dataset format: give FORMAT PATH or --format FORMAT PATH")
    if fmt not in FORMAT_CHOICES:
        raise DatasetError(f"unknown dataset format {fmt!r}; expected one of {', '.join(FORMAT_CHOICES)}")
    if len(given) > 1:
        raise DatasetError(f"expected one dataset folder, got {len(given)}: {' '.join(given)}")
    path = given[0] if given else None
    if fmt == "synthetic" and path is not None:
        raise DatasetError(f"the synthetic sequence is rendered, it reads no dataset folder (got {path})")
    options = _folder_options(args)
    if options and fmt == "auto" and path is not None and Path(path).is_dir():
        fmt = detect_format(path)
    if options and fmt not in ("folder", "auto"):
        flags = ", ".join(FOLDER_FLAGS[key] for key in options)
        raise DatasetError(f"{flags} only apply to --format folder, not {fmt} ({path})")
    return fmt, path, options


def _folder_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if args.intrinsics and args.calib:
        raise DatasetError("give the intrinsics once: --intrinsics or --calib, not both")
    if args.intrinsics or args.calib:
        options["camera"] = args.intrinsics or args.calib
    if args.gt:
        options["ground_truth"] = args.gt
    if args.times:
        options["times"] = args.times
    return options


def run(args: argparse.Namespace) -> int:
    try:  # the dataset is checked before the odometry is loaded
        fmt, path, options = dataset_arguments(args)
        sequence = open_dataset(fmt, path, args.mode, args.max_frames, args.stride, args.start, options)
    except DATASET_ERRORS as err:
        return _bad_dataset(err)
    config = load_config(args.config, features=args.features, **parse_overrides(args.set))
    try:
        metrics = run_dataset(fmt, path, args.out, args.mode, config, stride=args.stride,
                              progress=not args.no_progress, sequence=sequence)
    except DATASET_ERRORS as err:  # a frame file missing or unreadable half-way through
        return _bad_dataset(err)
    print(summary_line(metrics))
    print(f"report: {Path(args.out) / 'report.md'}")
    return 0


def _bad_dataset(err: Exception) -> int:
    print(f"silk-vo run-dataset: error: {err}", file=sys.stderr)
    return EXIT_BAD_DATASET
