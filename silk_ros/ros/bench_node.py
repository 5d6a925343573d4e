"""``silk-vo bench node``: silk_vo_node end to end over DDS, as a user runs it.

The node runs as its console script (a separate process, ``--params-file config/silk_vo.yaml``); this
process feeds it real 7-Scenes frames (ping-pong through the excerpt, so motion stays continuous) with a
best-effort publisher like a camera driver, and records its outputs.  Per input size it measures

* end-to-end latency: image publish -> ``~/odometry`` receive, one frame in flight at a time;
* sustained rate and drops: frames fed at ``--rate`` Hz for ``--sustain`` seconds; processed rate, frames
  the node dropped as stale, frames lost in transport (sent but never received);
* memory: the node's RSS after 1 minute of input vs after ``--duration`` seconds (soak at the first size).

It lives under ``silk_ros/ros`` (the only part that imports rclpy); ``silk-vo bench`` finds it by module path.
rclpy is imported when the benchmark runs, after ``ROS_DOMAIN_ID`` is chosen.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from silk_ros.datasets.paths import REPO_ROOT, shared_data_root

STAMP0 = 1_700_000_000.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default="240x320,480x640", help="input sizes HxW, comma separated")
    parser.add_argument("--backend", default="onnxruntime", help="SiLK backend of the node (fastest on CPU)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--weights", default="auto", help="'auto': shipped silk-mu if present, else untrained")
    parser.add_argument("--rate", type=float, default=30.0, help="feed rate (Hz) for the sustained test")
    parser.add_argument("--sustain", type=float, default=20.0, help="seconds of sustained feeding per size")
    parser.add_argument("--latency-frames", type=int, default=30, help="frames timed one at a time per size")
    parser.add_argument("--duration", type=float, default=600.0, help="soak seconds for the RSS growth figure")
    parser.add_argument("--frames", type=int, default=60, help="7-Scenes frames loaded (played back and forth)")
    parser.add_argument("--threads", type=int, default=0, help="node inference threads (0: library default)")
    parser.add_argument(
        "--reliable",
        action="store_true",
        help="reliable QoS on both sides (default: best effort, like camera drivers; large best-effort frames are "
        "lost over UDP loopback when the receiver is busy)",
    )


def _weights(choice: str) -> tuple[list[str], str]:
    if choice != "auto":
        return ["-p", f"weights:={choice}"], choice
    from silk_ros.weights import WeightsError, shipped_weights

    try:
        shipped_weights("silk-mu")
        return ["-p", "weights:=silk-mu"], "silk-mu"
    except WeightsError:
        return ["-p", "weights:=untrained", "-p", "allow_untrained:=true"], "untrained (no trained weights)"


def _load_frames(count: int) -> tuple[list[np.ndarray], object]:
    from silk_ros.datasets import open_sequence

    root = shared_data_root() / "sequences" / "7scenes_redkitchen"
    sequence = open_sequence("7scenes", root, max_frames=count)
    images = [frame.image for frame in tqdm(sequence, desc="loading 7-Scenes frames", leave=False)]
    return images, sequence.camera


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


class _NodeProcess:
    def __init__(self, arguments: list[str], env: dict[str, str]):
        script = Path(sys.executable).parent / "silk_vo_node"
        command = [str(script), "--ros-args", "--params-file", str(REPO_ROOT / "config" / "silk_vo.yaml"), *arguments]
        self.log = open(os.devnull, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


def _ping_pong(n: int):
    """0, 1, ..., n-1, n-2, ..., 1, 0, 1, ...: endless continuous motion from a short excerpt."""
    while True:
        yield from range(n)
        yield from range(n - 2, 0, -1)


def _bench_size(harness, images, camera, height, width, args, soak: bool, pid: int) -> dict:
    from silk_ros.ros import conversions as conv

    scaled_camera = camera.scaled(width, height)
    scaled = [cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA) for image in images]
    order = _ping_pong(len(scaled))
    clock = {"t": 0.0}

    def publish() -> tuple[object, float]:
        clock["t"] += 1.0 / args.rate
        stamp = conv.seconds_to_stamp(STAMP0 + clock["t"])
        harness.publish_camera_info(scaled_camera, stamp)
        sent = time.monotonic()
        harness.publish_frame(scaled[next(order)], stamp)
        return stamp, sent

    def key(stamp) -> tuple[int, int]:
        return stamp.sec, stamp.nanosec

    # Warm-up: the first frames pay for lazy initialisation (ONNX session, caches).
    for _ in range(5):
        stamp, _ = publish()
        harness.wait_for(lambda s=stamp: any(key(m.header.stamp) == key(s) for m in harness.messages("odometry")), 30)

    # 1. Latency, one frame in flight.
    latencies = []
    for _ in tqdm(range(args.latency_frames), desc=f"{height}x{width} latency", leave=False):
        harness.clear()
        stamp, sent = publish()
        if harness.wait_for(lambda: harness.count("odometry") > 0, 5.0):
            received, message = harness.timed("odometry")[0]
            if key(message.header.stamp) == key(stamp):
                latencies.append((received - sent) * 1e3)
        time.sleep(0.02)

    # 2. Sustained feeding at args.rate for args.sustain seconds; drops from the node's own counters.
    time.sleep(1.5)
    baseline = _counters(harness)
    start = time.monotonic()
    rss: dict[str, float] = {}
    sent = _feed(publish, args.rate, args.sustain, f"{height}x{width} at {args.rate:g} Hz")
    sustained = _sustained(harness, baseline, sent, time.monotonic() - start)

    # 3. Soak (first size only): keep feeding until args.duration, RSS sampled after 1 minute and at the end.
    if soak:
        reference_s = min(60.0, args.duration / 2.0)
        rss_pid = pid

        def sample(elapsed: float) -> None:
            if "reference" not in rss and elapsed >= reference_s:
                rss["reference"] = _rss_mb(rss_pid)
                rss["reference_s"] = elapsed
            if int(elapsed * args.rate) % 300 == 0:
                harness.clear()  # keep this recorder's memory flat during long soaks

        sample(time.monotonic() - start)
        _feed(publish, args.rate, max(0.0, args.duration - (time.monotonic() - start)), "soak", start, sample)
        rss["end"] = _rss_mb(pid)
        rss["end_s"] = time.monotonic() - start
    result = {
        "input_size": f"{height}x{width}",
        "latency_ms_median": float(np.median(latencies)) if latencies else float("nan"),
        "latency_ms_p90": float(np.percentile(latencies, 90)) if latencies else float("nan"),
        "latency_frames": len(latencies),
        **sustained,
    }
    if soak:
        result["soak_seconds"] = round(rss["end_s"], 1)
        result["rss_reference_s"] = round(rss.get("reference_s", float("nan")), 1)
        result["rss_mb_reference"] = rss.get("reference", float("nan"))
        result["rss_mb_end"] = rss["end"]
        result["rss_growth_pct"] = 100.0 * (rss["end"] - result["rss_mb_reference"]) / result["rss_mb_reference"]
    return result


def _feed(publish, rate: float, seconds: float, label: str, start: float | None = None, on_tick=None) -> int:
    """Publish at ``rate`` Hz for ``seconds`` (tick-scheduled, no drift); returns the number of frames sent."""
    begin = time.monotonic()
    origin = begin if start is None else start
    sent = 0
    next_tick = begin
    with tqdm(total=int(seconds), desc=label, leave=False) as progress:
        while time.monotonic() - begin < seconds:
            publish()
            sent += 1
            if on_tick is not None:
                on_tick(time.monotonic() - origin)
            progress.update(int(time.monotonic() - begin) - progress.n)
            next_tick += 1.0 / rate
            time.sleep(max(0.0, next_tick - time.monotonic()))
    return sent


def _counters(harness) -> dict[str, int]:
    time.sleep(1.2)  # one diagnostics period: the figures include the frames just handled
    diagnostics = harness.latest_diagnostics()
    return {k: int(diagnostics.get(k, 0)) for k in ("frames_received", "frames_processed", "frames_dropped")}


def _sustained(harness, baseline: dict[str, int], sent: int, elapsed: float) -> dict:
    after = _counters(harness)
    received = after["frames_received"] - baseline["frames_received"]
    processed = after["frames_processed"] - baseline["frames_processed"]
    dropped = after["frames_dropped"] - baseline["frames_dropped"]
    diagnostics = harness.latest_diagnostics()
    return {
        "fed_hz": sent / elapsed,
        "processed_hz": processed / elapsed,
        "node_processing_ms": float(diagnostics.get("processing_ms_mean", "nan")),
        "frames_sent": sent,
        "frames_received": received,
        "frames_processed": processed,
        "frames_dropped_stale": dropped,
        "frames_lost_in_transport": max(0, sent - received),
        "dropped_pct": 100.0 * (sent - processed) / max(sent, 1),
    }


def run(args: argparse.Namespace) -> tuple[dict, str]:
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(101, 200)))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    import rclpy

    from silk_ros.ros.harness import NodeHarness, spin_in_background

    sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
    weight_args, weights_label = _weights(args.weights)
    images, camera = _load_frames(args.frames)
    rclpy.init()
    load_before = os.getloadavg()[0]
    results = {
        "qos": "reliable" if args.reliable else "best effort",
        "backend": args.backend,
        "device": args.device,
        "weights": weights_label,
        "rate_hz": args.rate,
        "cpu_cores": os.cpu_count(),
        "sizes": [],
    }
    try:
        for index, (height, width) in enumerate(sizes):
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            node = _NodeProcess(
                weight_args
                + ["-p", f"backend:={args.backend}", "-p", f"device:={args.device}", "-p", f"threads:={args.threads}"]
                + ["-p", f"input_width:={width}", "-p", f"input_height:={height}", "-p", "max_pixels:=50000000"]
                + ["-p", f"qos_reliability:={'reliable' if args.reliable else 'best_effort'}"],
                env,
            )
            harness = NodeHarness(debug_image=False, reliable=args.reliable)
            executor, thread = spin_in_background(harness)
            try:
                if not harness.wait_for(
                    lambda n=node, h=harness: n.process.poll() is not None or h.wait_for_subscribers(0.1), 120
                ):
                    raise RuntimeError("silk_vo_node did not subscribe within 120 s")
                if node.process.poll() is not None:
                    raise RuntimeError(f"silk_vo_node exited with {node.process.returncode}")
                time.sleep(1.0)
                figures = _bench_size(
                    harness, images, camera, height, width, args, soak=index == 0, pid=node.process.pid
                )
                figures["backend_reported"] = harness.latest_diagnostics().get("backend", "?")
                results["sizes"].append(figures)
            finally:
                executor.shutdown()
                thread.join(5.0)
                harness.destroy_node()
                node.stop()
    finally:
        rclpy.try_shutdown()
    results["load_average_1min"] = {"start": round(load_before, 2), "end": round(os.getloadavg()[0], 2)}
    return results, _markdown(results, args)


def _markdown(results: dict, args: argparse.Namespace) -> str:
    lines = [
        f"silk_vo_node (console script, separate process) fed 7-Scenes frames over Fast DDS "
        f"(default transport), {results['qos']} QoS (history depth 5), on "
        f"{results['cpu_cores']} CPU cores (shared machine: figures vary with load). Backend {results['backend']} "
        f"({results['device']}), weights {results['weights']}, working resolution = input size. "
        f"Machine load (1-min load average) {results['load_average_1min']['start']:.1f} at the start, "
        f"{results['load_average_1min']['end']:.1f} at the end.",
        "",
        "Latency: one frame in flight, image publish -> `~/odometry` receive (frames lost by best effort are not "
        "timed). Sustained: fed at the rate shown; *dropped stale* = frames the node skipped because a newer one "
        "arrived while it was busy (by design: latency stays one frame); *lost in transport* = frames "
        "that never reached the node's callback (best effort: lost over UDP loopback on a loaded machine; reliable: "
        "overwritten in the depth-5 DDS history while the node was busy).",
        "",
        "| input | backend | latency median / p90 (ms) | timed | node processing (ms) | fed (Hz) | processed (Hz) "
        "| dropped stale | lost in transport | dropped % |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in results["sizes"]:
        lines.append(
            f"| {s['input_size']} | {s['backend_reported']} | {s['latency_ms_median']:.0f} / {s['latency_ms_p90']:.0f} "
            f"| {s['latency_frames']} of {args.latency_frames} | {s['node_processing_ms']:.0f} "
            f"| {s['fed_hz']:.1f} | {s['processed_hz']:.1f} "
            f"| {s['frames_dropped_stale']} of {s['frames_sent']} | {s['frames_lost_in_transport']} "
            f"| {s['dropped_pct']:.0f} |"
        )
    soak = results["sizes"][0] if results["sizes"] else {}
    if "rss_growth_pct" in soak:
        verdict = "meets" if soak["rss_growth_pct"] < 5.0 else "misses"
        lines += [
            "",
            f"Memory ({soak['input_size']}, fed at {args.rate:g} Hz for {soak['soak_seconds']:.0f} s): node RSS "
            f"{soak['rss_mb_reference']:.0f} MB after {soak['rss_reference_s']:.0f} s of input, "
            f"{soak['rss_mb_end']:.0f} MB at the end: "
            f"{soak['rss_growth_pct']:+.1f} % ({verdict} the < 5 % target).",
        ]
        if soak["soak_seconds"] < 600:
            lines.append(
                f"This soak ran {soak['soak_seconds']:.0f} s, not the 10 minutes (vs 1 minute) of the target; "
                "`--duration 600` runs the full one."
            )
    return "\n".join(lines)
