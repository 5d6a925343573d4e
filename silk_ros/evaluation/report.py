"""Run reports: ``write_report`` turns an estimated trajectory (+ ground truth + run statistics) into
``trajectory.tum``, ``report.json``, ``report.md`` and ``trajectory.png``, and returns the metrics dict.

Headline error: monocular estimates are only defined up to scale, so their headline is the Sim(3)-aligned ATE;
metric runs (RGB-D, or anything with ``run_stats["metric"] = True``) are judged with SE(3) alignment, which also
penalises scale drift. Both are always reported when the ground truth allows.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from silk_ros.evaluation.metrics import MetricsError, align_trajectory, ate, rpe
from silk_ros.geometry.trajectory import Trajectory, associate

#: RPE distance segments are chosen from these (metres): the largest that fits 4 times into the path.
SEGMENT_CHOICES_M = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)


def stage_means_ms(run_stats: dict) -> dict[str, float]:
    """Mean milliseconds per stage from ``run_stats["timings_ms"]`` (stage -> mean, list of values, or a summary
    dict with ``mean_ms``) or ``run_stats["timings"]`` (the odometry replay's summary)."""
    source = run_stats.get("timings_ms", run_stats.get("timings")) or {}
    means = {}
    for stage, value in source.items():
        if isinstance(value, dict):
            value = value.get("mean_ms")
        elif isinstance(value, (list, tuple, np.ndarray)):
            value = float(np.mean(value)) if len(value) else None
        if value is not None and np.isfinite(value):
            means[stage] = float(value)
    return means


def _segment_length(path_m: float) -> float | None:
    fitting = [d for d in SEGMENT_CHOICES_M if d * 4 <= path_m]
    return fitting[-1] if fitting else None


def _public(stats: dict) -> dict:
    return {k: v for k, v in stats.items() if not isinstance(v, np.ndarray)}


def compute_metrics(estimate: Trajectory, ground_truth: Trajectory | None, run_stats: dict, max_dt: float) -> dict:
    """Every number of the report (JSON-ready), without writing anything."""
    metric = bool(run_stats.get("metric", False))
    out: dict[str, Any] = {
        "metric_scale": metric,
        "frames": int(run_stats.get("frames", len(estimate))),
        "estimated_poses": len(estimate),
        "lost_frames": int(run_stats.get("lost_frames", 0)),
        "states": run_stats.get("states", {}),
        "keyframes": run_stats.get("keyframes"),
        "timings_ms": stage_means_ms(run_stats),
        "estimate_path_length": estimate.path_length(),
    }
    out["fps"] = {stage: 1e3 / ms for stage, ms in out["timings_ms"].items() if ms > 0}
    if ground_truth is None:
        out["headline"] = None
        return out
    est_a, gt_a = associate(estimate, ground_truth, max_dt)
    out.update(ground_truth_poses=len(ground_truth), associated_poses=len(est_a), gt_path_length=gt_a.path_length())
    out["ate"], out["rpe"], out["errors"] = {}, {}, {}
    for method in ("sim3", "se3"):
        try:
            out["ate"][method] = _public(ate(est_a, gt_a, align=method, max_dt=max_dt))
        except MetricsError as err:
            out["errors"][f"ate_{method}"] = str(err)
    headline = "se3" if metric else "sim3"
    scale = 1.0 if metric else out["ate"].get("sim3", {}).get("scale", 1.0)
    segment = _segment_length(gt_a.path_length())
    for key, delta, unit in (("per_frame", 1, "frames"), (f"per_{segment}m", segment, "meters")):
        if delta is None:
            out["errors"]["rpe_meters"] = f"ground-truth path {gt_a.path_length():.3f} m is too short for segments"
            continue
        try:
            out["rpe"][key] = rpe(est_a, gt_a, delta=delta, unit=unit, max_dt=max_dt, scale=scale)
        except MetricsError as err:
            out["errors"][f"rpe_{key}"] = str(err)
    chosen = out["ate"].get(headline)
    out["headline"] = None if chosen is None else {"name": f"ATE {headline.upper()} RMSE", "align": headline,
                                                  "rmse_m": chosen["rmse"]}
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _markdown(title: str, metrics: dict, run_stats: dict) -> str:
    lines = [f"# {title}", ""]
    if metrics.get("headline"):
        h = metrics["headline"]
        lines += [f"**{h['name']}: {h['rmse_m']:.4f} m** "
                  f"({'metric run' if metrics['metric_scale'] else 'monocular: scale is aligned'})", ""]
    keyframes = metrics.get("keyframes")
    lines += ["| frames | estimated poses | associated with gt | lost frames | keyframes |", "|---|---|---|---|---|",
              f"| {metrics['frames']} | {metrics['estimated_poses']} | {metrics.get('associated_poses', '-')} | "
              f"{metrics['lost_frames']} | {'-' if keyframes is None else keyframes} |", ""]
    if metrics.get("ate"):
        lines += ["## Absolute trajectory error (m)", "",
                  "| alignment | RMSE | mean | median | max | rot RMSE (deg) | scale |",
                  "|---|---|---|---|---|---|---|"]
        for method, a in metrics["ate"].items():
            lines.append(f"| {method.upper()} | {a['rmse']:.4f} | {a['mean']:.4f} | {a['median']:.4f} | "
                         f"{a['max']:.4f} | {a['rot_rmse_deg']:.3f} | {a['scale']:.4f} |")
        lines.append("")
    if metrics.get("rpe"):
        lines += ["## Relative pose error", "", "| segment | pairs | trans RMSE (m) | rot RMSE (deg) | drift |",
                  "|---|---|---|---|---|"]
        for r in metrics["rpe"].values():
            drift = f"{r['trans_percent']:.2f} %, {r['rot_deg_per_m']:.3f} deg/m" if r["unit"] == "meters" else "-"
            lines.append(f"| {r['delta']} {r['unit']} | {r['n']} | {r['trans_rmse']:.4f} | {r['rot_rmse_deg']:.3f} | "
                         f"{drift} |")
        if not metrics["metric_scale"]:
            lines.append(f"\nMonocular: estimate translations scaled by the Sim(3) factor "
                         f"{next(iter(metrics['rpe'].values()))['scale']:.4f} before RPE.")
        lines.append("")
    if metrics.get("errors"):
        lines += ["## Not computed", ""] + [f"- {k}: {v}" for k, v in metrics["errors"].items()] + [""]
    if metrics["timings_ms"]:
        lines += ["## Timing (mean per frame)", "", "| stage | ms | FPS |", "|---|---|---|"]
        lines += [f"| {s} | {ms:.2f} | {metrics['fps'].get(s, float('nan')):.1f} |"
                  for s, ms in metrics["timings_ms"].items()]
        lines.append("")
    context = {k: run_stats[k] for k in ("sequence", "features", "backend", "wall_s", "fps_wall") if k in run_stats}
    if context:
        lines += ["## Run", ""] + [f"- {k}: {v:.3f}" if isinstance(v, float) else f"- {k}: {v}"
                                   for k, v in context.items()] + [""]
    lines += ["![trajectory](trajectory.png)", ""]
    return "\n".join(lines)


def _top_view_axes(positions: np.ndarray) -> tuple[int, int]:
    """The two world axes with the largest extent: the 'top view' whatever the dataset's up axis is."""
    extent = np.ptp(positions, axis=0) if len(positions) else np.ones(3)
    a, b = sorted(np.argsort(extent)[-2:])
    return int(a), int(b)


def _break_at_gaps(t: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NaN between samples further apart than 1.5 median steps, so frames without a pose are not bridged."""
    if len(t) < 3:
        return t, values
    gaps = np.flatnonzero(np.diff(t) > 1.5 * np.median(np.diff(t)))
    return np.insert(t, gaps + 1, np.nan), np.insert(values.astype(float), gaps + 1, np.nan)


def plot_trajectory(path: Path, title: str, estimate: Trajectory, ground_truth: Trajectory | None, metrics: dict,
                    max_dt: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, err) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [1.1, 1]})
    names = "xyz"
    headline = metrics.get("headline")
    if ground_truth is not None and headline is not None:
        est_a, gt_a = associate(estimate, ground_truth, max_dt)
        aligned, _, _ = align_trajectory(est_a, gt_a, headline["align"])
        a, b = _top_view_axes(gt_a.positions)
        top.plot(gt_a.positions[:, a], gt_a.positions[:, b], "k-", lw=2, label="ground truth")
        top.plot(aligned.positions[:, a], aligned.positions[:, b], "-", color="tab:red", lw=1.5,
                 label=f"estimate ({headline['align'].upper()}-aligned)")
        top.plot(*gt_a.positions[0, [a, b]], "go", ms=8, label="start")
        errors = np.linalg.norm(aligned.positions - gt_a.positions, axis=1)
        t = gt_a.timestamps - gt_a.timestamps[0]
        err.plot(*_break_at_gaps(t, errors), color="tab:red", lw=1.5, marker="." if len(t) < 200 else None)
        err.axhline(headline["rmse_m"], color="grey", ls="--", label=f"RMSE {headline['rmse_m']:.3f} m")
        err.set_xlabel("time since first associated pose (s)")
        err.set_ylabel("translation error (m)")
        err.set_title(f"ATE per pose after {headline['align'].upper()} alignment")
        err.legend(loc="upper left")
        err.set_ylim(bottom=0)
    else:
        a, b = _top_view_axes(estimate.positions)
        top.plot(estimate.positions[:, a], estimate.positions[:, b], "-", color="tab:red", label="estimate")
        reason = "no ground truth" if ground_truth is None else "; ".join(metrics.get("errors", {}).values())
        err.text(0.5, 0.5, f"no error plot:\n{reason}", ha="center", va="center", wrap=True, transform=err.transAxes)
        err.set_axis_off()
    top.set_xlabel(f"{names[a]} (m)")
    top.set_ylabel(f"{names[b]} (m)")
    top.set_aspect("equal", adjustable="datalim")
    top.grid(True, alpha=0.3)
    top.legend(loc="best", fontsize=9)
    top.set_title(f"top view ({names[a]}-{names[b]} plane of the ground-truth world)")
    err.grid(True, alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out_dir: str | Path, estimate: Trajectory, ground_truth: Trajectory | None, run_stats: dict,
                 title: str, max_dt: float = 0.02) -> dict:
    """Write trajectory.tum, report.json, report.md and trajectory.png into ``out_dir``; return the metrics.

    ``run_stats``: the odometry replay's stats (frames, lost_frames, states, keyframes, timings or timings_ms,
    ...) plus ``metric: bool`` (True for metric-scale runs such as RGB-D).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    estimate.write_tum(out / "trajectory.tum")
    metrics = {"title": title, **compute_metrics(estimate, ground_truth, run_stats, max_dt)}
    if ground_truth is not None:
        ground_truth.write_tum(out / "ground_truth.tum")
    metrics = _jsonable(metrics)
    (out / "report.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (out / "report.md").write_text(_markdown(title, metrics, run_stats))
    plot_trajectory(out / "trajectory.png", title, estimate, ground_truth, metrics, max_dt)
    return metrics
