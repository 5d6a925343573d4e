"""Replay a dataset sequence through the odometry, frame by frame, and summarise the run."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
from tqdm import tqdm

from .types import TrackingState
from .vo import VisualOdometry

__all__ = ["run_sequence", "summarise_timings"]


def summarise_timings(timings: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean / median / p95 per stage (ms) and the frame rate the mean total allows."""
    stats: dict[str, dict[str, float]] = {}
    if not timings:
        return stats
    for stage in timings[0]:
        values = np.array([t[stage] for t in timings])
        stats[stage] = {
            "mean_ms": float(values.mean()),
            "median_ms": float(np.median(values)),
            "p95_ms": float(np.percentile(values, 95)),
            "fps": float(1e3 / max(values.mean(), 1e-9)),
        }
    return stats


def run_sequence(vo: VisualOdometry, sequence, progress: bool = True, keep_results: bool = False):
    """Run every frame of ``sequence`` in order (deterministic: the odometry is reset first).

    Returns ``(trajectory, stats)``; ``stats`` holds frame counts per tracking state, lost frames, keyframes,
    mean inliers, per-stage timings (ms, fps), the units (``metric``, ``scale``: the odometry's scale state at the
    end, ``metric_from_frame``: the first frame in metres) and, with ``keep_results``, the list of ``FrameResult``.
    The first frame's timings are left out of the rates (it warms up the backend).
    """
    vo.reset()
    states: Counter[str] = Counter()
    timings: list[dict[str, float]] = []
    inliers: list[int] = []
    results = []
    metric_from = None  # the first frame whose pose is in metres (monocular with a scale source: once measured)
    start = time.perf_counter()
    bar = tqdm(total=len(sequence), desc=f"VO {getattr(sequence, 'name', '')}", unit="frame", disable=not progress)
    for frame in sequence:
        depth = frame.depth if getattr(frame, "depth", None) is not None else None
        result = vo.process(frame.image, frame.timestamp, frame.camera, depth)
        states[result.state.value] += 1
        if frame.index > 0:
            timings.append(result.timings_ms)
        inliers.append(result.inliers)
        scale = getattr(vo, "scale_state", None)
        if metric_from is None and scale is not None and scale.metric:
            metric_from = int(frame.index)
        if keep_results:
            results.append(result)
        bar.update(1)
        bar.set_postfix(state=result.state.value, inliers=result.inliers)
    bar.close()
    wall = time.perf_counter() - start
    stats = {
        "sequence": getattr(sequence, "name", ""),
        "frames": len(sequence),
        "states": {s.value: states.get(s.value, 0) for s in TrackingState},
        "lost_frames": states.get(TrackingState.LOST.value, 0),
        "keyframes": vo.keyframe_count,
        "mean_inliers": float(np.mean(inliers)) if inliers else 0.0,
        "timings": summarise_timings(timings),
        "wall_s": wall,
        "fps_wall": len(sequence) / max(wall, 1e-9),
        "features": vo.config.extractor.features,
        "backend": getattr(vo.extractor, "backend", vo.config.extractor.features),
        "working_size": list(vo.working_size) if vo.working_size else None,
    }
    for event in ("relocalisations", "map_restarts"):  # silk_ros' odometry (an external peer has no such count)
        if hasattr(vo, event):
            stats[event] = getattr(vo, event)
    scale = getattr(vo, "scale_state", None)
    if scale is not None:  # the unit of the trajectory: the report's SE(3) or Sim(3) headline follows it
        stats.update(metric=scale.metric, scale=scale.describe(), scale_factor=scale.scale,
                     metric_from_frame=metric_from)
    if keep_results:
        stats["results"] = results
    return vo.trajectory, stats
