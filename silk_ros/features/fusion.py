"""Inference-time fusion of SilkNet: exact, and faster on every backend.

Because the convolutions are unpadded, a BatchNorm that follows a ReLU can be folded into the *next*
convolution exactly (``conv(a * r + c) = conv'(r)`` with the per-input-channel scale ``a`` in the
weights and the shift ``c`` summed into the bias): there is no zero padding for the shift to miss.
The two heads' first convolutions are concatenated into one, and their 1x1 output layers become one
block-diagonal 1x1 convolution, so the fused network is a plain Conv/ReLU chain with one output:
channel 0 is the keypoint logit, channels 1.. the raw descriptors.
"""

from __future__ import annotations

import torch
from torch import nn

from .model import SilkNet

__all__ = ["FusedSilk"]


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


class FusedSilk(nn.Module):
    """``image (B, 1, H, W) -> (logits (B, 1, h, w), raw descriptors (B, D, h, w))``, equal to SilkNet in eval."""

    def __init__(self, body: nn.Sequential, border: int, descriptor_dim: int):
        super().__init__()
        self.body = body
        self.border = border
        self.descriptor_dim = descriptor_dim

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
        heads = (model.keypoint_head, model.descriptor_head)
        # First head layers side by side: one 3x3 conv with both heads' latent channels.
        first = [_fold_input_affine(head[0][0], scale, shift) for head in heads]
        layers += [_conv(torch.cat([w for w, _ in first]), torch.cat([b for _, b in first])), nn.ReLU(inplace=True)]
        # Output layers: block-diagonal 1x1 conv, the latent BN folded in front, the output BN behind.
        weights, biases = [], []
        latent = [head[0][2].num_features for head in heads]
        offset = 0
        for head, width in zip(heads, latent, strict=True):
            lat_scale, lat_shift = _bn_affine(head[0][2])
            out_conv, out_bn = head[1][0], head[1][1]
            w, b = _fold_input_affine(out_conv, lat_scale, lat_shift)
            out_scale, out_shift = _bn_affine(out_bn)
            w = w * out_scale[:, None, None, None]
            b = b * out_scale + out_shift
            padded = torch.zeros(w.shape[0], sum(latent), 1, 1, dtype=w.dtype)
            padded[:, offset : offset + width] = w
            weights.append(padded)
            biases.append(b)
            offset += width
        layers.append(_conv(torch.cat(weights), torch.cat(biases)))
        return cls(nn.Sequential(*layers), model.border, model.config.descriptor_dim).eval()

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.body(image)
        return out[:, :1], out[:, 1:]
