"""Running figures of the VO node and their /diagnostics message.

Why a module of its own: the processing thread updates the figures, the executor's timer reads
them, so they live behind one lock; and every bad input is logged once per kind but counted
always, so a user sees both the first clear message and how often it keeps happening.

Every frame received ends as processed (odometry published) or skipped with one reason
(``frames_without_odometry.<reason>``), or still waits (``frames_pending``: queued, being processed, or
waiting for its depth image): once the input stops,
received = processed + without odometry + pending.
"""

from __future__ import annotations

import collections
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

__all__ = ["NodeStats", "QUIET_REASONS", "explain_missing_input"]

#: reasons a frame gave no odometry that are a live stream's normal life (the newest frame wins) or are reported
#: by a warning of their own (waiting for camera_info, depth not pairing): they alone do not make the status WARN
QUIET_REASONS = ("dropped_stale", "no_camera_info", "no_depth_pair", "odometry_reset")


class NodeStats:
    """Counters, a rate / latency window and per-kind problem counts, thread-safe."""

    def __init__(self, window: int = 30) -> None:
        self._lock = threading.Lock()
        self._processed_at: collections.deque = collections.deque(maxlen=window)
        self._received_at: collections.deque = collections.deque(maxlen=window)
        self._latency_ms: collections.deque = collections.deque(maxlen=window)
        self._processing_ms: collections.deque = collections.deque(maxlen=window)
        self.received = 0
        self.processed = 0
        self.skipped: collections.Counter = collections.Counter()  # frames without odometry, by reason
        self.problems: collections.Counter = collections.Counter()
        self.last_problem = ""
        self.last: dict[str, object] = {}

    def frame_received(self) -> None:
        with self._lock:
            self.received += 1
            self._received_at.append(time.monotonic())

    @property
    def dropped(self) -> int:
        """Frames dropped stale in live mode (a newer frame replaced them before processing)."""
        return self.skipped["dropped_stale"]

    def frame_skipped(self, reason: str, count: int = 1) -> None:
        """``count`` frames gave no odometry, for ``reason``."""
        if count > 0:
            with self._lock:
                self.skipped[reason] += count

    def problem(self, kind: str, message: str) -> bool:
        """Count a problem; True the first time this kind is seen (the caller logs it then)."""
        with self._lock:
            first = kind not in self.problems
            self.problems[kind] += 1
            self.last_problem = f"{kind}: {message}"
            return first

    def frame_processed(self, latency_ms: float, processing_ms: float, **figures: object) -> None:
        with self._lock:
            self.processed += 1
            self._processed_at.append(time.monotonic())
            self._latency_ms.append(latency_ms)
            self._processing_ms.append(processing_ms)
            self.last = dict(figures)

    @staticmethod
    def _rate(stamps: collections.deque) -> float:
        if len(stamps) < 2 or stamps[-1] <= stamps[0]:
            return 0.0
        return (len(stamps) - 1) / (stamps[-1] - stamps[0])

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            latency = sorted(self._latency_ms)
            return {
                "processing_rate_hz": self._rate(self._processed_at),
                "input_rate_hz": self._rate(self._received_at),
                "latency_ms_mean": sum(latency) / len(latency) if latency else 0.0,
                "latency_ms_max": latency[-1] if latency else 0.0,
                "processing_ms_mean": (
                    sum(self._processing_ms) / len(self._processing_ms) if self._processing_ms else 0.0
                ),
                "frames_received": self.received,
                "frames_processed": self.processed,
                "frames_dropped": self.skipped["dropped_stale"],
                "frames_without_odometry": sum(self.skipped.values()),
                "skipped": dict(self.skipped),
                "problems": dict(self.problems),
                "last_problem": self.last_problem,
                **self.last,
            }

    def to_message(
        self, name: str, hardware_id: str, stamp, extra: dict[str, object], warnings: list[str] = ()
    ) -> DiagnosticArray:
        """One DiagnosticStatus: ERROR when lost, WARN when degraded/waiting/bad input/frames without odometry
        for a reason other than the quiet ones/any of ``warnings``, else OK."""
        figures = {**self.snapshot(), **extra}
        state = str(figures.get("tracking_state", "WAITING"))
        problems = figures.pop("problems")
        skipped = figures.pop("skipped")
        if state == "LOST":
            level, summary = DiagnosticStatus.ERROR, "tracking lost"
        elif not figures.get("camera_info_received", True):
            level, summary = DiagnosticStatus.WARN, "waiting for camera_info: frames are held back"
        elif state in ("DEGRADED", "INITIALIZING", "WAITING"):
            level, summary = DiagnosticStatus.WARN, f"tracking {state.lower()}"
        else:
            level, summary = DiagnosticStatus.OK, "tracking"
        if problems:
            summary += f"; bad input seen ({', '.join(f'{k} x{v}' for k, v in sorted(problems.items()))})"
            level = max(level, DiagnosticStatus.WARN)
        if skipped:
            reasons = ", ".join(f"{k} x{v}" for k, v in sorted(skipped.items()))
            summary += f"; {sum(skipped.values())} of {figures['frames_received']} frames gave no odometry ({reasons})"
            if set(skipped) - set(QUIET_REASONS):
                level = max(level, DiagnosticStatus.WARN)
        for warning in warnings:
            summary += f"; {warning}"
            level = max(level, DiagnosticStatus.WARN)
        values = [KeyValue(key=k, value=_format(v)) for k, v in figures.items()]
        values += [KeyValue(key=f"bad_input.{k}", value=str(v)) for k, v in sorted(problems.items())]
        values += [KeyValue(key=f"frames_without_odometry.{k}", value=str(v)) for k, v in sorted(skipped.items())]
        status = DiagnosticStatus(level=level, name=name, message=summary, hardware_id=hardware_id, values=values)
        array = DiagnosticArray(status=[status])
        if stamp is not None:
            array.header.stamp = stamp
        return array


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def explain_missing_input(
    topic: str,
    waited: float,
    publishers: list[tuple[str, bool]],
    reliable_requested: bool,
    other_topics: list[str],
    ever_received: bool,
    what: str = "image",
) -> str:
    """Why no ``what`` (an image, a camera_info) has come for ``waited`` seconds, from what the ROS graph shows: the
    usual causes of a silent VO node are a topic nobody publishes (a missing remap or namespace), a best-effort
    camera driver and a reliable subscription (QoS mismatch: DDS never connects them), or a driver that is up but
    not streaming.

    ``publishers``: (node name, offers reliable) of each publisher of ``topic``; ``other_topics``: topics of the
    same message type that exist."""
    head = f"no {what} on {topic} for {waited:.1f} s"
    if ever_received:
        head += f" ({what} messages came before: the camera stopped?)"
    if not publishers:
        if other_topics:
            shown = ", ".join(sorted(other_topics)[:5]) + (", ..." if len(other_topics) > 5 else "")
            return (f"{head}: nothing publishes it; topics of its type: {shown} (remap '{what}', or set "
                    "camera_namespace / the topic arguments of the launch file)")
        return (f"{head}: nothing publishes it and no topic of its type exists (camera driver running? the same "
                "ROS_DOMAIN_ID?)")
    best_effort = [name for name, reliable in publishers if not reliable]
    if reliable_requested and len(best_effort) == len(publishers):
        return (f"{head}: {len(publishers)} publisher(s) ({', '.join(best_effort)}) offer best_effort but "
                "qos_reliability is reliable, so DDS never connects them: set qos_reliability best_effort")
    return f"{head}: {len(publishers)} publisher(s) ({', '.join(name for name, _ in publishers)}) but no message came"
