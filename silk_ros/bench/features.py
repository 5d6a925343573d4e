"""``silk-vo bench features``: dense forward and whole ``extract()`` time per backend and resolution.

The hardware reference is the larger of the CPU's nominal peak FP32 rate: cores x clock (``cpu MHz`` of
/proc/cpuinfo) x FLOP per cycle from the vector ISA (two FMA pipes: 32 FLOP/cycle with 256-bit
AVX2/FMA, and on AMD Zen 4 with AVX-512, which is double-pumped 256-bit; 64 on Intel AVX-512 with two
512-bit FMA units) and the best large SGEMM (``torch.mm``) measured here, which exceeds the nominal
figure when the cores boost.  ``x peak`` = measured dense time / (2 * MACs / peak).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ..features import SilkExtractor, load_silk_model, multiply_accumulates

SIZES = ((240, 320), (480, 640))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", default="silk-mu", help="shipped weights name or file")
    parser.add_argument(
        "--backends", default="onnxruntime,onnxruntime-int8,torch",
        help="comma-separated backends; onnxruntime-int8: ONNX Runtime with precision int8",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (adds fp16 rows on CUDA)")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per figure (median reported)")
    # 1500: the budget of the figures recorded in BENCHMARKS.md (the odometry keeps 1000).
    parser.add_argument("--top-k", type=int, default=1500, help="keypoints kept per image")
    parser.add_argument(
        "--allow-untrained", action="store_true", help="time random weights when no trained file exists (timing only)"
    )


def nominal_peak_gflops() -> tuple[float, str]:
    """Cores x MHz x FLOP/cycle, with the reasoning as a string (for the report)."""
    import os

    info = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    mhz = next((float(line.split(":")[1]) for line in info.splitlines() if line.startswith("cpu MHz")), 0.0)
    flags = next((line.split(":")[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    cores = os.cpu_count() or 1
    if "avx512f" in flags and "GenuineIntel" in info:
        per_cycle = 64
    elif "fma" in flags:
        per_cycle = 32
    else:
        per_cycle = 8
    return cores * mhz * per_cycle / 1000, f"{cores} cores x {mhz:.0f} MHz x {per_cycle} FLOP/cycle"


def measured_peak_gflops(seconds: float = 2.0) -> float:
    """Best SGEMM rate over ~``seconds`` (n = 2048): a practical FP32 peak for this machine."""
    n = 2048
    a, b = torch.rand(n, n), torch.rand(n, n)
    torch.mm(a, b)
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n**3 / (time.perf_counter() - start))
    return best / 1e9


def _median_ms(fn, repeats: int) -> float:
    fn()
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def _test_image(height: int, width: int) -> np.ndarray:
    """A real-looking textured image (smoothed noise), so top-k and sampling see realistic maps."""
    import cv2

    rng = np.random.default_rng(0)
    noise = rng.random((height // 4, width // 4)).astype(np.float32)
    image = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(image * 255, 0, 255).astype(np.uint8)


def run(args: argparse.Namespace) -> tuple[dict, str]:
    weights = "untrained" if args.allow_untrained else args.weights
    model = load_silk_model(weights, allow_untrained=args.allow_untrained)
    nominal, peak_how = nominal_peak_gflops()
    sgemm = measured_peak_gflops()
    # Boost clocks run above the nominal MHz: when a real SGEMM beats the nominal figure, it is the peak.
    peak = max(nominal, sgemm)
    variants = [(b.removesuffix("-int8"), False, "int8" if b.endswith("-int8") else "fp32")
                for b in args.backends.split(",")]
    if args.device.startswith("cuda"):
        variants = [v for v in variants if v[2] == "fp32"] + [("torch", True, "fp32")]
    rows = []
    results = {
        "peak_gflops": peak,
        "peak_gflops_nominal": nominal,
        "sgemm_gflops": sgemm,
        "model": model.config.name,
        "rows": [],
    }
    for backend, fp16, precision in variants:
        options = {"backend": backend, "device": args.device, "fp16": fp16, "top_k": args.top_k, "precision": precision}
        # 8-bit models are made from a weights file (features.quantize), not from a network in memory
        options.update({"weights": weights} if precision == "int8" else {"model": model})
        # The network alone: extract() against its dense pass.
        extractor = SilkExtractor(**options, context_scale=0.0, refine_matches=False)
        # The odometry's extractor: context descriptors (a second pass at 1/4 the pixels).
        with_context = SilkExtractor(**options, refine_matches=False)
        # The extractor's default: context + descriptor windows for refined matches (the dense descriptor head).
        default = SilkExtractor(**options)
        for height, width in SIZES:
            image = _test_image(height, width)
            dense_ms = _median_ms(lambda: extractor.dense(image), args.repeats)  # noqa: B023
            extract_ms = _median_ms(lambda: extractor.extract(image), args.repeats)  # noqa: B023
            context_ms = _median_ms(lambda: with_context.extract(image), args.repeats)  # noqa: B023
            default_ms = _median_ms(lambda: default.extract(image), args.repeats)  # noqa: B023
            macs = multiply_accumulates(model.config, height, width)
            roofline_ms = 2 * macs / (peak * 1e9) * 1000
            row = {
                "backend": extractor.backend,
                "size": f"{height}x{width}",
                "dense_ms": dense_ms,
                "extract_ms": extract_ms,
                "extract_overhead_pct": 100 * (extract_ms / dense_ms - 1),
                "extract_with_context_ms": context_ms,
                "extract_default_ms": default_ms,
                "gmacs": macs / 1e9,
                "ratio_to_peak": dense_ms / roofline_ms,
            }
            results["rows"].append(row)
            rows.append(
                f"| {row['backend']} | {row['size']} | {dense_ms:.1f} | {extract_ms:.1f} | "
                f"{row['extract_overhead_pct']:+.1f}% | {context_ms:.1f} | {default_ms:.1f} | {row['gmacs']:.2f} | "
                f"{row['ratio_to_peak']:.1f}x |"
            )
    markdown = "\n".join(
        [
            f"Model {model.config.name}, top-k {args.top_k}, median of {args.repeats} runs, torch threads "
            f"{torch.get_num_threads()}. Peak FP32 {peak:.0f} GFLOP/s = the larger of the nominal {nominal:.0f} "
            f"({peak_how}) and the best 2048^3 SGEMM measured here ({sgemm:.0f}, torch.mm, all threads; boost "
            "clocks exceed the nominal MHz). 'x peak' = dense time / (2 x MACs / peak): 1.0x would be the roofline. "
            "extract() runs the trunk and the keypoint head densely and the descriptor head at the top-k keypoints "
            "only, so it can beat the dense forward. 'extract() + context' is the odometry's extractor: context "
            f"descriptors (x{with_context.config.context_scale:g}) add a pass on the shrunk image. '+ match windows' "
            "is the extractor's default: the descriptor head runs densely for each keypoint's 5x5 window of "
            "descriptors (refined matches). '-int8' rows: ONNX Runtime with `precision: int8` (8-bit convolutions, "
            "features.quantize); their 'x peak' is against the float32 peak, so below 1.0x is faster than the "
            "float32 roofline.",
            "",
            "| backend | input | dense forward ms | extract() ms | extract overhead | extract() + context ms | "
            "+ match windows ms | GMAC/frame | x peak |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "Targets: fastest backend <= 80 ms (240x320) and <= 320 ms (480x640), with context too; extract() "
            "within 15% of the dense forward.",
        ]
    )
    return results, markdown
