"""``silk-vo bench homography``: SiLK's HPatches protocol for SiLK-µ, OpenCV SIFT and OpenCV ORB.

Pairs: HPatches v_churchill and Oxford graf, image 1 against 2..6, resized so the short side is 480 px
(homographies rescaled).  Every method keeps at most ``--max-keypoints`` per image; matches are mutual
nearest neighbours (cosine for SiLK and RootSIFT, Hamming for ORB); the homography is OpenCV RANSAC
(3 px).  Metrics, averaged over pairs:

* repeatability@t: keypoints seen by both images with a detection within t px (SuperPoint's definition);
* MMA@t: fraction of MNN matches whose reprojection error under the true homography is <= t px;
* homography accuracy@t: fraction of pairs whose mean corner error (corners at (0,0) .. (w-1, h-1)) <= t;
* AUC@t: area under the corner-error curve up to t px.
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
from .pair_data import homography_pairs

__all__ = ["add_arguments", "run", "build_methods", "evaluate_method"]

PX = (1, 2, 3)
AUC_PX = (1, 3, 5)
#: Paper reference (Gleize et al. 2023, Table 7, VGGnp-µ on full HPatches); quoted, not measured here.
PAPER_MU = {"repeatability@1": 0.64, "homography_accuracy@1": 0.56, "mma@1": 0.40}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None, help="shared data root (default ../shared/data)")
    parser.add_argument("--silk-weights", default="silk-mu", help="SiLK weights name or path")
    parser.add_argument("--max-keypoints", type=int, default=2000, help="keypoints per image, every method")
    parser.add_argument("--short-side", type=int, default=480)
    parser.add_argument("--ransac-px", type=float, default=3.0)
    parser.add_argument("--methods", default="silk,sift,orb", help="comma-separated subset of silk,sift,orb")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for the SiLK backend")


def build_methods(names: list[str], max_keypoints: int, silk_weights: str = "silk-mu", threads: int = 1) -> dict:
    """{label: extractor} with the one ``extract(image) -> Features`` interface."""
    from ..features import SilkExtractor
    from ..features.classic import ClassicExtractor

    methods = {}
    for name in names:
        if name == "silk":
            methods[f"SiLK-µ ({silk_weights})"] = SilkExtractor(weights=silk_weights, top_k=max_keypoints,
                                                               threads=threads)
        elif name in ("sift", "orb"):
            methods[f"OpenCV {name.upper()}"] = ClassicExtractor(name, top_k=max_keypoints)
        else:
            raise ValueError(f"unknown method '{name}' (expected silk, sift or orb)")
    return methods


def evaluate_method(extractor, pairs, ransac_px: float = 3.0, progress: str | None = None) -> dict:
    """All homography metrics of one extractor over the pairs (MNN matching)."""
    matcher = build_matcher("mnn")
    rows = {f"repeatability@{t}": [] for t in PX}
    rows.update({f"mma@{t}": [] for t in PX})
    corner_errors, keypoints, matches, times = [], [], [], []
    cache: dict[int, object] = {}
    for pair in tqdm(pairs, desc=progress, disable=progress is None, leave=False):
        start = time.perf_counter()
        if id(pair.image0) not in cache:
            cache[id(pair.image0)] = extractor.extract(pair.image0)
        f0 = cache[id(pair.image0)]
        f1 = extractor.extract(pair.image1)
        times.append((time.perf_counter() - start) * 1000)
        m = matcher(f0, f1)
        p0, p1 = m.points(f0, f1)
        keypoints.append((len(f0) + len(f1)) / 2)
        matches.append(len(m))
        for t in PX:
            rows[f"repeatability@{t}"].append(
                mm.repeatability(f0.keypoints_xy, f1.keypoints_xy, pair.h_1_0, pair.image0.shape, pair.image1.shape, t)
            )
        for t, value in mm.mean_matching_accuracy(p0, p1, pair.h_1_0, PX).items():
            rows[f"mma@{t}"].append(value)
        h_est, _ = mm.estimate_homography(p0, p1, ransac_px)
        corner_errors.append(mm.homography_corner_error(h_est, pair.h_1_0, pair.image0.shape))
    result = {key: float(np.mean(values)) for key, values in rows.items()}
    result.update({f"homography_accuracy@{t}": v for t, v in mm.accuracy_at(corner_errors, PX).items()})
    result.update({f"auc@{t}": v for t, v in zip(AUC_PX, mm.auc(corner_errors, AUC_PX), strict=True)})
    result.update(
        keypoints=float(np.mean(keypoints)),
        matches=float(np.mean(matches)),
        extract_ms=float(np.median(times)),
        corner_errors=[float(e) for e in corner_errors],
    )
    return result


def run(args: argparse.Namespace) -> tuple[dict, str]:
    root = args.data or shared_data_root()
    pairs = homography_pairs(root, short_side=args.short_side)
    methods = build_methods(args.methods.split(","), args.max_keypoints, args.silk_weights, args.threads)
    results = {
        "pairs": [p.name for p in pairs],
        "protocol": {"short_side": args.short_side, "max_keypoints": args.max_keypoints, "matcher": "mnn",
                     "ransac_px": args.ransac_px},
        "methods": {},
        "paper_vggnp_mu_full_hpatches": PAPER_MU,
    }
    for label, extractor in methods.items():
        results["methods"][label] = evaluate_method(extractor, pairs, args.ransac_px, progress=label)
    return results, markdown(results)


def markdown(results: dict) -> str:
    cols = [f"repeatability@{t}" for t in PX] + [f"mma@{t}" for t in PX]
    cols += [f"homography_accuracy@{t}" for t in PX] + [f"auc@{t}" for t in AUC_PX]
    short = {c: c.replace("repeatability", "rep").replace("homography_accuracy", "H acc") for c in cols}
    lines = [
        f"{len(results['pairs'])} pairs (HPatches v_churchill, Oxford graf; 1 vs 2..6), short side "
        f"{results['protocol']['short_side']} px, <= {results['protocol']['max_keypoints']} keypoints per image, "
        f"MNN matches, OpenCV RANSAC {results['protocol']['ransac_px']} px.",
        "",
        "| method | kpts | matches | " + " | ".join(short[c] for c in cols) + " | extract ms |",
        "|---" * (len(cols) + 4) + "|",
    ]
    for label, r in results["methods"].items():
        values = " | ".join(f"{r[c]:.3f}" for c in cols)
        lines.append(f"| {label} | {r['keypoints']:.0f} | {r['matches']:.0f} | {values} | {r['extract_ms']:.0f} |")
    paper = results["paper_vggnp_mu_full_hpatches"]
    lines += [
        "",
        f"Reference (not measured here): SiLK paper Table 7, VGGnp-µ on the full HPatches: repeatability@1 "
        f"{paper['repeatability@1']}, homography accuracy@1 {paper['homography_accuracy@1']}, MMA@1 {paper['mma@1']}.",
    ]
    return "\n".join(lines)
