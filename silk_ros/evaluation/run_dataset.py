"""Replay a dataset through the odometry and write a report (trajectory TUM, report.json / report.md with ATE,
RPE, lost frames, FPS per stage, trajectory.png): what ``silk-vo run-dataset``, the demo and ``bench vo`` run.

The odometry (torch) is imported only when a run starts, so a dataset that cannot be read fails in a second."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from silk_ros.datasets import DatasetError, Sequence, open_sequence
from silk_ros.geometry.camera import CameraError
from silk_ros.geometry.trajectory import TrajectoryError
from silk_ros.odometry.config import ConfigError, OdometryConfig, uses_depth
from silk_ros.settings import DEFAULT_ODOMETRY_YAML

__all__ = ["run_dataset", "open_dataset", "load_config", "summary_line", "DEFAULT_CONFIG", "DATASET_ERRORS"]

DEFAULT_CONFIG = DEFAULT_ODOMETRY_YAML
#: What a dataset that cannot be read raises (each message names the file and what is wrong with it).
DATASET_ERRORS = (DatasetError, TrajectoryError, CameraError)


def load_config(path: str | Path | None, **overrides: Any) -> OdometryConfig:
    """The YAML defaults (when the file exists) with ``overrides`` applied; ``None`` values are ignored."""
    config = OdometryConfig.from_yaml(path) if path and Path(path).is_file() else OdometryConfig()
    changes = {k: v for k, v in overrides.items() if v is not None}
    return config.replace(**changes) if changes else config


def _sequence_options(fmt: str, mode: str, max_frames: int | None, stride: int, start: int,
                      depth_scale: bool) -> dict[str, Any]:
    options: dict[str, Any] = {"stride": stride, "start": start}
    if max_frames is not None:
        options["max_frames"] = max_frames
    if mode == "mono" and not depth_scale:  # do not read depth images that would be ignored
        if fmt in ("7scenes", "tum", "tartanair"):
            options["depth"] = False
        elif fmt == "synthetic":
            options["with_depth"] = False
    return options


def open_dataset(fmt: str, path: str | Path | None, mode: str = "auto", max_frames: int | None = None,
                 stride: int = 1, start: int = 0, sequence_options: dict[str, Any] | None = None,
                 depth_scale: bool = False) -> Sequence:
    """The sequence with run-dataset's options (depth not read in mono mode, unless ``depth_scale`` scales the
    monocular run with it) and the reader's own options."""
    options = _sequence_options(fmt, mode, max_frames, stride, start, depth_scale)
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
    odometry: Any = None,
) -> dict[str, Any]:
    """Open the sequence (unless ``sequence`` is given, already opened), run the odometry, write the report into
    ``out`` (if given); return the metrics with the run statistics under ``"run"``.

    ``odometry``: another odometry with ``VisualOdometry``'s replay interface (a benchmark peer), run instead of
    the one ``config`` describes, so it is judged by the same replay, report and alignment code."""
    from silk_ros.evaluation.report import FrameEvents, compute_metrics, write_report
    from silk_ros.odometry import VisualOdometry, run_sequence

    config = config or load_config(DEFAULT_CONFIG)
    if sequence is None:
        sequence = open_dataset(fmt, path, mode, max_frames, stride, start, sequence_options, config.depth_scale)
    if mode == "rgbd" and not sequence.has_depth:
        raise ConfigError(f"mode rgbd: {sequence.name} has no depth images")
    if config.depth_scale and not sequence.has_depth:
        raise ConfigError(f"depth_scale: {sequence.name} has no depth images to scale the monocular run with")
    mode = "rgbd" if uses_depth(mode, sequence.has_depth, config.depth_scale) else "mono"
    vo = FrameEvents(odometry if odometry is not None else VisualOdometry(config.replace(mode=mode)))
    trajectory, stats = run_sequence(vo, sequence, progress=progress)
    stats.setdefault("metric", mode == "rgbd")  # silk_ros' odometry says its units; a peer is metric on depth
    stats.update(mode=mode, stride=stride, **vo.stats())
    title = title or f"{sequence.name} ({mode}, {stats['features']})"
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
    if headline:
        error = f"{headline['name']} {headline['rmse_m']:.4f} m"
    elif metrics.get("errors"):  # ground truth there, but no ATE (e.g. every frame lost: nothing to align)
        error = "no ATE: " + "; ".join(sorted(set(metrics["errors"].values())))
    else:
        error = "no ground truth"
    ratio = (metrics.get("summary") or {}).get("scale_ratio")
    units = f"units: {run.get('scale', 'unknown')}" + (f", estimate/true scale {ratio:.3f}" if ratio else "")
    fps = run["timings"].get("total", {}).get("fps", float("nan"))
    return (
        f"{run['sequence']} [{run['mode']}, {run['features']}]: {error}, {run['frames']} frames, "
        f"{run['lost_frames']} lost, {run['keyframes']} keyframes, path {metrics['estimate_path_length']:.3f}, "
        f"{fps:.1f} frames/s ({run['backend']}); {units}"
    )
