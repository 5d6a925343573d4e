"""``python -m training.pose_check``: is a learned matcher at least as accurate as MNN on relative pose?

The odometry builds maps from its keyframe matcher only when that matcher does not make poses worse than mutual
nearest neighbours (``silk_ros.matching.attention.loses_to_mnn``).  Training pairs are homographies, which say
nothing about 3D scenes, and the pose benchmarks must not decide a default.  So the check uses pairs nobody
benchmarks on: the synthetic room (``silk_ros.datasets.synthetic``: walls, floor, ceiling and boxes, exact
ray casting) textured with the held-out validation photos of the SiLK trainer, seen at the odometry's working
size (320x240) by two cameras 0.2-0.7 m apart that look at about the same point (5-35 degrees of relative
rotation).  Both matchers see the same SiLK features, selected as the odometry selects them; the figure is the
SuperGlue-protocol pose AUC@10 (the code of ``silk-vo bench pose-pairs``), the mean over three rooms (one room
moves the figure by 5-10 points).  ``--write`` stores ``{"pairs", "metric", "matcher", "mnn", ...}`` as
``pose_vs_mnn`` in the matcher's weights file.  ``--choose-threshold`` first picks the matcher's match-probability
threshold by pose AUC@10 on two other rooms and stores it as the weights' inference default: the trainer's choice,
F1 on homography crops, keeps fewer matches than relative pose wants.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from silk_ros.bench.pair_data import PosePair
from silk_ros.datasets.paths import shared_data_root
from silk_ros.datasets.synthetic import ROOM_HALF_SIZE, build_room, render
from silk_ros.evaluation.matching_metrics import auc, relative_pose_error_from_matches
from silk_ros.geometry.camera import Camera
from silk_ros.geometry.pose import invert_pose, make_pose

from .data import list_images, load_grey_images

__all__ = ["camera_pair", "synthetic_pose_pairs", "front_end", "pose_auc_by_threshold", "choose_threshold",
           "compare_with_mnn", "main"]

VALIDATION_PHOTOS = (["train/bsds500/test"], 50)  # the SiLK trainer's held-out split (mu_cpu.yaml val_*)
#: rooms of the check against MNN, and rooms that choose the match threshold (``--choose-threshold``): never the same
CHECK_SEEDS = (0, 1, 2)
THRESHOLD_SEEDS = (10, 11)
#: keypoint selections of the check: the odometry's (what ``keyframe_matcher: auto`` decides on) or image pairs'
SELECTIONS = ("odometry", "pairs")


def _looking_at(centre: np.ndarray, target: np.ndarray, roll: float) -> np.ndarray:
    """T_world_cam of an optical frame (x right, y down, z forward) at ``centre`` looking at ``target``."""
    forward = (target - centre) / np.linalg.norm(target - centre)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c, s = np.cos(roll), np.sin(roll)
    rotation = np.column_stack([right, down, forward]) @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    return make_pose(rotation, centre)


def camera_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    inner = ROOM_HALF_SIZE - 1.2
    centre0 = np.array([*rng.uniform(-inner, inner, 2), rng.uniform(0.8, 2.0)])
    heading = rng.uniform(0, 2 * np.pi)
    target = centre0 + rng.uniform(1.5, 3.0) * np.array([np.cos(heading), np.sin(heading), rng.uniform(-0.5, 0.1)])
    step = rng.normal(size=3)
    centre1 = centre0 + rng.uniform(0.2, 0.7) * step / np.linalg.norm(step)
    aim1 = target + rng.normal(scale=0.3, size=3)
    return _looking_at(centre0, target, rng.uniform(-0.1, 0.1)), _looking_at(centre1, aim1, rng.uniform(-0.3, 0.3))


def synthetic_pose_pairs(count: int, seed: int = 0, width: int = 320, height: int = 240,
                         data_root: Path | None = None, photo_paths: list[Path] | None = None,
                         progress: bool = True) -> list[PosePair]:
    """``count`` rendered pairs with their intrinsics and T_1_0, textured with the held-out photos (or
    ``photo_paths``)."""
    if photo_paths is None:
        folders, first = VALIDATION_PHOTOS
        photo_paths = list_images(folders, data_root or shared_data_root())[:first]
    photos = load_grey_images(photo_paths, min_side=32)
    rng = np.random.default_rng(seed)
    quads = build_room(rng, [cv2.cvtColor(p, cv2.COLOR_GRAY2BGR) for p in photos])
    focal = 0.8 * width
    camera = Camera.from_intrinsics(focal, focal, (width - 1) / 2, (height - 1) / 2, width, height)
    pairs = []
    for i in tqdm(range(count), desc="rendering pose pairs", leave=False, disable=not progress):
        pose0, pose1 = camera_pair(rng)
        image0, image1 = (cv2.cvtColor(render(quads, camera, p)[0], cv2.COLOR_BGR2GRAY) for p in (pose0, pose1))
        pairs.append(PosePair(f"room{seed}/{i}", image0, image1, camera.K, camera.K, invert_pose(pose1) @ pose0))
    return pairs


def front_end(matcher_weights: str, silk_weights: str, max_keypoints: int, threshold: float | None = None,
              selection: str = "odometry"):
    """(extractor, matcher) as the odometry would pair them: its keypoint selection (``OdometryConfig().extractor``),
    since the check decides whether the odometry may use the matcher, with the descriptors the matcher takes (context
    descriptors, or the network's own for a matcher trained on those); ``threshold`` overrides the weights' one.
    ``selection="pairs"``: the package's own selection (``ExtractorConfig``), the one image-pair matching and the
    feature benches use."""
    from dataclasses import replace

    from silk_ros.features import ExtractorConfig, build_extractor
    from silk_ros.features.extractor import uses_context_descriptors
    from silk_ros.matching import build_matcher
    from silk_ros.odometry.config import OdometryConfig

    spec = {"name": "attention", "weights": matcher_weights, "backend": "onnxruntime"}
    matcher = build_matcher(spec if threshold is None else {**spec, "filter_threshold": threshold})
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got '{selection}'")
    base = OdometryConfig().extractor if selection == "odometry" else ExtractorConfig()
    options = replace(base, weights=silk_weights, top_k=max_keypoints, threads=1)
    if not uses_context_descriptors(matcher.config.descriptor_dim, silk_weights):
        options = replace(options, context_scale=0.0)
    return build_extractor(options), matcher


def pose_auc_by_threshold(extractor, matcher, pairs: list[PosePair], thresholds, ransac_px: float = 0.5
                          ) -> dict[float, float]:
    """Pose AUC@10 of the attention matcher at each match-probability threshold, from one assignment per pair: its
    matches at threshold t are the mutual maxima with probability above t (``matches_from_log_assignment``), so
    ``matcher`` runs at threshold 0 and each threshold filters them."""
    if matcher.config.filter_threshold > min(thresholds):
        raise ValueError("pose_auc_by_threshold needs the matcher at a threshold <= the lowest candidate")
    errors: dict[float, list[float]] = {t: [] for t in thresholds}
    for pair in pairs:
        f0, f1 = extractor.extract(pair.image0), extractor.extract(pair.image1)
        matches = matcher(f0, f1)
        p0, p1 = matches.points(f0, f1)
        for t in thresholds:
            keep = matches.confidence > t
            errors[t].append(relative_pose_error_from_matches(p0[keep], p1[keep], pair.k0, pair.k1, pair.t_1_0,
                                                              ransac_px))
    return {t: auc(errors[t], (10,))[0] for t in thresholds}


def choose_threshold(matcher_weights: str, silk_weights: str, seeds, count: int, max_keypoints: int,
                     candidates=None, size: tuple[int, int] = (320, 240), selection: str = "odometry"
                     ) -> tuple[float, dict[str, float]]:
    """The match-probability threshold with the best mean pose AUC@10 over the rooms of ``seeds`` (ties: the
    higher threshold).  The trainer's F1 on homography crops prefers 0.2 for every wide matcher, while poses
    want more, weaker matches; the rooms here are not the check's (``CHECK_SEEDS``), so the check stays honest."""
    from .matcher import THRESHOLD_CANDIDATES

    candidates = tuple(candidates or THRESHOLD_CANDIDATES)
    extractor, matcher = front_end(matcher_weights, silk_weights, max_keypoints, min(candidates), selection)
    per_seed = [pose_auc_by_threshold(extractor, matcher, synthetic_pose_pairs(count, seed, *size), candidates)
                for seed in tqdm(seeds, desc="choosing the threshold", leave=False)]
    mean = {str(t): float(np.mean([s[t] for s in per_seed])) for t in candidates}
    best = max(candidates, key=lambda t: (round(mean[str(t)], 6), t))
    return float(best), mean


def compare_with_mnn(extractor, matcher, pairs: list[PosePair]) -> dict:
    """Pose AUC@5/10/20 of the matcher and of MNN on the same SiLK features and pairs (a ``front_end``)."""
    from silk_ros.bench.pose_pairs import evaluate_pose
    from silk_ros.matching import build_matcher

    matchers = {"mnn": build_matcher("mnn"), "matcher": matcher}
    return {name: evaluate_pose(extractor, pairs, matcher=m) for name, m in matchers.items()}


def _seeds(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WxH, e.g. 640x480, got '{text}'") from None
    if min(width, height) < 64:
        raise argparse.ArgumentTypeError(f"size {text}: at least 64 px a side")
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.pose_check", description=__doc__.split("\n")[0])
    parser.add_argument("--matcher-weights", default="matcher-mu", help="attention matcher weights (name or path)")
    parser.add_argument("--silk-weights", default="silk-mu")
    parser.add_argument("--pairs", type=int, default=64, help="pairs per room seed")
    parser.add_argument("--seeds", type=_seeds, default=list(CHECK_SEEDS), help="room seeds of the check")
    parser.add_argument("--choose-threshold", action="store_true",
                        help="first choose the match threshold by pose on the rooms of --threshold-seeds")
    parser.add_argument("--threshold-seeds", type=_seeds, default=list(THRESHOLD_SEEDS))
    parser.add_argument("--max-keypoints", type=int, default=1024, help="the odometry's keypoint budget")
    parser.add_argument("--size", type=_size, default=(320, 240),
                        help="WxH of the rendered rooms (the odometry's working size; 640x480: image pairs)")
    parser.add_argument("--selection", choices=SELECTIONS, default="odometry",
                        help="keypoint selection: the odometry's, or the package's for image pairs (the benches')")
    parser.add_argument("--write", action="store_true",
                        help="store the result (and a chosen threshold) in the matcher's weights file")
    args = parser.parse_args(argv)
    if set(args.seeds) & set(args.threshold_seeds) and args.choose_threshold:
        parser.error("--seeds and --threshold-seeds must differ: a threshold chosen on the check's rooms biases it")
    if args.write and (args.size != (320, 240) or args.selection != "odometry"):
        parser.error("--write stores the check the odometry decides on: only at 320x240 with --selection odometry")
    choice = None
    threshold = None
    if args.choose_threshold:
        threshold, by_threshold = choose_threshold(args.matcher_weights, args.silk_weights, args.threshold_seeds,
                                                   args.pairs, args.max_keypoints, size=args.size,
                                                   selection=args.selection)
        choice = {"seeds": args.threshold_seeds, "pairs_per_seed": args.pairs, "pose_auc10_by_threshold": by_threshold}
        print(json.dumps({"filter_threshold": threshold, "chosen_on": choice}, indent=2))
    extractor, matcher = front_end(args.matcher_weights, args.silk_weights, args.max_keypoints, threshold,
                                   args.selection)
    results = {seed: compare_with_mnn(extractor, matcher, synthetic_pose_pairs(args.pairs, seed, *args.size))
               for seed in args.seeds}
    mean = {name: float(np.mean([r[name]["auc@10"] for r in results.values()])) for name in ("matcher", "mnn")}
    seeds = ", ".join(str(s) for s in args.seeds)
    record = {
        "pairs": f"{len(args.seeds)} x {args.pairs} synthetic-room pairs (seeds {seeds}), held-out BSDS500 test "
                 "photos as textures",
        "metric": "pose AUC@10 (SuperGlue protocol), mean over the room seeds",
        "matcher": mean["matcher"],
        "mnn": mean["mnn"],
        "per_seed": {str(s): {name: r[name]["auc@10"] for name in ("matcher", "mnn")} for s, r in results.items()},
        "silk_weights": args.silk_weights,
        "keypoints": "the odometry's selection (OdometryConfig().extractor)" if args.selection == "odometry" else
                     "the package's selection for image pairs (ExtractorConfig)",
        "size": f"{args.size[0]}x{args.size[1]}",
    }
    detail = {str(s): {name: {k: r[name][k] for k in ("auc@5", "auc@10", "auc@20", "matches")} for name in r}
              for s, r in results.items()}
    print(json.dumps({"pose_vs_mnn": record, "detail": detail}, indent=2))
    if args.write:
        from silk_ros.weights import load_weights, save_weights, shipped_weights

        path = Path(args.matcher_weights)
        if not path.suffix and not path.exists():
            path = shipped_weights(args.matcher_weights)
        weights = load_weights(path, kind="matcher")
        provenance = {**weights.provenance, "pose_vs_mnn": record}
        if choice is not None:
            provenance.setdefault("filter_threshold_f1", weights.provenance.get("filter_threshold"))
            provenance["filter_threshold"] = threshold  # the inference default (load_attention_net)
            provenance["filter_threshold_chosen_on"] = choice
        save_weights(path, "matcher", weights.architecture, weights.state_dict, provenance)
        print(f"wrote pose_vs_mnn{' and filter_threshold' if choice else ''} into {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
