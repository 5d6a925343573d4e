"""``silk-vo bag``: convert a dataset to a rosbag2, and evaluate the odometry on a bag.

``silk-vo bag convert --format tum PATH OUT.mcap``   dataset -> real rosbag2 (mcap or sqlite3 .db3) with images
(raw or --compressed), CameraInfo, depth and the ground truth (PoseStamped + /tf), stamped with the dataset's times.

``silk-vo bag eval BAG --image-topic T --out DIR``   replays every image, in bag order, through
``VisualOdometry.process`` after decoding it with the node's own decoder (deterministic: two runs give the same
trajectory), then writes the usual report (ATE/RPE, lost frames, per-stage latency, plots, JSON, Markdown).
With ``--realtime --rate R`` the bag is instead played over DDS to a real silk_vo_node process, whose odometry is
recorded into a new bag and evaluated the same way: what the robot would have done, dropped frames included.

Every check that can fail (topics, types, calibration, truncation, ground-truth overlap) runs before the odometry;
the report is written to a temporary folder and moved into place only when complete.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from silk_ros.bagio.errors import BagError

FORMATS = ("kitti", "tum", "euroc", "7scenes", "synthetic")


# ---------------------------------------------------------------------------------------------- arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bag_command", required=True, metavar="{convert,eval}")
    _add_convert_arguments(sub.add_parser("convert", help="write a dataset sequence as a rosbag2 (.mcap or .db3)"))
    _add_eval_arguments(sub.add_parser("eval", help="run the odometry on a bag and write a report"))


def _add_convert_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", required=True, choices=FORMATS, help="dataset layout")
    p.add_argument("path", help="dataset folder ('-' for the synthetic sequence without a texture folder)")
    p.add_argument(
        "out",
        type=Path,
        help="OUT.mcap or OUT.db3: the storage plugin follows the suffix; the bag is the rosbag2 directory OUT/",
    )
    p.add_argument("--storage", choices=("mcap", "sqlite3"), help="storage plugin when OUT has no suffix")
    p.add_argument(
        "--compressed",
        nargs="?",
        const="jpeg",
        choices=("jpeg", "png"),
        help="write sensor_msgs/CompressedImage (jpeg by default, or png) instead of Image",
    )
    p.add_argument("--jpeg-quality", type=int, default=95)
    p.add_argument("--max-frames", type=int, help="write at most this many frames")
    p.add_argument("--start", type=int, default=0, help="first dataset frame")
    p.add_argument("--stride", type=int, default=1, help="keep every n-th frame")
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra dataset reader option (YAML value), e.g. --option resize=0.5 or, for synthetic, "
        "--option n_frames=20; repeatable",
    )
    p.add_argument("--no-camera-info", action="store_true", help="leave CameraInfo out (a bag for --camera-yaml)")
    p.add_argument("--no-depth", action="store_true", help="leave depth out even when the dataset has it")
    p.add_argument(
        "--depth-encoding",
        choices=("32FC1", "16UC1"),
        default="32FC1",
        help="32FC1 metres (lossless, default) or 16UC1 millimetres (OpenNI convention)",
    )
    p.add_argument("--no-ground-truth", action="store_true", help="leave the ground truth out")
    p.add_argument("--no-tf", action="store_true", help="ground truth as PoseStamped only, not also on /tf")
    p.add_argument(
        "--image-topic", default=None, help="default /camera/image_raw (/camera/image_raw/compressed with --compressed)"
    )
    p.add_argument("--camera-info-topic", default="/camera/camera_info")
    p.add_argument("--depth-topic", default="/camera/depth/image_raw")
    p.add_argument("--gt-topic", default="/ground_truth/pose")
    p.add_argument("--tf-topic", default="/tf")
    p.add_argument("--camera-frame", default="camera_optical_frame", help="frame_id of images and CameraInfo")
    p.add_argument("--world-frame", default="world", help="frame_id of the ground-truth poses")
    p.add_argument("--gt-child-frame", default="ground_truth_camera", help="child frame of the ground truth on /tf")
    p.add_argument("--no-progress", action="store_true")


def _add_eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bag", type=Path, help="rosbag2 directory, a .mcap/.db3 file, or a ROS 1 .bag")
    p.add_argument("--image-topic", default="/camera/image_raw", help="sensor_msgs/Image or CompressedImage topic")
    p.add_argument("--camera-info-topic", help="CameraInfo topic (default: the image topic's sibling camera_info)")
    p.add_argument("--camera-yaml", type=Path, help="ROS camera_calibration YAML, for bags without CameraInfo")
    p.add_argument("--depth-topic", help="depth Image topic (16UC1 mm or 32FC1 m) for RGB-D odometry")
    gt = p.add_mutually_exclusive_group()
    gt.add_argument(
        "--gt-topic",
        help="ground truth of the camera optical frame: PoseStamped, PoseWithCovarianceStamped, TransformStamped, "
        "Odometry, or TFMessage (e.g. /tf, with --gt-child-frame)",
    )
    gt.add_argument("--gt", type=Path, help="ground truth as a TUM trajectory file (T_world_cam)")
    p.add_argument(
        "--gt-child-frame",
        default="ground_truth_camera",
        help="with a tf2_msgs/TFMessage --gt-topic (e.g. /tf): the child frame holding the ground truth",
    )
    p.add_argument("--out", type=Path, required=True, help="report folder")
    p.add_argument(
        "--params",
        type=Path,
        help="odometry settings: the node's ROS params file (config/silk_vo.yaml"
        ") or an OdometryConfig YAML; default: the node's config/silk_vo.yaml",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one odometry setting (YAML value), e.g. --set features=orb; repeatable",
    )
    p.add_argument("--max-dt", type=float, default=0.02, help="largest estimate/gt time difference (s)")
    p.add_argument("--title", help="report title")
    p.add_argument("--realtime", action="store_true", help="play the bag over DDS to a real silk_vo_node")
    p.add_argument("--rate", type=float, default=1.0, help="--realtime playback speed (x real time)")
    p.add_argument("--node-timeout", type=float, default=60.0, help="--realtime: seconds to wait for the node")
    p.add_argument("--no-progress", action="store_true")


# ---------------------------------------------------------------------------------------------- commands


def run(args: argparse.Namespace) -> int:
    try:
        if args.bag_command == "convert":
            summary = convert(args)
            print(json.dumps(summary, indent=2))
        else:
            metrics = evaluate(args)
            headline = metrics.get("headline")
            print(f"report: {args.out}")
            if headline:
                print(f"{headline['name']}: {headline['rmse_m']:.4f} m")
    except BagError as err:
        print(f"silk-vo bag {args.bag_command}: error: {err}", file=sys.stderr)
        return 2
    return 0


def convert(args: argparse.Namespace) -> dict:
    from silk_ros.bagio.writer import BagTopics, ConvertOptions, convert_sequence
    from silk_ros.datasets import DatasetError, open_sequence

    path = None if args.format == "synthetic" and args.path in ("-", "") else args.path
    try:
        options = parse_overrides(args.option, "--option")
        sequence = open_sequence(
            args.format, path, start=args.start, stride=args.stride, max_frames=args.max_frames, **options
        )
    except (DatasetError, ValueError, OSError, TypeError) as err:
        raise BagError(f"cannot open the {args.format} dataset at {args.path}: {err}") from None
    topics = BagTopics(
        image=args.image_topic or ("/camera/image_raw/compressed" if args.compressed else "/camera/image_raw"),
        camera_info=args.camera_info_topic,
        depth=args.depth_topic,
        ground_truth=args.gt_topic,
        tf=args.tf_topic,
        camera_frame=args.camera_frame,
        world_frame=args.world_frame,
        gt_child_frame=args.gt_child_frame,
    )
    options = ConvertOptions(
        storage=args.storage,
        compressed=args.compressed,
        jpeg_quality=args.jpeg_quality,
        camera_info=not args.no_camera_info,
        depth=not args.no_depth,
        depth_encoding=args.depth_encoding,
        ground_truth=not args.no_ground_truth,
        tf=not args.no_tf,
        progress=not args.no_progress,
        topics=topics,
    )
    return convert_sequence(sequence, args.out, options)


def parse_overrides(pairs: list[str], flag: str = "--set") -> dict:
    """KEY=VALUE strings -> dict with YAML values (run-dataset's parser, its error made a BagError)."""
    from silk_ros.evaluation.run_dataset import parse_overrides as parse

    try:
        return parse(pairs)
    except SystemExit as err:
        raise BagError(str(err).replace("--set", flag)) from None


def evaluate(args: argparse.Namespace) -> dict:
    """Validate everything, replay the bag (deterministic or --realtime), write the report atomically."""
    from silk_ros.bagio.camera_yaml import read_camera_yaml
    from silk_ros.bagio.params import DEFAULT_NODE_PARAMS, load_odometry_config
    from silk_ros.bagio.reader import BagSource, EvalTopics

    out = Path(args.out)
    _check_out_dir(out)
    if args.realtime and not args.rate > 0:
        raise BagError(f"--rate must be positive, got {args.rate}")
    params = args.params or (DEFAULT_NODE_PARAMS if DEFAULT_NODE_PARAMS.is_file() else None)
    config = load_odometry_config(params, parse_overrides(args.set))
    camera = read_camera_yaml(args.camera_yaml) if args.camera_yaml else None
    gt_file = _read_gt_file(args.gt) if args.gt else None
    topics = EvalTopics(
        args.image_topic, args.camera_info_topic, args.depth_topic, args.gt_topic, args.max_dt, args.gt_child_frame
    )
    progress = not args.no_progress
    with BagSource(args.bag, topics, camera=camera, progress=progress) as source:
        ground_truth = source.ground_truth if gt_file is None else gt_file
        gt_name = args.gt_topic or (str(args.gt) if args.gt else None)
        if ground_truth is not None:
            check_overlap(ground_truth, source.image_stamps, gt_name, topics.image, args.max_dt)
        sequence = source.sequence
        bag_summary = source.summary()
        if args.realtime:
            from silk_ros.ros.bag_player import replay_realtime  # rclpy only here

            estimate, stats = replay_realtime(
                source,
                params,
                parse_overrides(args.set),
                rate=args.rate,
                node_timeout=args.node_timeout,
                progress=progress,
            )
        else:
            estimate, stats = replay_deterministic(config, sequence, progress)
    uses_depth = config.mode != "mono" and sequence.has_depth
    stats = {**stats, "metric": uses_depth, "sequence": bag_summary["bag"]}
    if ground_truth is not None and len(estimate):
        _check_associated(estimate, ground_truth, gt_name, args.max_dt)
    mode = f"real time x{args.rate:g} through silk_vo_node" if args.realtime else "deterministic replay"
    title = args.title or f"silk-vo bag eval: {Path(args.bag).name} ({mode})"
    extra = {
        "mode": "realtime" if args.realtime else "deterministic",
        "rate": args.rate if args.realtime else None,
        "params": str(params) if params else None,
        "bag": bag_summary,
        "ground_truth_source": gt_name,
    }
    realtime_keys = ("dropped_frames", "received_odometry", "published_images", "latency_ms", "node_diagnostics")
    for key in (*realtime_keys, "recorded_bag", "node_log"):
        if key in stats:
            extra[key] = stats[key]
    return _write_report_atomically(out, estimate, ground_truth, stats, title, args.max_dt, extra)


def replay_deterministic(config, sequence, progress: bool = True):
    """Every frame through VisualOdometry.process in bag order (OpenCV's RNG seeded: identical reruns)."""
    import cv2

    from silk_ros.odometry.replay import run_sequence
    from silk_ros.odometry.vo import VisualOdometry
    from silk_ros.weights import WeightsError

    try:
        vo = VisualOdometry(config)
    except (WeightsError, ValueError, OSError) as err:
        raise BagError(f"cannot build the odometry ({config.features}, weights {config.weights}): {err}") from None
    cv2.setRNGSeed(0)
    return run_sequence(vo, sequence, progress=progress)


def check_overlap(ground_truth, image_stamps: np.ndarray, gt_name: str | None, image_topic: str, max_dt: float):
    """A ground truth that does not cover the images' time span at all is an error, not an empty metric."""
    if len(ground_truth) == 0:
        raise BagError(f"ground truth {gt_name} holds no poses")
    g0, g1 = float(ground_truth.timestamps[0]), float(ground_truth.timestamps[-1])
    i0, i1 = float(image_stamps[0]), float(image_stamps[-1])
    if g1 < i0 - max_dt or g0 > i1 + max_dt:
        raise BagError(
            f"ground truth {gt_name} covers {g0:.6f}..{g1:.6f} s but the images on {image_topic} cover "
            f"{i0:.6f}..{i1:.6f} s: no overlap in time (wrong clock or wrong file?)"
        )


def _check_associated(estimate, ground_truth, gt_name, max_dt: float) -> None:
    from silk_ros.geometry.trajectory import associate

    est_a, _ = associate(estimate, ground_truth, max_dt)
    if len(est_a) < 2:
        raise BagError(
            f"only {len(est_a)} estimated poses lie within {max_dt} s of a ground-truth pose from {gt_name}; "
            "nothing to evaluate (raise --max-dt if the ground truth is sparser)"
        )


def _read_gt_file(path: Path):
    from silk_ros.geometry.trajectory import read_tum

    if not Path(path).is_file():
        raise BagError(f"ground-truth file not found: {path}")
    try:
        return read_tum(path)
    except (ValueError, OSError) as err:
        raise BagError(f"ground-truth file {path} is not a TUM trajectory: {err}") from None


def _check_out_dir(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "report.json").is_file())):
        raise BagError(f"--out {out} exists and is not a previous report folder; pick another folder")


def _write_report_atomically(
    out: Path, estimate, ground_truth, stats: dict, title: str, max_dt: float, extra: dict
) -> dict:
    from silk_ros.evaluation.report import write_report

    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        metrics = write_report(staging, estimate, ground_truth, stats, title, max_dt=max_dt)
        for key, name in (("recorded_bag", "recorded_odometry"), ("node_log", "silk_vo_node.log")):
            if extra.get(key):  # --realtime: the node's recorded output and log travel with the report
                shutil.move(extra[key], staging / name)
                extra[key] = str(out / name)
        metrics.update(extra)
        (staging / "report.json").write_text(json.dumps(metrics, indent=2) + "\n")
        with open(staging / "report.md", "a") as md:
            md.write("\n## Bag\n\n")
            for key, value in extra.items():
                if isinstance(value, dict):
                    md.writelines(f"- {key}.{k}: {v}\n" for k, v in value.items())
                elif value is not None:
                    md.write(f"- {key}: {value}\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return metrics
