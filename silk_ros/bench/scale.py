"""``silk-vo bench scale``: the metric error of monocular odometry with and without a scale source.

On the shared sequences with metric ground truth: KITTI 07 frames 0-159 (a car; ``camera_height`` 1.65 m, the
KITTI camera's height above the road by the KITTI setup) and 7-Scenes redkitchen seq-01 (handheld; its depth
images as ``depth_scale``, tracking monocular), and the synthetic room (camera ~1.4 m above the floor, 1.25-1.55 m
with its vertical wave: ``camera_height`` 1.4).  Each runs monocular without a scale source, then with one.
Figures: the SE(3)-aligned ATE (no scale fitted: what a robot using the odometry as metres gets), the
Sim(3)-aligned ATE (the shape alone), and the scale ratio estimate / true (1 / the Sim(3) alignment's scale: 1 is
metric).  Nothing is tuned on these sequences: the scale estimators' constants are set in
``silk_ros.odometry.metric_scale`` from reasoning and the synthetic room.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from silk_ros.bench.vo import SEQUENCES, _fmt
from silk_ros.datasets.paths import shared_data_root
from silk_ros.evaluation.run_dataset import DEFAULT_CONFIG, load_config, run_dataset

__all__ = ["add_arguments", "run", "RUNS"]

KITTI_CAMERA_HEIGHT_M = 1.65
SYNTHETIC_CAMERA_HEIGHT_M = 1.4
SYNTHETIC_FRAMES = 50

#: run name -> (sequence: a bench vo sequence or "synthetic", scale-source settings, what the source is)
RUNS: dict[str, tuple[str, dict[str, Any], str]] = {
    "kitti07-mono": ("kitti07-mono", {}, "none"),
    "kitti07-mono-height": ("kitti07-mono", {"camera_height": KITTI_CAMERA_HEIGHT_M},
                            f"camera_height {KITTI_CAMERA_HEIGHT_M} m"),
    "7scenes01-mono": ("7scenes01-mono", {}, "none"),
    "7scenes01-mono-depth": ("7scenes01-mono", {"depth_scale": True}, "depth_scale (the 7-Scenes depth)"),
    "synthetic-mono": ("synthetic", {}, "none"),
    "synthetic-mono-height": ("synthetic", {"camera_height": SYNTHETIC_CAMERA_HEIGHT_M},
                              f"camera_height {SYNTHETIC_CAMERA_HEIGHT_M} m"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=None, help="shared data folder (default ../shared/data)")
    parser.add_argument("--runs", default=",".join(RUNS), help="comma-separated subset of the runs")
    parser.add_argument("--features", default="silk", help="front end (silk, orb, sift)")
    parser.add_argument("--max-frames", type=int, default=None, help="cap every sequence (quick checks)")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="odometry YAML")
    parser.add_argument("--out", default="runs/bench/scale", help="per-run reports go under this folder")


def _run_one(name: str, data: Path, args: argparse.Namespace) -> dict[str, Any]:
    sequence, settings, source = RUNS[name]
    config = load_config(args.config, features=args.features, **settings)
    if sequence == "synthetic":
        fmt, path, options = "synthetic", None, {"n_frames": SYNTHETIC_FRAMES}
    else:
        fmt, folder, _, _ = SEQUENCES[sequence]
        path, options = data / "sequences" / folder, None
        if not path.exists():
            raise SystemExit(f"benchmark sequence {sequence}: {path} not found")
    metrics = run_dataset(fmt, path, Path(args.out) / name, "mono", config, max_frames=args.max_frames,
                          progress=True, title=f"{name} ({args.features}, scale source: {source})",
                          sequence_options=options)
    run_stats = metrics["run"]
    ate = metrics.get("ate", {})
    return {
        "sequence": sequence,
        "scale_source": source,
        "frames": run_stats["frames"],
        "lost_frames": run_stats["lost_frames"],
        "keyframes": run_stats["keyframes"],
        "units": run_stats.get("scale"),
        "metric_from_frame": run_stats.get("metric_from_frame"),
        "metric": run_stats.get("metric"),
        "scale_ratio": metrics["summary"].get("scale_ratio"),
        "ate_se3_rmse_m": ate.get("se3", {}).get("rmse"),
        "ate_sim3_rmse_m": ate.get("sim3", {}).get("rmse"),
        "path_length": metrics["estimate_path_length"],
        "gt_path_length_m": metrics.get("gt_path_length"),
        "fps": run_stats["timings"].get("total", {}).get("fps"),
    }


def run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    data = Path(args.data) if args.data else shared_data_root()
    names = [n.strip() for n in args.runs.split(",") if n.strip()]
    unknown = sorted(set(names) - set(RUNS))
    if unknown:
        raise SystemExit(f"unknown runs {unknown}; known: {sorted(RUNS)}")
    load = os.getloadavg()[0]
    results: dict[str, Any] = {"runs": {name: _run_one(name, data, args) for name in names},
                               "load_average_start": load, "load_average_end": os.getloadavg()[0]}
    return results, _markdown(results, args)


def _markdown(results: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"Monocular odometry ({args.features}, default config/odometry.yaml) with and without a scale source. "
        "*Scale ratio* = estimated / true size (1 / the Sim(3) alignment's scale; 1 is metric). *SE(3) ATE*: "
        "aligned without a scale, i.e. the error of using the odometry as metres; *Sim(3) ATE*: the shape alone. "
        "KITTI 07: camera_height 1.65 m (the KITTI setup); 7-Scenes: its depth images as depth_scale (tracking "
        "stays monocular); synthetic room: camera_height 1.4 m (true height 1.25-1.55 m). With a scale source the "
        "translation is held until the first measurement (*metres from frame*), then the path since the map started "
        "is put into metres. The scale estimators' constants were not tuned on these sequences. Machine load (1-min "
        "load average) "
        f"{results['load_average_start']:.1f} at the start, {results['load_average_end']:.1f} at the end.",
        "",
        "| run | scale source | frames | lost | units at the end | metres from frame | scale ratio | SE(3) ATE (m) | "
        "Sim(3) ATE (m) | path (units) | gt path (m) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in results["runs"].items():
        lines.append(
            f"| {name} | {row['scale_source']} | {row['frames']} | {row['lost_frames']} | {row['units']} | "
            f"{'-' if row['metric_from_frame'] is None else row['metric_from_frame']} | "
            f"{_fmt(row['scale_ratio'], '.3f')} | {_fmt(row['ate_se3_rmse_m'], '.3f')} | "
            f"{_fmt(row['ate_sim3_rmse_m'], '.3f')} | {row['path_length']:.2f} | "
            f"{_fmt(row['gt_path_length_m'], '.2f')} |"
        )
    if args.max_frames:
        lines += ["", f"Quick run: every sequence capped at {args.max_frames} frames."]
    return "\n".join(lines)
