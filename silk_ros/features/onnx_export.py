"""ONNX export of the (fused) SiLK network with dynamic batch, height and width."""

from __future__ import annotations

import io
import os
import warnings

import torch
from torch import nn

from .fusion import FusedSilk, KeypointsAndFeatures
from .model import SilkNet

__all__ = ["export_onnx", "export_keypoints_and_features", "ONNX_OPSET"]

ONNX_OPSET = 17


def _export(module: nn.Module, target: str | os.PathLike | io.BytesIO, outputs: dict[str, dict[int, str]]) -> None:
    module = module.float().cpu().eval()
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.rand(1, 1, 64, 64),),
            target if isinstance(target, io.BytesIO) else os.fspath(target),
            input_names=["image"],
            output_names=list(outputs),
            dynamic_axes={"image": axes, **outputs},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )


def _fused(model: SilkNet | FusedSilk) -> FusedSilk:
    return model if isinstance(model, FusedSilk) else FusedSilk.from_model(model.eval())


def export_onnx(model: SilkNet | FusedSilk, target: str | os.PathLike | io.BytesIO) -> None:
    """The dense network for other runtimes: input ``image`` (B, 1, H, W) float32 in [0, 1]; outputs
    ``logits`` (B, 1, H-2b, W-2b) and ``descriptors`` (B, D, H-2b, W-2b), raw (not normalised)."""
    axes = {0: "batch", 2: "height", 3: "width"}
    _export(_fused(model), target, {"logits": axes, "descriptors": axes})


def export_keypoints_and_features(model: SilkNet | FusedSilk, target: str | os.PathLike | io.BytesIO) -> None:
    """What the extractor runs: outputs ``logits`` (B, 1, H-2b, W-2b) and channels-last trunk ``features``
    (B, H-2b+2, W-2b+2, C); the descriptors are computed at the keypoints only (``SparseDescriptorHead``)."""
    _export(
        KeypointsAndFeatures(_fused(model)),
        target,
        {"logits": {0: "batch", 2: "height", 3: "width"}, "features": {0: "batch", 1: "height", 2: "width"}},
    )
