"""``python -m training.pose_check``: is a learned matcher at least as accurate as MNN on relative pose?

The odometry builds maps from its keyframe matcher only when that matcher does not make poses worse than mutual
nearest neighbours (``silk_ros.matching.attention.loses_to_mnn``).  Training pairs are homographies, which say
nothing about 3D scenes, and the pose benchmarks must not decide a default.  So the check uses pairs nobody
benchmarks on: the synthetic room (``silk_ros.datasets.synthetic``: walls, floor, ceiling and boxes, exact
ray casting) textured with the held-out validation photos of the SiLK trainer, seen at the odometry's working
size (320x240) by two cameras 0.2-0.7 m apart that look at about the same point (5-35 degrees of relative
rotation).  Both matchers see the same SiLK features, selected as the odometry selects them; the figure is the
SuperGlue-protocol pose AUC@10 (the code of ``silk-vo bench pose-pairs``).  ``--write`` stores
``{"pairs", "metric", "matcher", "mnn"}`` as ``pose_vs_mnn`` in the matcher's weights file.
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
from silk_ros.geometry.camera import Camera
from silk_ros.geometry.pose import invert_pose, make_pose

from .data import list_images, load_grey_images

__all__ = ["camera_pair", "synthetic_pose_pairs", "compare_with_mnn", "main"]

VALIDATION_PHOTOS = (["train/bsds500/test"], 50)  # the SiLK trainer's held-out split (mu_cpu.yaml val_*)


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


def compare_with_mnn(matcher_weights: str, silk_weights: str, pairs: list[PosePair], max_keypoints: int) -> dict:
    """Pose AUC@5/10/20 of the matcher and of MNN on the same SiLK features and pairs: the odometry's keypoint
    selection (``OdometryConfig().extractor``), since the check decides whether the odometry may use the matcher, with
    the descriptors the matcher takes (context descriptors, or the network's own for a matcher trained on those)."""
    from dataclasses import replace

    from silk_ros.bench.pose_pairs import evaluate_pose
    from silk_ros.features import build_extractor
    from silk_ros.matching import build_matcher
    from silk_ros.odometry.config import OdometryConfig

    matcher = build_matcher({"name": "attention", "weights": matcher_weights, "backend": "onnxruntime"})
    options = replace(OdometryConfig().extractor, weights=silk_weights, top_k=max_keypoints, threads=1)
    extractor = build_extractor(options)
    if extractor.descriptor_dim != matcher.config.descriptor_dim:
        extractor = build_extractor(replace(options, context_scale=0.0))
    matchers = {"mnn": build_matcher("mnn"), "matcher": matcher}
    return {name: evaluate_pose(extractor, pairs, matcher=m) for name, m in matchers.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.pose_check", description=__doc__.split("\n")[0])
    parser.add_argument("--matcher-weights", default="matcher-mu", help="attention matcher weights (name or path)")
    parser.add_argument("--silk-weights", default="silk-mu")
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-keypoints", type=int, default=1024, help="the odometry's keypoint budget")
    parser.add_argument("--write", action="store_true", help="store the result in the matcher's weights file")
    args = parser.parse_args(argv)
    pairs = synthetic_pose_pairs(args.pairs, args.seed)
    result = compare_with_mnn(args.matcher_weights, args.silk_weights, pairs, args.max_keypoints)
    record = {
        "pairs": f"{len(pairs)} synthetic-room pairs (seed {args.seed}), held-out BSDS500 test photos as textures",
        "metric": "pose AUC@10 (SuperGlue protocol)",
        "matcher": result["matcher"]["auc@10"],
        "mnn": result["mnn"]["auc@10"],
        "silk_weights": args.silk_weights,
        "keypoints": "the odometry's selection (OdometryConfig().extractor)",
    }
    summary = {name: {k: r[k] for k in ("auc@5", "auc@10", "auc@20", "matches")} for name, r in result.items()}
    print(json.dumps({"pose_vs_mnn": record, "detail": summary}, indent=2))
    if args.write:
        from silk_ros.weights import load_weights, save_weights, shipped_weights

        path = Path(args.matcher_weights)
        if not path.suffix and not path.exists():
            path = shipped_weights(args.matcher_weights)
        weights = load_weights(path, kind="matcher")
        save_weights(path, "matcher", weights.architecture, weights.state_dict,
                     {**weights.provenance, "pose_vs_mnn": record})
        print(f"wrote pose_vs_mnn into {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
