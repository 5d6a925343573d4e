"""``silk-vo bench vo``: the odometry on every real sequence, SiLK and ORB (and optionally SIFT) in one run.

Sequences (shared data): KITTI 07 frames 0-159 (mono), 7-Scenes redkitchen seq-01 (mono and RGB-D), TUM fr2/desk
mini (mono) and the EuRoC V1_01 head, where the vehicle is at rest (mono: the estimated path length must stay
below 3 cm; ground truth 1.7 cm).  One set of defaults (config/odometry.yaml) for all; nothing is tuned per
sequence.  Figures: ATE RMSE (Sim(3)-aligned for monocular, SE(3) for RGB-D), RPE per frame, lost frames,
keyframes, path length, per-stage milliseconds and frames/s.  Targets checked: SiLK ATE <= 0.7 x ORB ATE on
every moving sequence, EuRoC path < 3 cm, monocular SiLK >= 8 frames/s at 240x320 (the 7-Scenes mono run).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from silk_ros.bench.peers import PeerOptions, PeerUnavailable, is_peer, make_peer, skip_reason
from silk_ros.datasets.paths import shared_data_root
from silk_ros.evaluation.run_dataset import DEFAULT_CONFIG, load_config, open_dataset, run_dataset

__all__ = ["add_arguments", "run", "SEQUENCES"]

#: name -> (format, folder under sequences/, mode, moving)
SEQUENCES: dict[str, tuple[str, str, str, bool]] = {
    "kitti07-mono": ("kitti", "kitti_odometry", "mono", True),
    "7scenes01-mono": ("7scenes", "7scenes_redkitchen", "mono", True),
    "7scenes01-rgbd": ("7scenes", "7scenes_redkitchen", "rgbd", True),
    "tum-desk-mono": ("tum", "tum_rgbd/rgbd_dataset_freiburg2_desk_mini", "mono", True),
    "euroc-v101-rest-mono": ("euroc", "euroc/V1_01_easy_head", "mono", False),
}
#: frames per second of each dataset's sequences (a peer that counts intervals in frames is told it)
FRAME_RATES_HZ = {"kitti": 10.0, "7scenes": 30.0, "tum": 30.0, "euroc": 20.0}
ATE_RATIO_TARGET = 0.7
REST_PATH_TARGET_M = 0.03
FPS_TARGET = 8.0
FPS_RUN = "7scenes01-mono"
MIN_FRAMES_FOR_STARTS = 100
PERTURB_START_STEP = 5
SPREAD_TARGET = 1.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=None, help="shared data folder (default ../shared/data)")
    parser.add_argument(
        "--features",
        default="silk,orb",
        help="comma-separated front ends: silk, orb, sift, or FEATURES+MATCHER (e.g. silk+attention: SiLK with the "
        "attention matcher instead of the config's matcher), or an external peer: open3d-rgbd (Open3D RGB-D "
        "odometry, RGB-D runs only), orbslam3 (ORB-SLAM3 through pyorbslam3); peers need requirements-bench.txt",
    )
    parser.add_argument(
        "--orb-vocabulary",
        default="runs/bench/orb_vocabulary.txt",
        help="DBoW2 text vocabulary for orbslam3 (make bench trains it on ../shared/data/train photos with "
        "python -m training.orb_vocabulary; never on benchmark sequences)",
    )
    parser.add_argument("--sequences", default=",".join(SEQUENCES), help="comma-separated subset of the runs")
    parser.add_argument("--kitti-stride", type=int, default=1, help="use every n-th KITTI frame")
    parser.add_argument("--max-frames", type=int, default=None, help="cap every sequence (quick checks)")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="odometry YAML")
    parser.add_argument("--out", default="runs/bench/vo", help="per-run reports go under this folder")
    parser.add_argument(
        "--starts",
        default="",
        help="comma-separated start frames (e.g. 10,20): moving sequences of at least "
        f"{MIN_FRAMES_FOR_STARTS} frames are also run from each, and the median ATE over all starts is reported "
        "(monocular runs are chaotic: one tracking loss changes the scale of everything after it; ORB-SLAM3's "
        "threads make its runs differ from one to the next in either mode)",
    )
    parser.add_argument(
        "--perturb",
        type=int,
        default=0,
        help="run every moving sequence N more times, run k starting at frame k * "
        f"{PERTURB_START_STEP} (sequences under {MIN_FRAMES_FOR_STARTS} frames: at frame 0), with {{1, 2}} SiLK "
        "threads alternating, +-1 grey-level input dither (seed k) and RANSAC seed k (ransac_seed: another draw "
        "of the robust estimators; silk_ros front ends); "
        f"report the median and worst ATE and lost frames (target: worst <= {SPREAD_TARGET} x median)",
    )


def _front_end(spec: str) -> dict[str, Any]:
    """``silk`` -> features only (the config's matchers); ``silk+attention`` / ``silk+mnn`` -> that one matcher for
    every frame, keyframes included (the attention matcher on ONNX Runtime when present), with the descriptors the
    shipped attention matcher takes (``_attention_descriptors``)."""
    features, _, matcher = spec.partition("+")
    if not matcher:
        return {"features": features}
    if matcher == "attention":
        return {"features": features, "matcher": {"name": "attention", "backend": "auto"},
                "keyframe_matcher": "none", **_attention_descriptors()}
    return {"features": features, "matcher": matcher, "keyframe_matcher": "none"}


def _attention_descriptors() -> dict[str, Any]:
    """The shipped attention matcher takes context descriptors (twice the network's size, the odometry's default) or
    the network's own (context off): the odometry refuses a matcher of another descriptor size."""
    from silk_ros.features.extractor import uses_context_descriptors
    from silk_ros.weights import load_weights, shipped_weights

    matcher_dim = load_weights(shipped_weights("matcher-mu"), kind="matcher").architecture["descriptor_dim"]
    return {} if uses_context_descriptors(matcher_dim, "silk-mu") else {"context_scale": 0.0}


def _headline(metrics: dict[str, Any], mode: str) -> float | None:
    align = "se3" if mode == "rgbd" else "sim3"
    value = metrics.get("ate", {}).get(align, {}).get("rmse")
    return None if value is None else float(value)


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def _execute(feature: str, args: argparse.Namespace, fmt: str, path: Path | None, out: Path, mode: str, *,
             stride: int, title: str, start: int = 0, threads: int | None = None, ransac_seed: int = 0,
             sequence=None) -> dict[str, Any]:
    """``run_dataset`` for one front end: silk_ros' odometry with the config's settings, or an external peer (in
    place of the odometry, same replay and report)."""
    peer = None
    if is_peer(feature):
        config = load_config(args.config)
        options = PeerOptions(work_dir=out, vocabulary=Path(args.orb_vocabulary) if args.orb_vocabulary else None,
                              frame_rate_hz=FRAME_RATES_HZ[fmt] / stride)
        try:
            peer = make_peer(feature, mode, options)
        except PeerUnavailable as err:
            raise SystemExit(f"bench vo: {err}") from None
    else:
        config = load_config(args.config, **_front_end(feature), threads=threads, **(
            {"ransac_seed": ransac_seed} if ransac_seed else {}))
    try:
        return run_dataset(
            fmt, path, out, mode, config, max_frames=args.max_frames, stride=stride, start=start, progress=True,
            title=title, sequence=sequence, odometry=peer,
        )
    finally:
        if peer is not None:
            peer.close()


def run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    data = Path(args.data) if args.data else shared_data_root()
    features = [f.strip() for f in args.features.split(",") if f.strip()]
    names = [n.strip() for n in args.sequences.split(",") if n.strip()]
    unknown = sorted(set(names) - set(SEQUENCES))
    if unknown:
        raise SystemExit(f"unknown sequences {unknown}; known: {sorted(SEQUENCES)}")
    results: dict[str, Any] = {"runs": {}, "targets": {}}
    for name in names:
        fmt, folder, mode, moving = SEQUENCES[name]
        path = data / "sequences" / folder
        if not path.exists():
            raise SystemExit(f"benchmark sequence {name}: {path} not found")
        stride = args.kitti_stride if fmt == "kitti" else 1
        for feature in features:
            skipped = skip_reason(feature, mode) if is_peer(feature) else None
            if skipped:
                results["runs"].setdefault(name, {})[feature] = {"mode": mode, "moving": moving, "skipped": skipped}
                continue
            metrics = _execute(
                feature, args, fmt, path, Path(args.out) / name / feature, mode, stride=stride,
                title=f"{name} ({feature})",
            )
            run_stats = metrics["run"]
            metrics.pop("trajectory")
            timings = run_stats["timings"]
            results["runs"].setdefault(name, {})[feature] = {
                "mode": mode,
                "moving": moving,
                "frames": run_stats["frames"],
                "stride": stride,
                "ate_rmse_m": _headline(metrics, mode),
                "ate_align": "se3" if mode == "rgbd" else "sim3",
                "ate_sim3_rmse": metrics.get("ate", {}).get("sim3", {}).get("rmse"),
                "ate_se3_rmse": metrics.get("ate", {}).get("se3", {}).get("rmse"),
                "rpe_per_frame": metrics.get("rpe", {}).get("per_frame"),
                "lost_frames": run_stats["lost_frames"],
                "posed_fraction": 1.0 - run_stats["lost_frames"] / max(run_stats["frames"], 1),
                "states": run_stats["states"],
                "keyframes": run_stats["keyframes"],
                "path_length_m": metrics["estimate_path_length"],
                "gt_path_length_m": metrics.get("gt_path_length"),
                "ms": {stage: timings[stage]["mean_ms"] for stage in timings},
                "fps": timings.get("total", {}).get("fps"),
                "backend": run_stats["backend"],
                "working_size": run_stats.get("working_size"),
            }
    starts = [int(s) for s in args.starts.split(",") if s.strip() and int(s) > 0]
    if starts:
        results["start_offsets"] = _start_offsets(results["runs"], data, features, starts, args)
    if args.perturb > 0:
        results["perturbed"] = _perturbed(results["runs"], data, features, args)
    results["targets"] = _targets(results["runs"], features, results.get("start_offsets", {}))
    for key, row in _spread_targets(results.get("perturbed", {})).items():
        results["targets"][key] = row
    return results, _markdown(results, features, args)


def _start_offsets(runs, data: Path, features: list[str], starts: list[int], args) -> dict[str, Any]:
    """ATE of the moving runs started at later frames too; the median over all starts (0 included)."""
    table: dict[str, Any] = {}
    for name, per_feature in runs.items():
        fmt, folder, mode, moving = SEQUENCES[name]
        if not moving:
            continue
        for feature in features:
            row = per_feature[feature]
            if "skipped" in row or row["frames"] < MIN_FRAMES_FOR_STARTS:
                continue
            ates, lost = [row["ate_rmse_m"]], [row["lost_frames"]]
            for start in starts:
                metrics = _execute(
                    feature, args, fmt, data / "sequences" / folder, Path(args.out) / name / feature / f"start{start}",
                    mode, stride=row["stride"], start=start, title=f"{name} ({feature}, from frame {start})",
                )
                ates.append(_headline(metrics, mode))
                lost.append(metrics["run"]["lost_frames"])
            finite = [a for a in ates if a is not None]
            table.setdefault(name, {})[feature] = {
                "starts": [0, *starts], "ate_rmse_m": ates, "lost_frames": lost,
                "median_ate_rmse_m": float(np.median(finite)) if finite else None,
            }
    return table


class Dithered:
    """A sequence whose images get +-1 grey level of seeded noise: a perturbation as small as sensor noise, which
    a VO whose result flips on float noise does not survive."""

    def __init__(self, sequence, seed: int):
        self._sequence, self._seed = sequence, seed

    def __getattr__(self, name: str):
        return getattr(self._sequence, name)

    def __len__(self) -> int:
        return len(self._sequence)

    def __iter__(self):
        rng = np.random.default_rng(self._seed)
        for frame in self._sequence:
            noise = rng.integers(-1, 2, size=frame.image.shape, dtype=np.int16)
            image = np.clip(frame.image.astype(np.int16) + noise, 0, 255).astype(frame.image.dtype)
            yield dataclasses.replace(frame, image=image)


def _perturbed(runs, data: Path, features: list[str], args) -> dict[str, Any]:
    """Each moving sequence ``--perturb`` more times: another start frame, thread count, input dither and RANSAC
    draw (``ransac_seed``) per run."""
    table: dict[str, Any] = {}
    for name, per_feature in runs.items():
        fmt, folder, mode, moving = SEQUENCES[name]
        if not moving:
            continue
        for feature in features:
            row = per_feature[feature]
            if "skipped" in row:
                continue
            ates, lost, variants = [row["ate_rmse_m"]], [row["lost_frames"]], ["start 0, default threads"]
            for k in range(1, args.perturb + 1):
                # short sequences (the 20-frame TUM run) keep start 0: threads and dither still change
                start = k * PERTURB_START_STEP if row["frames"] >= MIN_FRAMES_FOR_STARTS else 0
                threads = 1 + k % 2
                sequence = Dithered(open_dataset(fmt, data / "sequences" / folder, mode, args.max_frames,
                                                 row["stride"], start), seed=k)
                metrics = _execute(
                    feature, args, fmt, None, Path(args.out) / name / feature / f"perturb{k}", mode,
                    stride=row["stride"], threads=threads, title=f"{name} ({feature}, perturbed run {k})",
                    ransac_seed=k, sequence=sequence,
                )
                ates.append(_headline(metrics, mode))
                lost.append(metrics["run"]["lost_frames"])
                variants.append(f"start {start}, {threads} thread(s), dither and RANSAC seed {k}")
            finite = [a for a in ates if a is not None]
            median = float(np.median(finite)) if finite else None
            worst = max(finite) if len(finite) == len(ates) else None  # a run without an ATE is the worst
            table.setdefault(name, {})[feature] = {
                "variants": variants, "ate_rmse_m": ates, "lost_frames": lost, "median_ate_rmse_m": median,
                "worst_ate_rmse_m": worst, "spread": None if worst is None or not median else worst / median,
            }
    return table


def _spread_targets(perturbed: dict[str, Any]) -> dict[str, Any]:
    return {
        f"{name}: {feature} worst-of-{len(row['ate_rmse_m'])} ATE <= {SPREAD_TARGET} x median": {
            "value": row["spread"], "met": row["spread"] is not None and row["spread"] <= SPREAD_TARGET,
        }
        for name, per_feature in perturbed.items()
        for feature, row in per_feature.items()
    }


def _targets(runs: dict[str, Any], features: list[str], start_offsets: dict[str, Any]) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    learned = [f for f in features if f.split("+")[0] == "silk"]
    if learned and "orb" in features:
        for name, per_feature in runs.items():
            if not SEQUENCES[name][3]:
                continue
            orb = per_feature["orb"]["ate_rmse_m"]
            for front_end in learned:
                silk = per_feature[front_end]["ate_rmse_m"]
                ratio = None if silk is None or orb in (None, 0) else silk / orb
                label = "SiLK" if front_end == "silk" else front_end
                targets[f"{name}: {label} ATE <= {ATE_RATIO_TARGET} x ORB"] = {
                    "value": ratio, "met": ratio is not None and ratio <= ATE_RATIO_TARGET,
                }
    targets.update(_peer_targets(runs, features, start_offsets))
    for name, per_feature in runs.items():
        if SEQUENCES[name][3]:
            continue
        for feature, row in per_feature.items():
            if "skipped" in row:
                continue
            posed = row["lost_frames"] < row["frames"]  # a peer that never posed a frame has no path to judge
            targets[f"{name}: {feature} path < {REST_PATH_TARGET_M * 100:.0f} cm"] = {
                "value": row["path_length_m"] if posed else None,
                "met": posed and row["path_length_m"] < REST_PATH_TARGET_M,
            }
    if "silk" in features and FPS_RUN in runs:
        fps = runs[FPS_RUN]["silk"]["fps"]
        targets[f"SiLK monocular >= {FPS_TARGET:.0f} frames/s at 240x320 ({FPS_RUN})"] = {
            "value": fps, "met": fps is not None and fps >= FPS_TARGET,
        }
    return targets


def _peer_targets(runs: dict[str, Any], features: list[str], start_offsets: dict[str, Any]) -> dict[str, Any]:
    """SiLK (the default front end) against every external peer that ran on the same moving sequence: the median
    ATE over the start frames where those ran (one run of either can fail or flatter: ORB-SLAM3's threads make
    its runs differ from one to the next), else the single run."""
    targets: dict[str, Any] = {}
    if "silk" not in features:
        return targets

    def ate(name: str, feature: str) -> tuple[float | None, str]:
        row = start_offsets.get(name, {}).get(feature)
        if row is not None:
            return row["median_ate_rmse_m"], f"median of {len(row['starts'])} starts"
        return runs[name][feature]["ate_rmse_m"], "one run"

    for name, per_feature in runs.items():
        for peer in (f for f in features if is_peer(f)):
            if not SEQUENCES[name][3] or "skipped" in per_feature[peer]:
                continue
            (silk, how), (other, _) = ate(name, "silk"), ate(name, peer)
            ratio = silk / other if silk is not None and other else None
            targets[f"{name}: SiLK ATE <= {peer} ATE ({how})"] = {
                "value": ratio, "met": ratio is not None and ratio <= 1.0,
            }
    return targets


#: What each peer is, printed under the table when it ran.
PEER_NOTES = {
    "open3d-rgbd": "open3d-rgbd: Open3D's RGB-D odometry (`compute_rgbd_odometry`, hybrid photometric + geometric "
    "term, Open3D's default options), frame to frame, identity initial guess, full 640x480, chained into a "
    "trajectory; colour and depth as the silk_ros reader gives them (7-Scenes: K = 585/585/320/240 for both, not "
    "registered, as in silk_ros' RGB-D run). Lost = failed odometry calls (pose held, next frame aligned to the "
    "last good one); frames/s = RGB-D image build + odometry call.",
    "orbslam3": "orbslam3: ORB-SLAM3 (pyorbslam3 wheel, GPL-3.0, benchmark only), full SLAM (local mapping, "
    "covisibility BA, loop closing) at its example settings and full resolution, with an ORB vocabulary trained "
    "on ../shared/data/train photos (`python -m training.orb_vocabulary`), never on benchmark sequences. Its "
    "per-frame tracking poses (causal, like silk_ros' output) are evaluated; frames without a pose (before "
    "initialisation, LOST) are left out of its trajectory and counted as lost; frames/s = the tracking call "
    "(its mapping threads run beside it).",
}


def _markdown(results: dict[str, Any], features: list[str], args: argparse.Namespace) -> str:
    lines = [
        "Odometry on the shared sequences with the default config/odometry.yaml (one setting for all). ATE RMSE in "
        "metres, Sim(3)-aligned for monocular runs (scale is unobservable), SE(3) for RGB-D. Working resolution: "
        "images shrunk to <= 76,800 pixels (240x320 for 640x480). Times are means per frame on this CPU "
        "(shared with other jobs while measured).",
        "",
        "| sequence | front end | frames | ATE RMSE (m) | RPE/frame trans (m) | lost | keyframes | path (m) | "
        "gt path (m) | extract ms | match ms | pose ms | total ms | frames/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, per_feature in results["runs"].items():
        for feature in features:
            row = per_feature[feature]
            if "skipped" in row:
                lines.append(f"| {name} | {feature} | skipped: {row['skipped']} |" + " |" * 11)
                continue
            rpe = row["rpe_per_frame"] or {}
            ms = row["ms"]
            frames = f"{row['frames']}" + (f" (stride {row['stride']})" if row["stride"] > 1 else "")
            lines.append(
                f"| {name} | {feature} | {frames} | {_fmt(row['ate_rmse_m'], '.4f')} | "
                f"{_fmt(rpe.get('trans_rmse'), '.4f')} | {row['lost_frames']} | {_fmt(row['keyframes'], 'd')} | "
                f"{row['path_length_m']:.3f} | {_fmt(row['gt_path_length_m'])} | {ms.get('extract', 0):.1f} | "
                f"{ms.get('match', 0):.1f} | {ms.get('pose', 0):.1f} | {ms.get('total', 0):.1f} | "
                f"{_fmt(row['fps'], '.1f')} |"
            )
    notes = [PEER_NOTES[f] for f in features if f in PEER_NOTES]
    if notes:
        lines += ["", "External peers (same replay, frames, report and ATE alignment as silk_ros' front ends):", ""]
        lines += [f"- {note}" for note in notes]
    if results["targets"]:
        lines += ["", "| target | measured | met |", "|---|---|---|"]
        for name, target in results["targets"].items():
            lines.append(f"| {name} | {_fmt(target['value'], '.3f')} | {'yes' if target['met'] else '**no**'} |")
    offsets = results.get("start_offsets") or {}
    if offsets:
        lines += [
            "",
            "Runs from several start frames (same defaults; a monocular run is chaotic: one tracking loss rescales "
            "everything after it, and ORB-SLAM3's threads make its runs differ in either mode, so one start says "
            "little on its own):",
            "",
            "| sequence | front end | start frames | ATE RMSE per start (m) | lost per start | median ATE (m) |",
            "|---|---|---|---|---|---|",
        ]
        for name, per_feature in offsets.items():
            for feature, row in per_feature.items():
                ates = ", ".join(_fmt(a, ".4f") for a in row["ate_rmse_m"])
                lost = ", ".join(str(n) for n in row["lost_frames"])
                starts = ", ".join(str(n) for n in row["starts"])
                lines.append(
                    f"| {name} | {feature} | {starts} | {ates} | {lost} | {_fmt(row['median_ate_rmse_m'], '.4f')} |"
                )
    perturbed = results.get("perturbed") or {}
    if perturbed:
        lines += [
            "",
            f"Perturbed runs (`--perturb`): run k starts at frame k x {PERTURB_START_STEP} (at frame 0 on sequences "
            f"under {MIN_FRAMES_FOR_STARTS} frames), with 1 or 2 SiLK threads alternating, +-1 grey-level input "
            "dither (seed k) and RANSAC seed k (`ransac_seed`); run 0 is the table above:",
            "",
            "| sequence | front end | ATE RMSE per run (m) | lost per run | median ATE (m) | worst ATE (m) | "
            "worst / median |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, per_feature in perturbed.items():
            for feature, row in per_feature.items():
                ates = ", ".join(_fmt(a, ".4f") for a in row["ate_rmse_m"])
                lost = ", ".join(str(n) for n in row["lost_frames"])
                lines.append(
                    f"| {name} | {feature} | {ates} | {lost} | {_fmt(row['median_ate_rmse_m'], '.4f')} | "
                    f"{_fmt(row['worst_ate_rmse_m'], '.4f')} | {_fmt(row['spread'], '.2f')} |"
                )
    if args.max_frames:
        lines += ["", f"Quick run: every sequence capped at {args.max_frames} frames."]
    return "\n".join(lines)
