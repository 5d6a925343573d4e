"""``silk-vo bench homography``: SiLK's HPatches protocol for SiLK-µ (MNN, the ratio test and the
shipped attention matcher), OpenCV SIFT with RootSIFT descriptors (MNN and the ratio test) and OpenCV ORB.

Pairs: HPatches v_churchill and Oxford graf, image 1 against 2..6, resized so the short side is 480 px
(homographies rescaled).  Every method keeps at most ``--max-keypoints`` per image; matches are mutual
nearest neighbours (cosine for SiLK and RootSIFT, Hamming for ORB) unless the method names another matcher;
the homography is OpenCV RANSAC (3 px).  Metrics, averaged over pairs:

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
    add_method_arguments(parser)
    parser.add_argument("--short-side", type=int, default=480)
    parser.add_argument("--ransac-px", type=float, default=3.0)


#: Method names of the matching benchmarks (``--methods``): extractor, then ``+matcher`` where it is not MNN.
#: ``silk`` keeps SiLK's keypoints with the package's selection (``ExtractorConfig``: NMS, sub-pixel),
#: ``silk-paper`` with the paper's (every cell, integer positions).  ``silk`` describes each keypoint with context
#: (``ExtractorConfig.context_scale``), ``silk-own`` with the network's own descriptor only, as the attention matcher
#: does.  ``+ratio`` is Lowe's ratio test with its default (``RatioTest``: 0.9, mutual), SIFT's own matcher; for SiLK
#: it was chosen on the validation pose pairs of ``python -m training.pose_check`` (MODEL_CARD.md, "Matching
#: SiLK-µ"), never on these benchmarks.  ``+double_softmax`` is SiLK's own filter at its defaults (``DoubleSoftmax``:
#: the training temperature and a threshold chosen on the same validation rooms).  ``silk-int8`` is ``silk`` with
#: the network's 8-bit ONNX Runtime models (``precision: int8``, about half the network's time on a small CPU).
METHODS = ("silk", "silk+ratio", "silk+double_softmax", "silk-unrefined", "silk-unrefined+ratio", "silk-own",
           "silk-own+ratio", "silk-paper", "silk+attention", "silk-int8", "silk-int8+ratio", "sift", "sift+ratio",
           "orb")


def add_method_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--silk-weights", default="silk-mu", help="SiLK weights name or path")
    parser.add_argument("--matcher-weights", default="matcher-mu", help="attention matcher weights name or path")
    parser.add_argument("--max-keypoints", type=int, default=2000, help="keypoints per image, every method")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS))
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for the SiLK backend")


def build_methods(
    names: list[str], max_keypoints: int, silk_weights: str = "silk-mu", threads: int = 1,
    matcher_weights: str = "matcher-mu",
) -> dict:
    """{label: (extractor, matcher)}: every extractor has the one ``extract(image) -> Features`` interface, and
    every row says which descriptor and matcher it uses."""
    from ..features import PAPER_SELECTION, SilkExtractor
    from ..features.classic import ClassicExtractor
    from ..features.extractor import uses_context_descriptors

    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown} (expected some of {', '.join(METHODS)})")
    silk: dict[tuple[bool, bool, str], SilkExtractor] = {}
    methods = {}
    for name in names:
        extractor_name, _, matcher_name = name.partition("+")
        if name == "silk-paper":
            paper = SilkExtractor(weights=silk_weights, top_k=max_keypoints, threads=threads, **PAPER_SELECTION)
            methods[f"SiLK-µ ({silk_weights}, paper selection: no NMS) + MNN"] = (paper, build_matcher("mnn"))
        elif extractor_name in ("silk", "silk-own", "silk-unrefined", "silk-int8"):

            def silk_extractor(context: bool, refine: bool = True, precision: str = "fp32") -> SilkExtractor:
                if (context, refine, precision) not in silk:
                    overrides = ({} if context else {"context_scale": 0.0}) | {"refine_matches": refine,
                                                                               "precision": precision}
                    silk[context, refine, precision] = SilkExtractor(weights=silk_weights, top_k=max_keypoints,
                                                                     threads=threads, **overrides)
                return silk[context, refine, precision]

            matcher = _bench_matcher(matcher_name, matcher_weights)
            context = extractor_name != "silk-own"
            if matcher_name == "attention":  # an attention matcher takes the descriptors it was trained on
                context = uses_context_descriptors(matcher.config.descriptor_dim, silk_weights)
            precision = "int8" if extractor_name == "silk-int8" else "fp32"
            extractor = silk_extractor(context, extractor_name != "silk-unrefined", precision)
            label = f"SiLK-µ ({silk_weights}, {_silk_label(extractor.config)})"
            methods[f"{label} + {_matcher_label(matcher, matcher_weights)}"] = (extractor, matcher)
        elif extractor_name == "sift":
            matcher = _bench_matcher(matcher_name, matcher_weights)
            methods[f"OpenCV SIFT, RootSIFT descriptors + {_matcher_label(matcher, matcher_weights)}"] = (
                ClassicExtractor("sift", top_k=max_keypoints, root_sift=True), matcher)
        else:
            methods["OpenCV ORB + MNN (Hamming)"] = (ClassicExtractor("orb", top_k=max_keypoints),
                                                    build_matcher("mnn"))
    return methods


def _silk_label(config) -> str:
    """The row's SiLK keypoint selection and descriptors as built."""
    parts = [f"NMS {config.nms_radius}"] + (["sub-pixel"] if config.subpixel else [])
    if config.context_scale:
        parts.append(f"context x{config.context_scale:g} w{config.context_weight:g}")
    if config.refine_matches:
        parts.append("matches refined")
    if config.precision == "int8":
        parts.append("int8")
    return ", ".join(parts)


def _bench_matcher(name: str, matcher_weights: str):
    """The matcher a ``+name`` suffix asks for: MNN (no suffix), the ratio test, double-softmax or the attention
    matcher."""
    if name == "attention":
        return build_matcher({"name": "attention", "weights": matcher_weights, "backend": "onnxruntime"})
    return build_matcher(name or "mnn")


def _matcher_label(matcher, matcher_weights: str) -> str:
    """The row's matcher as built (its settings, not a restatement of their defaults)."""
    from ..matching.classic import DoubleSoftmax, MutualNearestNeighbour, RatioTest

    if isinstance(matcher, DoubleSoftmax):
        return f"double-softmax (T {matcher.temperature:g}, p > {matcher.threshold:g})"
    if isinstance(matcher, RatioTest):
        return f"ratio test {matcher.ratio}{' (mutual)' if matcher.mutual else ''}"
    if isinstance(matcher, MutualNearestNeighbour):
        return "MNN"
    return f"attention ({matcher_weights})"


def evaluate_method(extractor, pairs, ransac_px: float = 3.0, progress: str | None = None, matcher=None) -> dict:
    """All homography metrics of one extractor and matcher (default MNN) over the pairs."""
    matcher = matcher or build_matcher("mnn")
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
    methods = build_methods(args.methods.split(","), args.max_keypoints, args.silk_weights, args.threads,
                            args.matcher_weights)
    results = {
        "pairs": [p.name for p in pairs],
        "protocol": {"short_side": args.short_side, "max_keypoints": args.max_keypoints, "ransac_px": args.ransac_px},
        "methods": {},
        "paper_vggnp_mu_full_hpatches": PAPER_MU,
    }
    for label, (extractor, matcher) in methods.items():
        results["methods"][label] = evaluate_method(extractor, pairs, args.ransac_px, progress=label, matcher=matcher)
    return results, markdown(results)


def markdown(results: dict) -> str:
    cols = [f"repeatability@{t}" for t in PX] + [f"mma@{t}" for t in PX]
    cols += [f"homography_accuracy@{t}" for t in PX] + [f"auc@{t}" for t in AUC_PX]
    short = {c: c.replace("repeatability", "rep").replace("homography_accuracy", "H acc") for c in cols}
    lines = [
        f"{len(results['pairs'])} pairs (HPatches v_churchill, Oxford graf; 1 vs 2..6), short side "
        f"{results['protocol']['short_side']} px, <= {results['protocol']['max_keypoints']} keypoints per image, "
        f"the matcher each row names, OpenCV RANSAC {results['protocol']['ransac_px']} px.",
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
