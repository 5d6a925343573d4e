"""ONNX export of the (fused) SiLK network with dynamic batch, height and width."""

from __future__ import annotations

import io
import os
import warnings

import torch

from .fusion import FusedSilk
from .model import SilkNet

__all__ = ["export_onnx", "ONNX_OPSET"]

ONNX_OPSET = 17


def export_onnx(model: SilkNet | FusedSilk, target: str | os.PathLike | io.BytesIO, example_size: int = 64) -> None:
    """Write ``model`` as ONNX: input ``image`` (B, 1, H, W) float32 in [0, 1]; outputs ``logits``
    (B, 1, H-2b, W-2b) and ``descriptors`` (B, D, H-2b, W-2b), raw (not normalised)."""
    fused = model if isinstance(model, FusedSilk) else FusedSilk.from_model(model.eval())
    fused = fused.float().cpu().eval()
    example = torch.rand(1, 1, example_size, example_size)
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            fused,
            (example,),
            target if isinstance(target, io.BytesIO) else os.fspath(target),
            input_names=["image"],
            output_names=["logits", "descriptors"],
            dynamic_axes={"image": axes, "logits": axes, "descriptors": axes},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
