"""Inference-time fusion of SilkNet: exact, and faster on every backend.

Because the convolutions are unpadded, a BatchNorm that follows a ReLU can be folded into the *next*
convolution exactly (``conv(a * r + c) = conv'(r)`` with the per-input-channel scale ``a`` in the
weights and the shift ``c`` summed into the bias): there is no zero padding for the shift to miss.
The fused network is a plain Conv/ReLU chain: a trunk (the backbone), then per head one 3x3 conv,
a ReLU and one 1x1 conv (the head's two BatchNorms folded into it).

Inference splits it where the work is: the extractor runs the trunk and the keypoint head densely
(:class:`KeypointsAndFeatures`) and the descriptor head only at the chosen keypoints
(:class:`SparseDescriptorHead`, numpy).  The descriptor head is a quarter of the dense multiply-adds,
and a descriptor is needed at about 1,000 of 75,000 cells.  Both views give the dense network's values.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .model import SilkNet
from .runtime import one_blas_thread

__all__ = ["FusedSilk", "KeypointsAndFeatures", "SparseDescriptorHead"]


def _bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - scale * bn.running_mean


def _fold_input_affine(conv: nn.Conv2d, scale: torch.Tensor, shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and bias of ``conv(scale * x + shift)`` as one convolution of ``x``."""
    weight = conv.weight * scale[None, :, None, None]
    bias = conv.bias + (conv.weight * shift[None, :, None, None]).sum(dim=(1, 2, 3))
    return weight, bias


def _conv(weight: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
    out, cin, k, _ = weight.shape
    conv = nn.Conv2d(cin, out, k, padding=0)
    conv.weight.data.copy_(weight)
    conv.bias.data.copy_(bias)
    return conv


def _fused_head(head: nn.Sequential, scale: torch.Tensor, shift: torch.Tensor) -> nn.Sequential:
    """3x3 conv (the trunk's last BatchNorm folded in), ReLU, 1x1 conv (the latent and output BatchNorms)."""
    latent_conv, latent_bn = head[0][0], head[0][2]
    first = _conv(*_fold_input_affine(latent_conv, scale, shift))
    out_conv, out_bn = head[1][0], head[1][1]
    weight, bias = _fold_input_affine(out_conv, *_bn_affine(latent_bn))
    out_scale, out_shift = _bn_affine(out_bn)
    second = _conv(weight * out_scale[:, None, None, None], bias * out_scale + out_shift)
    return nn.Sequential(first, nn.ReLU(inplace=True), second)


class FusedSilk(nn.Module):
    """``image (B, 1, H, W) -> (logits (B, 1, h, w), raw descriptors (B, D, h, w))``, equal to SilkNet in eval."""

    def __init__(
        self, trunk: nn.Sequential, keypoint_head: nn.Sequential, descriptor_head: nn.Sequential, border: int
    ):
        super().__init__()
        self.trunk = trunk
        self.keypoint_head = keypoint_head
        self.descriptor_head = descriptor_head
        self.border = border
        self.descriptor_dim = descriptor_head[-1].out_channels

    @classmethod
    @torch.no_grad()
    def from_model(cls, model: SilkNet) -> FusedSilk:
        layers: list[nn.Module] = []
        scale = shift = None
        for block in model.backbone:
            conv, bn = block[0], block[2]
            if scale is None:
                weight, bias = conv.weight.clone(), conv.bias.clone()
            else:
                weight, bias = _fold_input_affine(conv, scale, shift)
            layers += [_conv(weight, bias), nn.ReLU(inplace=True)]
            scale, shift = _bn_affine(bn)
        heads = [_fused_head(head, scale, shift) for head in (model.keypoint_head, model.descriptor_head)]
        return cls(nn.Sequential(*layers), *heads, model.border).eval()

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.trunk(image)
        return self.keypoint_head(features), self.descriptor_head(features)


class KeypointsAndFeatures(nn.Module):
    """The dense part of inference: ``image -> (logits (B, 1, h, w), trunk features (B, h + 2, w + 2, C))``.

    The features come channels-last so that a keypoint's 3x3 neighbourhood is nine contiguous rows
    (ONNX Runtime's convolutions are channels-last inside, so this layout costs nothing there)."""

    def __init__(self, fused: FusedSilk):
        super().__init__()
        self.trunk = fused.trunk
        self.keypoint_head = fused.keypoint_head

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.trunk(image)
        return self.keypoint_head(features), features.permute(0, 2, 3, 1)


class SparseDescriptorHead:
    """The descriptor head evaluated at chosen cells only: ``(features (h + 2, w + 2, C), rows, cols) -> (N, D)``.

    Cell ``(r, c)`` of the dense output sees the trunk features ``[r : r + 3, c : c + 3]``: its first
    layer is one (N, 9C) x (9C, L) product, its second an (N, L) x (L, D) one."""

    def __init__(self, fused: FusedSilk):
        first, second = fused.descriptor_head[0], fused.descriptor_head[2]
        weight = first.weight.detach().float().cpu().numpy()  # (L, C, 3, 3) -> rows ordered (ky, kx, c)
        self.first_weight = np.ascontiguousarray(weight.transpose(2, 3, 1, 0).reshape(-1, weight.shape[0]))
        self.first_bias = first.bias.detach().float().cpu().numpy()
        self.second_weight = np.ascontiguousarray(second.weight.detach().float().cpu().numpy()[:, :, 0, 0].T)
        self.second_bias = second.bias.detach().float().cpu().numpy()
        self.kernel = weight.shape[2]

    def __call__(self, features: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        height, width, channels = features.shape
        k = self.kernel
        window = (np.arange(k)[:, None] * width + np.arange(k)[None, :]).reshape(-1)
        index = (rows * width + cols)[:, None] + window
        patches = features.reshape(-1, channels)[index.reshape(-1)].reshape(len(rows), -1)
        with one_blas_thread():
            latent = np.maximum(patches @ self.first_weight + self.first_bias, 0.0)
            return (latent @ self.second_weight + self.second_bias).astype(np.float32, copy=False)
