"""The SiLK VGGnp network family (Gleize et al., ICCV 2023), written from the paper.

A fully-convolutional VGG with *no padding and no pooling*: every 3x3 convolution eats one pixel per
side, so the dense output is smaller than the input by ``2 * border`` in each dimension.  Blocks are
Conv -> ReLU -> BatchNorm.  Two heads share the backbone: a keypoint head (one logit per pixel,
sigmoid = probability that this pixel is matched correctly) and a descriptor head (raw descriptors,
L2-normalised at the sparse keypoints by the extractor).

Pixel-centre convention (used everywhere in silk_ros): pixel ``(x, y)`` of an image is the *centre*
of column ``x`` and row ``y`` (OpenCV's convention, integer coordinates at pixel centres).  Output
cell ``(i, j)`` of the dense maps is centred on input pixel ``(x, y) = (j + border, i + border)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

__all__ = ["SilkConfig", "SilkNet", "SILK_CONFIGS"]


@dataclass(frozen=True)
class SilkConfig:
    """Architecture of one VGGnp variant; stored in every weights file."""

    name: str = "vggnp-mu"
    #: Output channels of each backbone stage; every stage is two unpadded 3x3 conv blocks.
    backbone_channels: tuple[int, ...] = (64,)
    #: Latent channels of both heads (one unpadded 3x3 block, then a 1x1 conv + BatchNorm).
    head_channels: int = 32
    descriptor_dim: int = 32
    in_channels: int = 1

    @property
    def border(self) -> int:
        """Pixels lost per image side: one per unpadded 3x3 conv (2 per stage + 1 in the heads)."""
        return 2 * len(self.backbone_channels) + 1

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> SilkConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown SiLK config keys: {sorted(unknown)}")
        values = dict(data)
        if "backbone_channels" in values:
            values["backbone_channels"] = tuple(int(c) for c in values["backbone_channels"])
        return cls(**values)


#: The variants of the paper.  ``vggnp-mu`` (76,035 parameters) is the robot default;
#: ``vggnp-4`` (942,147 parameters) is the large model of the paper's main results.
SILK_CONFIGS: dict[str, SilkConfig] = {
    "vggnp-mu": SilkConfig("vggnp-mu", (64,), 32, 32),
    "vggnp-1": SilkConfig("vggnp-1", (64,), 128, 128),
    "vggnp-2": SilkConfig("vggnp-2", (64, 64), 128, 128),
    "vggnp-3": SilkConfig("vggnp-3", (64, 64, 128), 128, 128),
    "vggnp-4": SilkConfig("vggnp-4", (64, 64, 128, 128), 128, 128),
}


def conv_block(cin: int, cout: int, kernel: int, relu: bool = True) -> nn.Sequential:
    """Unpadded Conv -> ReLU -> BatchNorm (the ReLU is dropped on a head's output layer)."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, padding=0)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    layers.append(nn.BatchNorm2d(cout))
    return nn.Sequential(*layers)


class SilkHead(nn.Sequential):
    """3x3 block to the latent width, then a 1x1 conv + BatchNorm (no ReLU) to the outputs."""

    def __init__(self, cin: int, latent: int, cout: int):
        super().__init__(conv_block(cin, latent, 3), conv_block(latent, cout, 1, relu=False))


class SilkNet(nn.Module):
    """Dense SiLK: ``image (B, 1, H, W) in [0, 1] -> logits (B, 1, h, w), raw descriptors (B, D, h, w)``
    with ``h = H - 2 * border`` and ``w = W - 2 * border``."""

    def __init__(self, config: SilkConfig | str = "vggnp-mu"):
        super().__init__()
        self.config = SILK_CONFIGS[config] if isinstance(config, str) else config
        cfg = self.config
        blocks: list[nn.Module] = []
        cin = cfg.in_channels
        for cout in cfg.backbone_channels:
            blocks += [conv_block(cin, cout, 3), conv_block(cout, cout, 3)]
            cin = cout
        self.backbone = nn.Sequential(*blocks)
        self.keypoint_head = SilkHead(cin, cfg.head_channels, 1)
        self.descriptor_head = SilkHead(cin, cfg.head_channels, cfg.descriptor_dim)

    @property
    def border(self) -> int:
        return self.config.border

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone(image)
        return self.keypoint_head(features), self.descriptor_head(features)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters plus BatchNorm affine terms (the count the SiLK paper reports)."""
    return sum(p.numel() for p in model.parameters())


def multiply_accumulates(config: SilkConfig, height: int, width: int) -> int:
    """Multiply-accumulates of one dense forward pass on a ``height x width`` grey image."""
    macs = 0
    h, w, cin = height, width, config.in_channels

    def conv(cin: int, cout: int, k: int, h: int, w: int) -> tuple[int, int, int]:
        ho, wo = h - (k - 1), w - (k - 1)
        return cin * cout * k * k * ho * wo, ho, wo

    for cout in config.backbone_channels:
        for _ in range(2):
            m, h, w = conv(cin, cout, 3, h, w)
            macs += m
            cin = cout
    for cout in (1, config.descriptor_dim):
        m, hh, ww = conv(cin, config.head_channels, 3, h, w)
        macs += m
        m, _, _ = conv(config.head_channels, cout, 1, hh, ww)
        macs += m
    return macs
