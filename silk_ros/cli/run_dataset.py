"""``silk-vo run-dataset FORMAT PATH --out DIR`` (or ``--format FORMAT PATH``): a dataset through the odometry,
and its report.  A dataset that cannot be read (missing folder, wrong layout) ends in one line on stderr that
names the path and what is missing, and exit code 2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from silk_ros.datasets import FORMATS, DatasetError, detect_format
from silk_ros.evaluation.run_dataset import (
    DATASET_ERRORS,
    DEFAULT_CONFIG,
    load_config,
    open_dataset,
    run_dataset,
    summary_line,
)
from silk_ros.odometry.config import ConfigError
from silk_ros.settings import parse_overrides

#: Exit code of a dataset or configuration that cannot be used (like argparse's for bad arguments).
EXIT_BAD_INPUT = 2
FORMAT_CHOICES = sorted(FORMATS) + ["auto"]
#: reader option -> the run-dataset flag that sets it (folder format only)
FOLDER_FLAGS = {"camera": "--intrinsics/--calib", "ground_truth": "--gt", "times": "--times"}
#: renderer options ``--synthetic KEY=VALUE`` may set (``SyntheticSequence``'s keywords)
SYNTHETIC_OPTIONS = ("n_frames", "width", "height", "fps", "seed", "texture", "motion", "exposure", "depth_noise",
                     "texture_dir")


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
    synthetic = parser.add_argument_group("--format synthetic (the rendered room)")
    synthetic.add_argument("--synthetic", action="append", default=[], metavar="KEY=VALUE",
                           help="renderer option, e.g. n_frames=80, texture=low, motion=fast, exposure=0.5, seed=1")
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
    if args.synthetic and fmt != "synthetic":
        raise DatasetError(f"--synthetic only applies to --format synthetic, not {fmt}")
    options = _folder_options(args)
    if options and fmt == "auto" and path is not None and Path(path).is_dir():
        fmt = detect_format(path)
    if options and fmt not in ("folder", "auto"):
        flags = ", ".join(FOLDER_FLAGS[key] for key in options)
        raise DatasetError(f"{flags} only apply to --format folder, not {fmt} ({path})")
    return fmt, path, options or _synthetic_options(args.synthetic)


def _synthetic_options(pairs: list[str]) -> dict[str, Any]:
    """``--synthetic KEY=VALUE`` -> renderer options; a key the renderer does not take is refused by name."""
    try:
        options = parse_overrides(pairs, "--synthetic")
    except ConfigError as error:
        raise DatasetError(str(error)) from None
    unknown = sorted(set(options) - set(SYNTHETIC_OPTIONS))
    if unknown:
        raise DatasetError(f"unknown --synthetic option(s) {', '.join(unknown)}; known: {', '.join(SYNTHETIC_OPTIONS)}")
    return options


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
    try:  # the dataset and the settings are checked before the odometry is loaded
        fmt, path, options = dataset_arguments(args)
        config = load_config(args.config, features=args.features, **parse_overrides(args.set))
        sequence = open_dataset(fmt, path, args.mode, args.max_frames, args.stride, args.start, options,
                                config.depth_scale)
        metrics = run_dataset(fmt, path, args.out, args.mode, config, stride=args.stride,
                              progress=not args.no_progress, sequence=sequence)
    except (*DATASET_ERRORS, ConfigError) as error:  # a frame file may also fail half-way through
        print(f"silk-vo run-dataset: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(summary_line(metrics))
    print(f"report: {Path(args.out) / 'report.md'}")
    return 0
