"""Dataset -> rosbag2 conversion and odometry evaluation on a bag (``silk-vo bag convert`` / ``bag eval``).

:func:`convert_dataset` writes a dataset sequence as a real rosbag2 (mcap or sqlite3 .db3) with images (raw or
compressed), CameraInfo, depth and the ground truth (PoseStamped + /tf), stamped with the dataset's times.

:func:`evaluate` replays every image, in bag order, through ``VisualOdometry.process`` after decoding it with the
node's own decoder (deterministic: two runs give the same trajectory), then writes the usual report (ATE/RPE, lost
frames, per-stage latency, plots, JSON, Markdown).  Given a :class:`RealtimeReplay` (the command line passes
``silk_ros.ros.bag_player.replay_realtime``) the bag is instead played over DDS to a real silk_vo_node process,
whose odometry is recorded into a new bag and evaluated the same way: what the robot would have done, dropped
frames included.

A depth topic means RGB-D: with ``topics.depth`` the mode is ``rgbd`` unless the overrides set ``mode``
themselves (``mode=mono``: an explicit override, monocular tracking with the depth ignored, which the report
says) or ask for ``depth_scale`` (monocular tracking, the depth scales it to metres).  ``start``/``max_frames``
select part of the images.

Every check that can fail (topics, types, calibration, truncation, ground-truth overlap) runs before the odometry;
the report is written to a temporary folder and moved into place only when complete.  Errors are BagError.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from silk_ros.bagio.errors import BagError
from silk_ros.bagio.reader import EvalTopics
from silk_ros.bagio.writer import ConvertOptions
from silk_ros.geometry.trajectory import Trajectory, associate, read_tum
from silk_ros.odometry.config import uses_depth
from silk_ros.schema import ConfigError
from silk_ros.settings import DEFAULT_NODE_PARAMS, Settings, load

#: What a --realtime replay leaves in its temporary folder (stats key -> name in the report folder).
REALTIME_FILES = {
    "recorded_bag": "recorded_odometry",
    "node_log": "silk_vo_node.log",
    "node_params": "silk_vo_params.yaml",
}

__all__ = ["BagEvaluation", "RealtimeReplay", "convert_dataset", "evaluate", "replay_deterministic", "check_overlap"]


@dataclass(frozen=True)
class BagEvaluation:
    """What to evaluate and where the report goes."""

    bag: Path  # rosbag2 directory, a .mcap/.db3 file, or a ROS 1 .bag
    out: Path  # report folder
    topics: EvalTopics
    #: the node's ROS params file or an odometry YAML; None: config/silk_vo.yaml when present, else the defaults
    params: Path | None = None
    #: odometry settings (and, for the real-time node, its ROS wiring) overriding ``params``
    overrides: dict[str, Any] = field(default_factory=dict)
    camera_yaml: Path | None = None  # calibration for bags without CameraInfo
    gt_file: Path | None = None  # ground truth as a TUM file, instead of ``topics.ground_truth``
    title: str | None = None
    progress: bool = True
    start: int = 0  # first image (in log order) evaluated
    max_frames: int | None = None  # images evaluated from ``start`` on (None: to the end)


@dataclass(frozen=True)
class RealtimeReplay:
    """Play the bag to a live silk_vo_node instead: ``play(source, params, overrides, rate=, node_timeout=,
    progress=) -> (trajectory, stats)`` (``silk_ros.ros.bag_player.replay_realtime``: the caller passes it, so
    this module stays ROS-free)."""

    play: Callable[..., tuple[Trajectory, dict]]
    rate: float = 1.0
    node_timeout: float = 60.0


def convert_dataset(
    fmt: str,
    path: str | Path | None,
    out: Path,
    options: ConvertOptions,
    start: int = 0,
    stride: int = 1,
    max_frames: int | None = None,
    reader_options: dict[str, Any] | None = None,
) -> dict:
    """Open the dataset sequence (``path`` None: the synthetic one) and write it as a bag; returns its summary."""
    from silk_ros.bagio.writer import convert_sequence
    from silk_ros.datasets import DatasetError, open_sequence

    try:
        sequence = open_sequence(
            fmt, path, start=start, stride=stride, max_frames=max_frames, **(reader_options or {})
        )
    except (DatasetError, ValueError, OSError, TypeError) as err:
        raise BagError(f"cannot open the {fmt} dataset at {path}: {err}") from None
    return convert_sequence(sequence, out, options)


def evaluate(request: BagEvaluation, realtime: RealtimeReplay | None = None) -> dict:
    """Validate everything, replay the bag (deterministic, or ``realtime``), write the report atomically."""
    from silk_ros.bagio.camera_yaml import read_camera_yaml
    from silk_ros.bagio.reader import BagSource

    out = Path(request.out)
    topics = request.topics
    max_dt = topics.depth_max_dt
    _check_out_dir(out)
    if realtime is not None and not realtime.rate > 0:
        raise BagError(f"--rate must be positive, got {realtime.rate}")
    params = request.params or (DEFAULT_NODE_PARAMS if DEFAULT_NODE_PARAMS.is_file() else None)
    overrides, depth_use = depth_mode(params, request.overrides, topics.depth)
    config = _load_settings(params, overrides).odometry
    camera = read_camera_yaml(request.camera_yaml) if request.camera_yaml else None
    gt_file = _read_gt_file(request.gt_file) if request.gt_file else None
    gt_name = topics.ground_truth or (str(request.gt_file) if request.gt_file else None)
    with BagSource(request.bag, topics, camera=camera, progress=request.progress, start=request.start,
                   max_frames=request.max_frames) as source:
        ground_truth = source.ground_truth if gt_file is None else gt_file
        if ground_truth is not None:
            check_overlap(ground_truth, source.image_stamps, gt_name, topics.image, max_dt)
        sequence = source.sequence
        bag_summary = source.summary()
        if realtime is not None:
            estimate, stats = realtime.play(
                source,
                params,
                overrides,
                rate=realtime.rate,
                node_timeout=realtime.node_timeout,
                progress=request.progress,
            )
        else:
            estimate, stats = replay_deterministic(config, sequence, request.progress)
    stats = {**stats, **_units(stats, config, sequence.has_depth), "sequence": bag_summary["bag"]}
    if ground_truth is not None and len(estimate):
        _check_associated(estimate, ground_truth, gt_name, max_dt)
    rate = realtime.rate if realtime is not None else None
    mode = f"real time x{rate:g} through silk_vo_node" if realtime is not None else "deterministic replay"
    title = request.title or f"silk-vo bag eval: {Path(request.bag).name} ({mode})"
    extra = {
        "mode": "realtime" if realtime is not None else "deterministic",
        "rate": rate,
        "params": str(params) if params else None,
        "odometry_mode": config.mode,
        "depth": depth_use,
        "bag": bag_summary,
        "ground_truth_source": gt_name,
    }
    realtime_keys = ("dropped_frames", "received_odometry", "published_images", "latency_ms", "node_diagnostics")
    for key in (*realtime_keys, *REALTIME_FILES, "work_dir"):
        if key in stats:
            extra[key] = stats[key]
    return _write_report_atomically(out, estimate, ground_truth, stats, title, max_dt, extra)


def depth_mode(params: Path | None, overrides: dict[str, Any], depth_topic: str | None) -> tuple[dict[str, Any], str]:
    """The overrides with the mode a depth topic implies, and what the depth is used for (for the report).

    A depth topic means RGB-D (``mode: rgbd``), unless ``overrides`` set the mode (an explicit override: ``mono``
    ignores the depth) or ``depth_scale`` is on (monocular tracking scaled by the depth).  Without a depth topic,
    ``mode: rgbd`` or ``depth_scale`` are errors: there is no depth to use."""
    settings = _load_settings(params, overrides).odometry
    if depth_topic is None:
        if settings.mode == "rgbd" or (settings.depth_scale and "depth_scale" in overrides):
            needs = "mode rgbd" if settings.mode == "rgbd" else "depth_scale"
            raise BagError(f"{needs} needs depth: pass --depth-topic")
        return dict(overrides), "none (no --depth-topic)"
    if "mode" not in overrides:
        overrides = {**overrides, "mode": "mono" if settings.depth_scale else "rgbd"}
    settings = _load_settings(params, overrides).odometry
    if uses_depth(settings.mode, True, settings.depth_scale):
        return overrides, f"RGB-D tracking (mode {settings.mode})"
    if settings.depth_scale:
        return overrides, "metric scale of the monocular tracking (depth_scale)"
    return overrides, "ignored: mode mono set explicitly (the odometry is monocular, in arbitrary units)"


def _units(stats: dict, config, has_depth: bool) -> dict[str, Any]:
    """Whether the trajectory is metric and why (``scale``): from the replay itself, else (a real-time run) from
    the node's diagnostics, else from the settings."""
    if "metric" in stats and "scale" in stats:
        return {"metric": stats["metric"], "scale": stats["scale"]}
    reported = (stats.get("node_diagnostics") or {}).get("scale")
    if reported:
        return {"metric": reported.startswith("metric"), "scale": reported}
    metric = uses_depth(config.mode, has_depth, config.depth_scale)
    return {"metric": metric, "scale": "metric (depth)" if metric else "arbitrary (monocular)"}


def _load_settings(params: Path | None, overrides: dict[str, Any]) -> Settings:
    if params is not None and not Path(params).is_file():
        raise BagError(f"odometry settings file not found: {params}")
    try:
        return load(params, overrides)
    except ConfigError as err:
        raise BagError(f"odometry settings{f' in {params}' if params else ''}: {err}") from None


def replay_deterministic(config, sequence, progress: bool = True):
    """Every frame through VisualOdometry.process in bag order (OpenCV's RNG seeded: identical reruns)."""
    import cv2

    from silk_ros.odometry.replay import run_sequence
    from silk_ros.odometry.vo import VisualOdometry
    from silk_ros.weights import WeightsError

    try:
        vo = VisualOdometry(config)
    except (WeightsError, ValueError, OSError) as err:
        front = config.extractor
        raise BagError(f"cannot build the odometry ({front.features}, weights {front.weights}): {err}") from None
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
    est_a, _ = associate(estimate, ground_truth, max_dt)
    if len(est_a) < 2:
        raise BagError(
            f"only {len(est_a)} estimated poses lie within {max_dt} s of a ground-truth pose from {gt_name}; "
            "nothing to evaluate (raise --max-dt if the ground truth is sparser)"
        )


def _read_gt_file(path: Path):
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
        for key, name in REALTIME_FILES.items():
            if extra.get(key):  # --realtime: the node's recorded output, log and params travel with the report
                shutil.move(extra[key], staging / name)
                extra[key] = str(out / name)
        work_dir = extra.pop("work_dir", None)
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
        if work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)  # the replay's temporary folder, emptied above
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return metrics
