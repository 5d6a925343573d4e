"""``silk-vo bench pose-pairs``: relative pose AUC@5/10/20 deg for SiLK-µ (MNN, the ratio test and the
shipped attention matcher), OpenCV SIFT with RootSIFT descriptors (MNN and the ratio test) and OpenCV ORB.

SuperGlue's protocol: the matches of each method's matcher (MNN unless it names another), essential matrix
by OpenCV RANSAC on normalised coordinates (threshold 0.5 px / mean focal), ``recoverPose``; pose error =
max(rotation angle error, translation direction angle error), a failed estimate counts as an infinite error;
AUC of the error curve up to 5 / 10 / 20 degrees.  Pairs: the 15 ScanNet sample pairs (SuperGlue's pairs
file, ground-truth T_0to1) and Strecha scenes (consecutive views within each scene), long side resized to
``--max-side`` px (intrinsics rescaled).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..datasets.paths import shared_data_root
from ..evaluation import matching_metrics as mm
from ..matching import build_matcher
from .homography import add_method_arguments, build_methods
from .pair_data import pose_pairs

__all__ = ["add_arguments", "run", "evaluate_pose"]

DEGREES = (5, 10, 20)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None, help="shared data root (default ../shared/data)")
    add_method_arguments(parser)
    parser.add_argument("--max-side", type=int, default=640)
    parser.add_argument("--ransac-px", type=float, default=0.5, help="essential-matrix threshold in pixels")


def evaluate_pose(extractor, pairs, ransac_px: float = 0.5, progress: str | None = None, matcher=None) -> dict:
    matcher = matcher or build_matcher("mnn")
    errors, r_errors, t_errors, matches, times = [], [], [], [], []
    for pair in tqdm(pairs, desc=progress, disable=progress is None, leave=False):
        start = time.perf_counter()
        f0, f1 = extractor.extract(pair.image0), extractor.extract(pair.image1)
        times.append((time.perf_counter() - start) * 500)  # ms per image
        m = matcher(f0, f1)
        p0, p1 = m.points(f0, f1)
        r, t, _ = mm.estimate_relative_pose(p0, p1, pair.k0, pair.k1, ransac_px)
        err, r_err, t_err = mm.relative_pose_error(pair.t_1_0, r, t)
        errors.append(err)
        r_errors.append(r_err)
        t_errors.append(t_err)
        matches.append(len(m))
    result = {f"auc@{d}": v for d, v in zip(DEGREES, mm.auc(errors, DEGREES), strict=True)}
    result.update(
        pairs=len(pairs),
        matches=float(np.mean(matches)),
        median_rotation_error=float(np.median(r_errors)),
        median_translation_error=float(np.median(t_errors)),
        extract_ms=float(np.median(times)),
        pose_errors=[float(e) for e in errors],
    )
    return result


def run(args: argparse.Namespace) -> tuple[dict, str]:
    root = args.data or shared_data_root()
    groups = pose_pairs(root, max_side=args.max_side)
    groups["all"] = [p for name in ("scannet", "strecha") for p in groups[name]]
    methods = build_methods(args.methods.split(","), args.max_keypoints, args.silk_weights, args.threads,
                            args.matcher_weights)
    results = {
        "protocol": {"max_side": args.max_side, "max_keypoints": args.max_keypoints, "ransac_px": args.ransac_px},
        "pairs": {name: len(pairs) for name, pairs in groups.items()},
        "methods": {},
    }
    for label, (extractor, matcher) in methods.items():
        per_group = {
            name: evaluate_pose(extractor, groups[name], args.ransac_px, progress=f"{label} {name}", matcher=matcher)
            for name in ("scannet", "strecha")
        }
        errors = per_group["scannet"]["pose_errors"] + per_group["strecha"]["pose_errors"]
        per_group["all"] = {f"auc@{d}": v for d, v in zip(DEGREES, mm.auc(errors, DEGREES), strict=True)}
        results["methods"][label] = per_group
    return results, markdown(results)


def markdown(results: dict) -> str:
    p = results["protocol"]
    lines = [
        f"Pose AUC (%) at 5/10/20 deg, SuperGlue protocol (the matcher each row names, OpenCV RANSAC essential "
        f"matrix, {p['ransac_px']} px); "
        f"ScanNet sample {results['pairs']['scannet']} pairs, Strecha {results['pairs']['strecha']} consecutive "
        f"pairs; long side {p['max_side']} px, <= {p['max_keypoints']} keypoints per image.",
        "",
        "| method | ScanNet @5 | @10 | @20 | Strecha @5 | @10 | @20 | all @5 | @10 | @20 "
        "| matches (ScanNet / Strecha) |",
        "|---" * 11 + "|",
    ]
    for label, r in results["methods"].items():
        cells = [f"{100 * r[g][f'auc@{d}']:.1f}" for g in ("scannet", "strecha", "all") for d in DEGREES]
        lines.append(
            f"| {label} | " + " | ".join(cells) + f" | {r['scannet']['matches']:.0f} / {r['strecha']['matches']:.0f} |"
        )
    return "\n".join(lines)
