"""``silk-vo bench matchers``: every matcher on the same SiLK-µ features of real pairs.

Rows: MNN, ratio test, double-softmax (SiLK's own), the shipped attention matcher and its ablation: trained
with and without the matchability reweighting (bias + value), three training seeds each.  Every row matches the
odometry's descriptors (context, ``ExtractorConfig.context_scale``) except a learned matcher trained on the network's
own, which gets those.  Columns:

* homography pairs (HPatches v_churchill, Oxford graf: image 1 against 2..6): match count, precision
  (reprojection error < 3 px under the true homography), homography AUC@1/3/5 px of the mean corner
  error of a RANSAC homography;
* pose pairs (ScanNet sample, Strecha consecutive views): match count, precision (symmetric epipolar
  distance < 5e-4 in normalised coordinates, SuperGlue's convention), pose AUC@5/10/20 deg of
  max(rotation, translation-direction) error of a RANSAC essential matrix;
* CPU milliseconds per pair at 512 / 1024 / 2048 keypoints per image (median over repeats; attention:
  PyTorch and ONNX Runtime, the faster reported).

Images are resized so the longer side is ``--max-side`` px (intrinsics and homographies follow).  No
parameter is tuned on these pairs: thresholds are the matchers' defaults.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..datasets.paths import REPO_ROOT, shared_data_root
from ..evaluation import matching_metrics as mm
from ..features import PAPER_SELECTION, SilkExtractor
from ..features.extractor import weights_path
from ..features.quantize import weights_sha256
from ..features.types import Features
from ..geometry.pose import skew
from ..matching import build_matcher
from . import pair_data
from .pair_data import HomographyPair, PosePair

ABLATION_DIR = REPO_ROOT / "training" / "runs"
#: the shipped file (8,000 steps) and the ablation it came from, written by ``python -m training.matcher --config
#: training/configs/matcher_mu_context_wide.yaml --variant V --seed S`` (4,000 steps, homography + 3D room pairs, on
#: the shipped SiLK-µ's context descriptors): with and without the matchability reweighting (bias + value)
DEFAULT_ATTENTION = (
    "attention (shipped: matcher-mu)=matcher-mu",
    *(
        f"attention ({label}, seed {seed})={ABLATION_DIR / f'matcher_context_wide_{variant}_s{seed}' / 'matcher.pt'}"
        for seed in (0, 1, 2)
        for variant, label in (("none", "no reweighting"), ("both", "bias + value"))
    ),
)
CLASSIC = (("MNN", "mnn"), ("ratio test 0.9", {"name": "ratio", "ratio": 0.9}), ("double-softmax", "double_softmax"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None, help="shared data root (default: ../shared/data)")
    parser.add_argument("--silk-weights", default="silk-mu")
    parser.add_argument("--top-k", type=int, default=1024, help="keypoints per image for the accuracy columns")
    parser.add_argument("--max-side", type=int, default=640, help="resize images so the longer side is this")
    parser.add_argument(
        "--attention",
        action="append",
        metavar="LABEL=WEIGHTS",
        help="attention matcher rows (repeatable; default: the shipped file and the ablation files)",
    )
    parser.add_argument("--timing-sizes", default="512,1024,2048")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per matcher and size (median)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch / ONNX Runtime")
    parser.add_argument(
        "--features-cache",
        type=Path,
        help="reuse SiLK features from this .npz when it was written for the same weights and settings",
    )


# ----------------------------------------------------------------------------------------------------
# data (shared readers)


def load_pairs(root: Path, max_side: int) -> tuple[list[HomographyPair], list[PosePair]]:
    """The shared readers (``pair_data``), long side resized to ``max_side`` for both kinds."""
    poses = pair_data.pose_pairs(root, max_side)
    return pair_data.homography_pairs(root, short_side=None, max_side=max_side), poses["scannet"] + poses["strecha"]


# ----------------------------------------------------------------------------------------------------
# evaluation


def _epipolar_precision(p0: np.ndarray, p1: np.ndarray, pair: PosePair, threshold: float = 5e-4) -> float:
    if len(p0) == 0:
        return 0.0
    n0 = cv2.undistortPoints(p0[:, None].astype(np.float64), pair.k0, None)[:, 0]
    n1 = cv2.undistortPoints(p1[:, None].astype(np.float64), pair.k1, None)[:, 0]
    e = skew(pair.t_1_0[:3, 3]) @ pair.t_1_0[:3, :3]
    x0, x1 = np.c_[n0, np.ones(len(n0))], np.c_[n1, np.ones(len(n1))]
    ex0, etx1 = x0 @ e.T, x1 @ e
    num = np.sum(x1 * ex0, axis=1) ** 2
    d = num * (1 / (ex0[:, 0] ** 2 + ex0[:, 1] ** 2) + 1 / (etx1[:, 0] ** 2 + etx1[:, 1] ** 2))
    return float((d < threshold).mean())


def evaluate_homography(matcher, pairs, features) -> dict:
    counts, precisions, errors = [], [], []
    for pair, (f0, f1) in zip(pairs, features, strict=True):
        matches = matcher(f0, f1)
        p0, p1 = matches.points(f0, f1)
        counts.append(len(matches))
        errors_px = mm.match_reprojection_errors(p0, p1, pair.h_1_0)
        precisions.append(float((errors_px < 3.0).mean()) if len(p0) else 0.0)
        estimate, _ = mm.estimate_homography(p0, p1, 3.0)
        errors.append(mm.homography_corner_error(estimate, pair.h_1_0, pair.image0.shape))
    aucs = mm.auc(np.array(errors), (1, 3, 5))
    return {
        "matches": float(np.mean(counts)),
        "precision": float(np.mean(precisions)),
        **{f"auc@{t}px": float(a) for t, a in zip((1, 3, 5), aucs, strict=True)},
    }


def evaluate_pose(matcher, pairs, features) -> dict:
    counts, precisions, errors = [], [], []
    for pair, (f0, f1) in zip(pairs, features, strict=True):
        matches = matcher(f0, f1)
        p0, p1 = matches.points(f0, f1)
        counts.append(len(matches))
        precisions.append(_epipolar_precision(p0, p1, pair))
        errors.append(mm.relative_pose_error_from_matches(p0, p1, pair.k0, pair.k1, pair.t_1_0))
    aucs = mm.auc(np.array(errors), (5, 10, 20))
    return {
        "matches": float(np.mean(counts)),
        "precision": float(np.mean(precisions)),
        **{f"auc@{t}deg": float(a) for t, a in zip((5, 10, 20), aucs, strict=True)},
    }


def extract_all(extractor: SilkExtractor, pairs: list, args, cache_suffix: str = ""
                ) -> dict[str, tuple[Features, Features]]:
    """SiLK features of every pair (optionally cached, one file per kind of descriptor: ``cache_suffix`` is added to
    the cache file's name; extraction dominates the benchmark's run time)."""
    import hashlib

    c = extractor.config
    digest = weights_sha256(weights_path(c.weights))
    settings = f"{digest}|{c.top_k}|{c.nms_radius}|{c.subpixel}|{c.context_scale}|{c.context_weight}|{args.max_side}"
    key = hashlib.sha256(f"{settings}|{[p.name for p in pairs]}".encode()).hexdigest()[:16]
    cache = args.features_cache
    if cache and cache_suffix:
        cache = cache.with_name(cache.stem + cache_suffix + cache.suffix)
    if cache and cache.exists():
        data = np.load(cache, allow_pickle=False)
        if str(data["key"]) == key:
            return {
                p.name: tuple(
                    Features(data[f"{i}_{v}_xy"], data[f"{i}_{v}_s"], data[f"{i}_{v}_d"], tuple(data[f"{i}_{v}_hw"]))
                    for v in (0, 1)
                )
                for i, p in enumerate(pairs)
            }
    full = {}
    for pair in tqdm(pairs, desc="SiLK features", dynamic_ncols=True):
        full[pair.name] = (extractor.extract(pair.image0), extractor.extract(pair.image1))
    if cache:
        arrays = {"key": np.array(key)}
        for i, p in enumerate(pairs):
            for v, f in enumerate(full[p.name]):
                arrays.update(
                    {
                        f"{i}_{v}_xy": f.keypoints_xy,
                        f"{i}_{v}_s": f.scores,
                        f"{i}_{v}_d": f.descriptors,
                        f"{i}_{v}_hw": np.array(f.image_size),
                    }
                )
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **arrays)
    return full


def time_matcher(matcher, f0: Features, f1: Features, sizes: list[int], repeats: int) -> dict[int, float]:
    out = {}
    for n in sizes:
        a, b = f0.subset(np.arange(min(n, len(f0)))), f1.subset(np.arange(min(n, len(f1))))
        matcher(a, b)  # warm-up (ONNX session creation, allocations)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            matcher(a, b)
            times.append((time.perf_counter() - start) * 1000)
        out[n] = float(np.median(times))
    return out


def _attention_rows(specs: list[str], threads: int):
    rows = []
    for spec in specs:
        label, _, weights = spec.rpartition("=")
        if not label:
            raise ValueError(f"--attention wants LABEL=WEIGHTS, got '{spec}'")
        backends = {
            "torch": build_matcher(
                {"name": "attention", "weights": weights.strip(), "backend": "torch", "threads": threads}
            ),
            "onnxruntime": build_matcher(
                {"name": "attention", "weights": weights.strip(), "backend": "onnxruntime", "threads": threads}
            ),
        }
        rows.append((label.strip(), backends))
    return rows


def run(args: argparse.Namespace) -> tuple[dict, str]:
    import torch

    torch.set_num_threads(args.threads)
    root = args.data or shared_data_root()
    sizes = [int(s) for s in args.timing_sizes.split(",")]
    rows = [(label, {"numpy": build_matcher(config)}) for label, config in CLASSIC]
    rows += _attention_rows(args.attention or list(DEFAULT_ATTENTION), args.threads)
    # Accuracy on the default keypoint selection (NMS + sub-pixel: the other benches', the pose check's and the
    # attention matchers' training features); timing on the paper's selection, which keeps the full counts of the
    # timing sizes (NMS keeps fewer than 2,048 keypoints on small images).  Matches at the keypoints (no
    # descriptor-window refinement, which the feature cache does not keep): the rows compare matchers alone.
    extractors = {context: SilkExtractor(weights=args.silk_weights, top_k=args.top_k, threads=args.threads,
                                         refine_matches=False, **({} if context else {"context_scale": 0.0}))
                  for context in (True, False)}
    extractor = extractors[True]
    by_dim = {ex.descriptor_dim: (context, ex) for context, ex in extractors.items()}
    row_dims = {}
    for label, backends in rows:
        reference = next(iter(backends.values()))
        row_dims[label] = getattr(getattr(reference, "config", None), "descriptor_dim", extractor.descriptor_dim)
        if row_dims[label] not in by_dim:
            raise SystemExit(f"bench matchers: '{label}' takes {row_dims[label]}-d descriptors; SiLK gives "
                             f"{sorted(by_dim)}")
    h_pairs, p_pairs = load_pairs(root, args.max_side)
    features, timing_pairs = {}, {}
    for dim in sorted(set(row_dims.values())):  # only the kinds of descriptor some row takes
        context, ex = by_dim[dim]
        top = extract_all(ex, h_pairs + p_pairs, args, cache_suffix="" if context else "-own")
        features[dim] = ([top[p.name] for p in h_pairs], [top[p.name] for p in p_pairs])
        timing = SilkExtractor(weights=args.silk_weights, top_k=max(sizes), threads=args.threads,
                               **{**PAPER_SELECTION, "context_scale": ex.config.context_scale})
        timing_pairs[dim] = (timing.extract(p_pairs[0].image0), timing.extract(p_pairs[0].image1))

    c = extractor.config
    selection = f"NMS {c.nms_radius}" + (", sub-pixel" if c.subpixel else "") + f", context x{c.context_scale:g}"
    results: dict = {"top_k": args.top_k, "selection": selection,
                     "pairs": {"homography": len(h_pairs), "pose": len(p_pairs)}, "rows": {}}
    for label, backends in tqdm(rows, desc="matchers", dynamic_ncols=True):
        reference, dim = next(iter(backends.values())), row_dims[label]
        h_features, p_features = features[dim]
        timings = {name: time_matcher(m, *timing_pairs[dim], sizes, args.repeats) for name, m in backends.items()}
        fastest = {n: min((t[n], name) for name, t in timings.items()) for n in sizes}
        results["rows"][label] = {
            "descriptors": "context" if dim == extractor.descriptor_dim else "own",
            "homography": evaluate_homography(reference, h_pairs, h_features),
            "pose": evaluate_pose(reference, p_pairs, p_features),
            "ms": {str(n): {"ms": ms, "backend": name} for n, (ms, name) in fastest.items()},
            "ms_all_backends": {name: {str(n): v for n, v in t.items()} for name, t in timings.items()},
        }
    return results, markdown(results, sizes, extractor.backend, args)


def markdown(results: dict, sizes: list[int], silk_backend: str, args) -> str:
    n_h, n_p = results["pairs"]["homography"], results["pairs"]["pose"]
    head = (
        f"SiLK-µ features ({silk_backend}), top {results['top_k']} keypoints per image ({results['selection']}, "
        "context descriptors as the odometry's unless a row says 'own descriptors'; "
        f"timing: the paper's selection, full counts), "
        f"longer side {args.max_side} px; "
        f"{n_h} homography pairs (HPatches v_churchill + Oxford graf), {n_p} pose pairs (ScanNet sample + Strecha "
        f"consecutive views). Precision: reprojection < 3 px (homography) or epipolar < 5e-4 (pose). "
        f"Time: median of {args.repeats} runs, {args.threads} threads, fastest backend.\n\n"
    )
    columns = [
        "matcher",
        "H matches",
        "H prec",
        "H AUC@1",
        "@3",
        "@5",
        "pose matches",
        "pose prec",
        "pose AUC@5",
        "@10",
        "@20",
        *[f"ms@{n}" for n in sizes],
    ]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for label, row in results["rows"].items():
        h, p = row["homography"], row["pose"]
        cells = [
            label + (" (own descriptors)" if row.get("descriptors") == "own" else ""),
            f"{h['matches']:.0f}",
            f"{h['precision']:.3f}",
            *(f"{100 * h[f'auc@{t}px']:.1f}" for t in (1, 3, 5)),
            f"{p['matches']:.0f}",
            f"{p['precision']:.3f}",
            *(f"{100 * p[f'auc@{t}deg']:.1f}" for t in (5, 10, 20)),
            *(
                f"{row['ms'][str(n)]['ms']:.1f} ({row['ms'][str(n)]['backend'].replace('onnxruntime', 'ort')})"
                for n in sizes
            ),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"
