"""``silk-vo bag convert`` / ``silk-vo bag eval``: the arguments of silk_ros.evaluation.bag.

``--realtime`` is the one path that needs ROS: only then is ``silk_ros.ros.bag_player`` (rclpy) imported.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from silk_ros.bagio.errors import BagError
from silk_ros.bagio.reader import EvalTopics
from silk_ros.bagio.writer import BagTopics, ConvertOptions
from silk_ros.evaluation.bag import BagEvaluation, RealtimeReplay, convert_dataset, evaluate
from silk_ros.odometry import ConfigError
from silk_ros.settings import parse_overrides

FORMATS = ("kitti", "tum", "euroc", "7scenes", "synthetic")


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
    p.add_argument(
        "--depth-topic",
        help="depth Image topic (16UC1 mm or 32FC1 m): RGB-D odometry (mode rgbd), unless --set mode=... says "
        "otherwise (mode=mono: depth ignored) or --set depth_scale=true (monocular tracking scaled by the depth)",
    )
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
    p.add_argument("--start", type=int, default=0, help="first image evaluated (0-based, in bag order)")
    p.add_argument("--max-frames", type=int, help="evaluate at most this many images from --start on")
    p.add_argument("--max-dt", type=float, default=0.02, help="largest estimate/gt time difference (s)")
    p.add_argument("--title", help="report title")
    p.add_argument("--realtime", action="store_true", help="play the bag over DDS to a real silk_vo_node")
    p.add_argument("--rate", type=float, default=1.0, help="--realtime playback speed (x real time)")
    p.add_argument("--node-timeout", type=float, default=60.0, help="--realtime: seconds to wait for the node")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    try:
        if args.bag_command == "convert":
            print(json.dumps(_convert(args), indent=2))
        else:
            metrics = evaluate(_evaluation(args), _realtime(args))
            headline = metrics.get("headline")
            print(f"report: {args.out}")
            if headline:
                print(f"{headline['name']}: {headline['rmse_m']:.4f} m")
    except (BagError, ConfigError) as err:
        print(f"silk-vo bag {args.bag_command}: error: {err}", file=sys.stderr)
        return 2
    return 0


def _convert(args: argparse.Namespace) -> dict:
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
    path = None if args.format == "synthetic" and args.path in ("-", "") else args.path
    reader_options = parse_overrides(args.option, "--option")
    return convert_dataset(args.format, path, args.out, options, args.start, args.stride, args.max_frames,
                           reader_options)


def _evaluation(args: argparse.Namespace) -> BagEvaluation:
    topics = EvalTopics(
        args.image_topic, args.camera_info_topic, args.depth_topic, args.gt_topic, args.max_dt, args.gt_child_frame
    )
    return BagEvaluation(
        bag=args.bag,
        out=args.out,
        topics=topics,
        params=args.params,
        overrides=parse_overrides(args.set),
        camera_yaml=args.camera_yaml,
        gt_file=args.gt,
        title=args.title,
        progress=not args.no_progress,
        start=args.start,
        max_frames=args.max_frames,
    )


def _realtime(args: argparse.Namespace) -> RealtimeReplay | None:
    if not args.realtime:
        return None
    from silk_ros.ros.bag_player import replay_realtime  # rclpy only here

    return RealtimeReplay(replay_realtime, args.rate, args.node_timeout)
