"""``silk-vo bench design``: the odometry's design set, where a variant is tried before any benchmark sees it.

The benchmark sequences (``bench vo``) judge the odometry and must not tune it.  These rendered rooms are papered
with the SiLK trainer's held-out photos (``train/bsds500/test``; the low-texture rooms with the renderer's blank
office walls instead), and their paths cover what robots do: sweeps along an arc and back (a revisit), smooth arcs,
a head shake (``fast``), motion blur (``blur``: the shutter open 10 % of the frame interval).  RGB-D rooms get a
Kinect's depth errors (``kinect_depth_noise``).

Each room runs once per RANSAC seed: a monocular run is chaotic (one keyframe decision can change the scale of
everything after it), so a variant is judged on the median over rooms and seeds, never one run.  Per run: ATE RMSE
(Sim(3) monocular, SE(3) RGB-D; metres), lost frames, the frame the map started from (monocular frames before it
have no translation, and count in the ATE), and for monocular runs the *scale wander*: the standard deviation of
the log Umeyama scale of each 50-frame segment after the map started, against the whole run's; the random walk of
a keyframe odometry's scale, which ATE alone mixes with direction errors.  Rendered frames are cached (``--cache``),
so a second variant costs only the odometry.

``--rooms held-out`` runs ten other rooms (other seeds, photos placed and paths drawn anew, the same kinds of motion
and texture), never used to choose a setting: they say whether what the design set chose holds on rooms nobody tuned
on.  ``--peer orbslam3`` runs ORB-SLAM3 (a benchmark extra, as in ``bench vo``) on the same rendered frames in
place of silk_ros; each seed is one more run of it (its threads make runs differ), frames it leaves without a pose
count as lost and stay out of its ATE.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from silk_ros.bench.peers import PeerOptions, PeerUnavailable, make_peer
from silk_ros.datasets.paths import shared_data_root
from silk_ros.datasets.synthetic import SyntheticSequence
from silk_ros.evaluation.metrics import associate, ate, umeyama
from silk_ros.evaluation.run_dataset import DEFAULT_CONFIG, load_config
from silk_ros.odometry.config import ConfigError
from silk_ros.odometry.types import TrackingState
from silk_ros.odometry.vo import VisualOdometry
from silk_ros.settings import parse_overrides

__all__ = ["DesignRoom", "ROOMS", "HELD_OUT_ROOMS", "DEFAULT_ROOMS", "add_arguments", "run", "render_room", "run_room",
           "room_summary", "scale_wander"]

#: the SiLK trainer's held-out photos (training/configs: val_images): never trained on, never benchmarked
VALIDATION_PHOTOS = "train/bsds500/test"
#: frames per segment of the scale wander (5 s at the renderer's 10 Hz)
SEGMENT_FRAMES = 50
#: a segment whose ground truth spans less than this (metres) has no scale to measure
MIN_SEGMENT_EXTENT_M = 0.05
BLUR_EXPOSURE = 0.1
#: a run with fewer posed frames has no ATE (a peer that never initialised)
MIN_POSED_FRAMES = 10
#: the shortest room ``--frames`` may ask for (the monocular map needs ~10-30 frames to start)
MIN_FRAMES = 20


@dataclass(frozen=True)
class DesignRoom:
    """One rendered room and camera path (``SyntheticSequence`` options)."""

    seed: int
    motion: str
    frames: int
    texture: str = "rich"
    exposure: float = 0.0

    @property
    def name(self) -> str:
        variant = (["low"] if self.texture == "low" else []) + (["blur"] if self.exposure else [])
        return "-".join([f"room{self.seed}", self.motion, *variant])


ROOMS: dict[str, DesignRoom] = {room.name: room for room in (
    DesignRoom(1, "sweep", 240), DesignRoom(2, "smooth", 240), DesignRoom(3, "sweep", 240),
    DesignRoom(4, "smooth", 240, "low"), DesignRoom(11, "sweep", 240), DesignRoom(12, "smooth", 240),
    DesignRoom(5, "fast", 120), DesignRoom(6, "fast", 120, "low"),
    DesignRoom(7, "fast", 120, exposure=BLUR_EXPOSURE), DesignRoom(8, "fast", 120, "low", BLUR_EXPOSURE),
)}
#: rooms no setting was chosen on (``--rooms held-out``): the design set's kinds of motion and texture, other seeds
HELD_OUT_ROOMS: dict[str, DesignRoom] = {room.name: room for room in (
    DesignRoom(21, "sweep", 240), DesignRoom(22, "smooth", 240), DesignRoom(23, "sweep", 240, "low"),
    DesignRoom(24, "smooth", 240, exposure=BLUR_EXPOSURE), DesignRoom(25, "sweep", 240),
    DesignRoom(26, "smooth", 240, "low"), DesignRoom(27, "fast", 120), DesignRoom(28, "fast", 120, "low"),
    DesignRoom(29, "fast", 120, exposure=BLUR_EXPOSURE), DesignRoom(30, "fast", 120, "low", BLUR_EXPOSURE),
)}
#: the rooms a plain ``bench design`` runs: textured and blank, slow and shaking
DEFAULT_ROOMS = ("room1-sweep", "room2-smooth", "room3-sweep", "room4-smooth-low", "room5-fast", "room6-fast-low")


def render_room(room: DesignRoom, photos: Path, depth: bool, cache: Path | None) -> dict[str, Any]:
    """The room's images (and noisy depth), stamps, camera and ground truth: rendered once, then read from
    ``cache``."""
    key = f"{room.name}-{room.frames}{'-depth' if depth else ''}.pkl"
    path = None if cache is None else cache / key
    if path is not None and path.is_file():
        return pickle.loads(path.read_bytes())
    sequence = SyntheticSequence(n_frames=room.frames, seed=room.seed, motion=room.motion, texture=room.texture,
                                 exposure=room.exposure, texture_dir=photos if room.texture == "rich" else None,
                                 with_depth=depth, depth_noise=depth)
    frames = list(tqdm(sequence, desc=f"render {room.name}", unit="frame", leave=False))
    rendered = {"images": [f.image for f in frames], "depths": [f.depth for f in frames] if depth else None,
                "stamps": np.array([f.timestamp for f in frames]), "camera": frames[0].camera,
                "ground_truth": sequence.ground_truth}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(rendered))
        tmp.replace(path)
    return rendered


def scale_wander(trajectory, ground_truth, first_frame: int = 0) -> float | None:
    """Standard deviation of log(segment scale / whole-run scale) over the ``SEGMENT_FRAMES``-frame segments from
    ``first_frame`` on (Umeyama, estimate -> ground truth); None with fewer than two measurable segments."""
    estimate, truth = associate(trajectory, ground_truth, 0.02)
    P, G = estimate.positions[first_frame:], truth.positions[first_frame:]
    if len(P) < 2 * SEGMENT_FRAMES:
        return None
    overall = umeyama(P, G, True)[2]
    logs = [np.log(umeyama(P[i:i + SEGMENT_FRAMES], G[i:i + SEGMENT_FRAMES], True)[2] / overall)
            for i in range(0, len(P) - SEGMENT_FRAMES + 1, SEGMENT_FRAMES)
            if np.ptp(G[i:i + SEGMENT_FRAMES], axis=0).max() >= MIN_SEGMENT_EXTENT_M]
    return float(np.std(logs)) if len(logs) >= 2 else None


def run_room(rendered: dict[str, Any], config, seed: int, label: str = "", peer=None) -> dict[str, Any]:
    """One run of the odometry ``config`` (its ``ransac_seed`` set to ``seed``) over a rendered room, or of ``peer``
    (a ``bench.peers`` odometry, run afresh) in its place."""
    odometry = VisualOdometry(config.replace(ransac_seed=seed)) if peer is None else peer
    cv2.setRNGSeed(seed)
    depths = rendered["depths"] or [None] * len(rendered["images"])
    lost, map_from = 0, None
    stream = zip(rendered["images"], depths, rendered["stamps"], strict=True)
    try:
        for index, (image, depth, stamp) in enumerate(tqdm(stream, total=len(depths), unit="frame", leave=False,
                                                           desc=f"{label} seed {seed}")):
            result = odometry.process(image, stamp, rendered["camera"], depth)
            lost += result.state == TrackingState.LOST
            posed = result.state != TrackingState.LOST if peer is not None else (
                np.linalg.norm(result.pose_world_cam[:3, 3]) > 0)  # silk_ros: the first frame the map moved
            if map_from is None and posed:
                map_from = index
    finally:
        if peer is not None:
            peer.close()
    mono = rendered["depths"] is None
    trajectory = odometry.trajectory
    if len(trajectory) < MIN_POSED_FRAMES:  # a peer that never initialised: no trajectory to align
        return {"seed": seed, "ate_m": None, "lost": int(lost), "map_from_frame": map_from, "scale_wander": None}
    error = ate(trajectory, rendered["ground_truth"], "sim3" if mono else "se3")
    wander = scale_wander(trajectory, rendered["ground_truth"], map_from or 0) if mono and peer is None else None
    return {"seed": seed, "ate_m": float(error["rmse"]), "lost": int(lost), "map_from_frame": map_from,
            "scale_wander": wander}


def room_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """A room's runs (``run_room``) with their median and worst ATE (runs without one count as the worst) and the
    lost frames of all of them."""
    errors = [np.inf if r["ate_m"] is None else r["ate_m"] for r in runs]
    return {"runs": runs, "median_ate_m": _finite(np.median(errors)), "worst_ate_m": _finite(max(errors)),
            "lost": sum(r["lost"] for r in runs)}


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rooms", default=",".join(DEFAULT_ROOMS),
                        help=f"comma-separated rooms, 'all' (the design set: {', '.join(ROOMS)}) or 'held-out' "
                        f"({', '.join(HELD_OUT_ROOMS)}: never used to choose a setting)")
    parser.add_argument("--mode", choices=("mono", "rgbd"), default="mono",
                        help="rgbd: the rooms with Kinect-like depth")
    parser.add_argument("--seeds", default="0,1", help="comma-separated RANSAC seeds, one run of every room each")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="odometry YAML")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one odometry setting (YAML value), e.g. --set window_keyframes=8; repeatable")
    parser.add_argument("--frames", type=int, default=None, help="cap every room (quick checks)")
    parser.add_argument("--data", default=None, help="shared data folder (default ../shared/data)")
    parser.add_argument("--cache", default="runs/bench/design", help="folder caching the rendered rooms ('': none)")
    parser.add_argument("--peer", choices=("orbslam3",), default=None,
                        help="run this external system (a benchmark extra) in place of silk_ros, once per seed")
    parser.add_argument("--orb-vocabulary", default="runs/bench/orb_vocabulary.txt",
                        help="DBoW2 text vocabulary for --peer orbslam3 (make bench trains it on training photos)")


def _rooms(spec: str, frames: int | None) -> list[DesignRoom]:
    known = {**ROOMS, **HELD_OUT_ROOMS}
    groups = {"all": list(ROOMS), "held-out": list(HELD_OUT_ROOMS)}
    names = groups.get(spec) or [n.strip() for n in spec.split(",") if n.strip()]
    unknown = sorted(set(names) - set(known))
    if unknown or not names:
        raise SystemExit(f"bench design: unknown rooms {unknown}; known: {', '.join(known)}, all, held-out")
    if frames is not None and frames < MIN_FRAMES:
        raise SystemExit(f"bench design: --frames {frames}: a room needs at least {MIN_FRAMES} frames")
    rooms = [known[n] for n in names]
    if frames is not None:
        rooms = [dataclasses.replace(r, frames=min(r.frames, frames)) for r in rooms]
    return rooms


def run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    try:  # a bad setting fails before any rendering
        overrides = parse_overrides(args.set)
        owned = {"mode": "--mode", "ransac_seed": "--seeds"}.items()
        taken = [f"{key} (use {flag})" for key, flag in owned if key in overrides]
        if taken:
            raise ConfigError(f"--set may not change {', '.join(taken)}: the bench sets it for every run")
        config = load_config(args.config, mode=args.mode, **overrides)
    except ConfigError as error:
        raise SystemExit(f"bench design: {error}") from None
    seeds = [int(s) for s in str(args.seeds).split(",") if s.strip()]
    if not seeds:
        raise SystemExit("bench design: --seeds needs at least one seed")
    rooms = _rooms(args.rooms, args.frames)
    photos = (Path(args.data) if args.data else shared_data_root()) / VALIDATION_PHOTOS
    if not photos.is_dir():
        raise SystemExit(f"bench design: no validation photos at {photos} (see ../shared/data/README.md)")
    cache = Path(args.cache) if args.cache else None
    if args.peer and overrides:
        raise SystemExit(f"bench design: --set changes silk_ros settings; --peer {args.peer} runs its own")
    load = os.getloadavg()[0]
    results: dict[str, Any] = {"mode": args.mode, "seeds": seeds, "config": str(args.config), "overrides": overrides,
                               "front_end": args.peer or "silk_ros", "rooms": {}}
    for room in rooms:
        rendered = render_room(room, photos, args.mode == "rgbd", cache)
        rate = 1.0 / float(np.median(np.diff(rendered["stamps"])))
        runs = [run_room(rendered, config, seed, room.name, _peer(args, cache, rate)) for seed in seeds]
        results["rooms"][room.name] = {"frames": room.frames, **room_summary(runs)}
    every = [r for room in results["rooms"].values() for r in room["runs"]]
    wander = [r["scale_wander"] for r in every if r["scale_wander"] is not None]
    errors = [np.inf if r["ate_m"] is None else r["ate_m"] for r in every]
    results.update(median_ate_m=_finite(np.median(errors)), mean_ate_m=_finite(np.mean(errors)),
                   runs_without_ate=sum(r["ate_m"] is None for r in every), lost=sum(r["lost"] for r in every),
                   median_scale_wander=float(np.median(wander)) if wander else None,
                   load_average_start=load, load_average_end=os.getloadavg()[0])
    return results, _markdown(results)


def _peer(args: argparse.Namespace, cache: Path | None, frame_rate_hz: float):
    """A fresh ``--peer`` for one run (None: silk_ros); a missing package or vocabulary stops the bench."""
    if not args.peer:
        return None
    work = (cache or Path("runs/bench/design")) / "peers" / args.peer
    try:
        options = PeerOptions(work_dir=work, vocabulary=Path(args.orb_vocabulary), frame_rate_hz=frame_rate_hz)
        return make_peer(args.peer, args.mode, options)
    except PeerUnavailable as error:
        raise SystemExit(f"bench design: {error}") from None


def _m(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _room_set(rooms: dict[str, Any]) -> str:
    held_out = sum(name in HELD_OUT_ROOMS for name in rooms)
    return "Held-out rooms" if held_out == len(rooms) else "Design set" if not held_out else "Design and held-out rooms"


def _markdown(results: dict[str, Any]) -> str:
    mono = results["mode"] == "mono"
    settings = ", ".join(f"{k}={v}" for k, v in results["overrides"].items()) or "none"
    lines = [
        f"{_room_set(results['rooms'])}, front end {results['front_end']} ({results['mode']}; synthetic rooms "
        "papered with held-out BSDS500 test photos, 320x240 at 10 Hz; "
        f"ATE RMSE in m, {'Sim(3)' if mono else 'SE(3)'} aligned; RANSAC seeds {results['seeds']}; settings changed "
        f"from {Path(results['config']).name}: {settings}). Machine load (1-min load average) "
        f"{results['load_average_start']:.1f} at the start, {results['load_average_end']:.1f} at the end.",
        "",
        "| room | frames | ATE per seed (m) | median | worst | lost | map from frame | scale wander |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, room in results["rooms"].items():
        runs = room["runs"]
        wander = ", ".join("-" if r["scale_wander"] is None else f"{100 * r['scale_wander']:.1f} %" for r in runs)
        errors = ", ".join(_m(r["ate_m"]) for r in runs)
        lines.append(
            f"| {name} | {room['frames']} | {errors} | "
            f"{_m(room['median_ate_m'])} | {_m(room['worst_ate_m'])} | {room['lost']} | "
            f"{', '.join(str(r['map_from_frame']) for r in runs)} | {wander if mono else '-'} |")
    wander = results["median_scale_wander"]
    lines.append(f"| **all runs** | | | **{_m(results['median_ate_m'])}** (mean {_m(results['mean_ate_m'])}) | | "
                 f"**{results['lost']}** | | {'-' if wander is None else f'{100 * wander:.1f} %'} |")
    return "\n".join(lines)
