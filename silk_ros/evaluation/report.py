"""Run reports: ``write_report`` turns an estimated trajectory (+ ground truth + run statistics) into
``trajectory.tum``, ``report.json``, ``report.md`` and ``trajectory.png``, and returns the metrics dict.

Headline error: monocular estimates are only defined up to scale, so their headline is the Sim(3)-aligned ATE;
metric runs (RGB-D, or anything with ``run_stats["metric"] = True``) are judged with SE(3) alignment, which also
penalises scale drift. Both are always reported when the ground truth allows.

Units come first: a monocular run without a scale source is in arbitrary units, and the report says so
(``summary.units``, from ``run_stats["scale"]``) with how large the estimate is against the ground truth
(``summary.scale_ratio``: estimate / true size, the inverse of the Sim(3) alignment's scale).

What went wrong comes next: the report's first lines (``report.md`` under the headline, ``report.json``'s
``summary``) give the lost frames, the frames dropped in real-time mode and the large rotation errors, and the
plots mark lost frames, keyframes and large rotation errors where they happened. A rotation error is "large" when
the per-frame RPE rotation (the error of the rotation between consecutive frames) exceeds
``LARGE_ROTATION_ERROR_DEG``: a good estimate is off by tenths of a degree between frames at 10-30 Hz, so a few
degrees is a wrong pose, not noise.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from silk_ros.evaluation.metrics import MetricsError, align_trajectory, ate, rpe
from silk_ros.geometry.trajectory import Trajectory, associate, associate_indices

#: RPE distance segments are chosen from these (metres): the largest that fits 4 times into the path.
SEGMENT_CHOICES_M = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
#: Per-frame RPE rotation error (degrees) above which a frame is reported as a large rotation error.
LARGE_ROTATION_ERROR_DEG = 2.0
#: How many large-rotation timestamps the summary lists (worst first).
LISTED_EVENTS = 10


class FrameEvents:
    """A ``VisualOdometry`` that also notes which frames were LOST and which became keyframes (their
    timestamps, for the report's markers), without keeping the per-frame results (features) in memory.
    Everything else is forwarded, so it replaces the odometry in ``run_sequence``."""

    def __init__(self, vo: Any):
        self.vo = vo
        self.lost: list[float] = []
        self.keyframes: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.vo, name)

    def reset(self) -> None:
        self.lost.clear()
        self.keyframes.clear()
        self.vo.reset()

    def process(self, image: np.ndarray, timestamp: float, *args: Any, **kwargs: Any) -> Any:
        result = self.vo.process(image, timestamp, *args, **kwargs)
        if getattr(result.state, "value", result.state) == "LOST":
            self.lost.append(float(result.timestamp))
        if result.is_keyframe:
            self.keyframes.append(float(result.timestamp))
        return result

    def stats(self) -> dict[str, list[float]]:
        """The ``run_stats`` keys the report reads: ``lost_stamps`` and ``keyframe_stamps``."""
        return {"lost_stamps": list(self.lost), "keyframe_stamps": list(self.keyframes)}


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


def frame_events(run_stats: dict) -> dict[str, list[float]]:
    """Timestamps of the lost frames and keyframes: ``run_stats``' ``lost_stamps``/``keyframe_stamps`` (see
    :class:`FrameEvents`), else derived from ``run_stats["results"]`` (``run_sequence(keep_results=True)``)."""
    events = {"lost": run_stats.get("lost_stamps"), "keyframes": run_stats.get("keyframe_stamps")}
    results = run_stats.get("results") or []
    if events["lost"] is None and results:
        events["lost"] = [r.timestamp for r in results if getattr(r.state, "value", r.state) == "LOST"]
    if events["keyframes"] is None and results:
        events["keyframes"] = [r.timestamp for r in results if r.is_keyframe]
    return {key: [float(t) for t in stamps or ()] for key, stamps in events.items()}


def large_rotation_errors(per_frame: dict | None, threshold_deg: float) -> dict:
    """The per-frame RPE pairs whose rotation error exceeds ``threshold_deg``: count, max, the worst ones' timestamps
    (``at``, ``at_deg``) and every one's (``stamps``, which the caller moves to the frame events)."""
    out: dict[str, Any] = {"threshold_deg": threshold_deg, "count": None, "pairs": 0, "max_deg": None, "at": [],
                           "at_deg": [], "stamps": []}
    if per_frame is None:
        return out
    errors, stamps = np.asarray(per_frame["rot_errors_deg"]), np.asarray(per_frame["timestamps"])
    large = np.flatnonzero(errors > threshold_deg)
    worst = large[np.argsort(-errors[large], kind="stable")][:LISTED_EVENTS]
    out.update(count=len(large), pairs=len(errors), max_deg=float(errors.max()), at=stamps[worst].tolist(),
               at_deg=errors[worst].tolist(), stamps=stamps[large].tolist())
    return out


def _summary(out: dict, run_stats: dict, large_rotations: dict) -> dict:
    """The report's first lines: headline, lost frames, real-time drops, large rotation errors."""
    headline = out.get("headline")
    sim3_scale = out.get("ate", {}).get("sim3", {}).get("scale")
    return {
        "headline": None if headline is None else f"{headline['name']} {headline['rmse_m']:.4f} m",
        "units": out["scale"],
        "scale_ratio": 1.0 / sim3_scale if sim3_scale else None,
        "metric_from_frame": run_stats.get("metric_from_frame"),
        "frames": out["frames"],
        "lost_frames": out["lost_frames"],
        "real_time": "dropped_frames" in run_stats,
        "dropped_frames": int(run_stats.get("dropped_frames", 0)),
        "keyframes": out["keyframes"],
        "large_rotation_errors": large_rotations,
    }


def compute_metrics(estimate: Trajectory, ground_truth: Trajectory | None, run_stats: dict, max_dt: float,
                    large_rotation_deg: float = LARGE_ROTATION_ERROR_DEG) -> dict:
    """Every number of the report (JSON-ready), without writing anything; ``summary`` holds the first lines."""
    metric = bool(run_stats.get("metric", False))
    out: dict[str, Any] = {
        "metric_scale": metric,
        "scale": run_stats.get("scale") or ("metric" if metric else "arbitrary (monocular)"),
        "frames": int(run_stats.get("frames", len(estimate))),
        "estimated_poses": len(estimate),
        "lost_frames": int(run_stats.get("lost_frames", 0)),
        "states": run_stats.get("states", {}),
        "keyframes": run_stats.get("keyframes"),
        "timings_ms": stage_means_ms(run_stats),
        "estimate_path_length": estimate.path_length(),
        "frame_events": frame_events(run_stats),
    }
    out["fps"] = {stage: 1e3 / ms for stage, ms in out["timings_ms"].items() if ms > 0}
    per_frame_rpe = None
    if ground_truth is not None:
        per_frame_rpe = _ground_truth_metrics(out, estimate, ground_truth, metric, max_dt)
    else:
        out["headline"] = None
    large = large_rotation_errors(per_frame_rpe, large_rotation_deg)
    out["frame_events"]["large_rotation"] = large.pop("stamps")
    return {"summary": _summary(out, run_stats, large), **out}


def _ground_truth_metrics(out: dict, estimate: Trajectory, ground_truth: Trajectory, metric: bool,
                          max_dt: float) -> dict | None:
    """ATE, RPE and the headline into ``out``; returns the per-frame RPE with its per-pair arrays (or None)."""
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
    per_frame = None
    for key, delta, unit in (("per_frame", 1, "frames"), (f"per_{segment}m", segment, "meters")):
        if delta is None:
            out["errors"]["rpe_meters"] = f"ground-truth path {gt_a.path_length():.3f} m is too short for segments"
            continue
        try:
            result = rpe(est_a, gt_a, delta=delta, unit=unit, max_dt=max_dt, scale=scale)
        except MetricsError as err:
            out["errors"][f"rpe_{key}"] = str(err)
            continue
        out["rpe"][key] = _public(result)
        per_frame = result if key == "per_frame" else per_frame
    chosen = out["ate"].get(headline)
    out["headline"] = None if chosen is None else {"name": f"ATE {headline.upper()} RMSE", "align": headline,
                                                  "rmse_m": chosen["rmse"]}
    return per_frame


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


def summary_lines(summary: dict) -> list[str]:
    """The Markdown bullets under the headline: lost, dropped in real time, large rotation errors, keyframes."""
    frames = summary["frames"]
    if summary["real_time"]:
        dropped = f"{summary['dropped_frames']} of {frames} frames got no odometry from the node in real time"
    else:
        dropped = "none (every frame was processed: not a real-time run)"
    keyframes = summary["keyframes"]
    return [
        f"- **Lost:** {summary['lost_frames']} of {frames} frames (LOST state: pose held, RGB-D coasting; large "
        "covariance)",
        f"- **Dropped in real time:** {dropped}",
        f"- **Large rotation errors:** {_rotation_line(summary['large_rotation_errors'])}",
        f"- **Units:** {_units_line(summary)}",
        f"- Keyframes: {'-' if keyframes is None else keyframes}",
    ]


def _units_line(summary: dict) -> str:
    units, ratio = summary.get("units") or "unknown", summary.get("scale_ratio")
    text = f"{'metres' if units.startswith('metric') else 'ARBITRARY, not metres'}: {units}"
    start = summary.get("metric_from_frame")
    if start:  # a monocular scale source: the translation was held until it was measured
        text += f" from frame {start} on (the translation was held before)"
    if ratio is not None:
        text += f"; the estimate is {ratio:.3f} x the true size (1 / Sim(3) scale)"
    return text


def _rotation_line(large: dict) -> str:
    threshold = f"{large['threshold_deg']:g} deg"
    if large["count"] is None:
        return f"not computed (no per-frame RPE: no ground truth or too few poses); threshold {threshold}"
    text = (f"{large['count']} of {large['pairs']} frame-to-frame rotations off by more than {threshold} "
            f"(per-frame RPE; max {large['max_deg']:.2f} deg)")
    if large["count"]:
        worst = ", ".join(f"{t:.3f} s ({d:.1f} deg)" for t, d in zip(large["at"], large["at_deg"], strict=True))
        text += f"; worst at t = {worst}"
    return text


def _markdown(title: str, metrics: dict, run_stats: dict) -> str:
    lines = [f"# {title}", ""]
    if metrics.get("headline"):
        h = metrics["headline"]
        ratio = metrics["summary"].get("scale_ratio")
        how = f"metric run: {metrics['scale']}" if metrics["metric_scale"] else (
            "arbitrary units, so the scale is aligned" + (f": the estimate is {ratio:.3f} x the true size" if ratio
                                                          else ""))
        lines += [f"**{h['name']}: {h['rmse_m']:.4f} m** ({how})", ""]
    else:
        why = "see Not computed" if "ground_truth_poses" in metrics else "no ground truth"
        lines += [f"**No error metrics ({why}).**", ""]
    lines += summary_lines(metrics["summary"]) + [""]
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


#: How each frame event is drawn on both plots: (label, matplotlib style).
MARKERS: dict[str, tuple[str, dict[str, Any]]] = {
    "keyframes": ("keyframe", {"marker": "^", "color": "tab:blue", "ms": 5, "ls": "none", "alpha": 0.8}),
    "lost": ("lost frame{where}", {"marker": "x", "color": "black", "ms": 8, "mew": 2, "ls": "none"}),
    "large_rotation": ("rotation error > {threshold} deg", {"marker": "o", "mfc": "none", "color": "tab:orange",
                                                          "ms": 9, "mew": 1.5, "ls": "none"}),
}


def _event_indices(stamps: np.ndarray, events: list[float]) -> np.ndarray:
    """Indices into ``stamps`` of the event timestamps (exact frame stamps; events without a pose are skipped)."""
    if not len(events) or not len(stamps):
        return np.zeros(0, dtype=np.int64)
    return associate_indices(np.sort(np.asarray(events, dtype=np.float64)), stamps, 1e-6)[1]


def _plot_events(ax: Any, xy: np.ndarray, indices: dict[str, np.ndarray], threshold: float,
                 lost_xy: np.ndarray | None = None) -> dict[str, int]:
    """Markers for every event kind at ``xy[indices]`` (lost frames at ``lost_xy`` when given: a lost frame's
    estimate is a held pose, where the camera really was says more); returns how many of each were drawn."""
    counts = {}
    for kind, (label, style) in MARKERS.items():
        idx = indices.get(kind, np.zeros(0, dtype=np.int64))
        at = lost_xy if kind == "lost" and lost_xy is not None else xy
        counts[kind] = len(idx)
        if len(idx):
            where = " (true position)" if at is lost_xy else ""
            text = label.format(threshold=f"{threshold:g}", where=where)
            ax.plot(at[idx, 0], at[idx, 1], label=f"{text} ({len(idx)})",
                    gid=f"events:{kind}", **style)
    return counts


def draw_report_figure(title: str, estimate: Trajectory, ground_truth: Trajectory | None, metrics: dict,
                       max_dt: float) -> tuple[Any, dict[str, int]]:
    """The report's figure (top view, ATE over time) with lost frames, keyframes and large rotation errors
    marked on both; returns (figure, number of markers of each kind on the top view)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, err) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [1.1, 1]})
    names = "xyz"
    headline = metrics.get("headline")
    events = metrics.get("frame_events", {})
    threshold = metrics.get("summary", {}).get("large_rotation_errors", {}).get("threshold_deg", 0.0)
    if ground_truth is not None and headline is not None:
        est_a, gt_a = associate(estimate, ground_truth, max_dt)
        aligned, _, _ = align_trajectory(est_a, gt_a, headline["align"])
        indices = {kind: _event_indices(est_a.timestamps, stamps) for kind, stamps in events.items()}
        a, b = _top_view_axes(gt_a.positions)
        top.plot(gt_a.positions[:, a], gt_a.positions[:, b], "k-", lw=2, label="ground truth")
        top.plot(aligned.positions[:, a], aligned.positions[:, b], "-", color="tab:red", lw=1.5,
                 label=f"estimate ({headline['align'].upper()}-aligned)")
        top.plot(*gt_a.positions[0, [a, b]], "go", ms=8, label="start")
        counts = _plot_events(top, aligned.positions[:, [a, b]], indices, threshold, gt_a.positions[:, [a, b]])
        errors = np.linalg.norm(aligned.positions - gt_a.positions, axis=1)
        t = gt_a.timestamps - gt_a.timestamps[0]
        err.plot(*_break_at_gaps(t, errors), color="tab:red", lw=1.5, marker="." if len(t) < 200 else None,
                 label="translation error")
        _plot_events(err, np.column_stack([t, errors]), indices, threshold)
        err.axhline(headline["rmse_m"], color="grey", ls="--", label=f"RMSE {headline['rmse_m']:.3f} m")
        err.set_xlabel("time since first associated pose (s)")
        err.set_ylabel("translation error (m)")
        err.set_title(f"ATE per pose after {headline['align'].upper()} alignment")
        err.legend(loc="best", fontsize=8)
        err.set_ylim(bottom=0)
    else:
        a, b = _top_view_axes(estimate.positions)
        top.plot(estimate.positions[:, a], estimate.positions[:, b], "-", color="tab:red", label="estimate")
        indices = {kind: _event_indices(estimate.timestamps, stamps) for kind, stamps in events.items()}
        counts = _plot_events(top, estimate.positions[:, [a, b]], indices, threshold)
        reason = "no ground truth" if ground_truth is None else "; ".join(metrics.get("errors", {}).values())
        err.text(0.5, 0.5, f"no error plot:\n{reason}", ha="center", va="center", wrap=True, transform=err.transAxes)
        err.set_axis_off()
    top.set_xlabel(f"{names[a]} (m)")
    top.set_ylabel(f"{names[b]} (m)")
    top.set_aspect("equal", adjustable="datalim")
    top.grid(True, alpha=0.3)
    top.legend(loc="best", fontsize=8)
    top.set_title(f"top view ({names[a]}-{names[b]} plane of the ground-truth world)")
    err.grid(True, alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig, counts


def plot_trajectory(path: Path, title: str, estimate: Trajectory, ground_truth: Trajectory | None, metrics: dict,
                    max_dt: float) -> dict[str, int]:
    """Save :func:`draw_report_figure` as a PNG; returns the marker counts."""
    import matplotlib.pyplot as plt

    fig, counts = draw_report_figure(title, estimate, ground_truth, metrics, max_dt)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return counts


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
    metrics["plot_markers"] = plot_trajectory(out / "trajectory.png", title, estimate, ground_truth, metrics, max_dt)
    (out / "report.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (out / "report.md").write_text(_markdown(title, metrics, run_stats))
    return metrics
