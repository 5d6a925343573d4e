"""``silk-vo export-onnx``."""

from __future__ import annotations

import argparse

from silk_ros.features.extractor import load_silk_model
from silk_ros.features.onnx_export import export_onnx


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", default="silk-mu", help="shipped weights name or weights file")
    parser.add_argument("--out", required=True, help="output .onnx path")


def run(args: argparse.Namespace) -> int:
    model = load_silk_model(args.weights)
    export_onnx(model, args.out)
    print(f"wrote {args.out} (inputs: image (B,1,H,W); outputs: logits, descriptors; border {model.border} px)")
    return 0
