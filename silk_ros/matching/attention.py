"""Matchability-reweighted attention matcher: a small LightGlue-style transformer over SiLK keypoints.

Why reweighting: SiLK already predicts, per keypoint, the probability that it will be matched
(``Features.scores``).  Keypoints that cannot be matched (occluded, out of view, repetitive) only add
noise to attention.  Each layer therefore carries a matchability ``m_j`` in (0, 1) per keypoint,
initialised from SiLK's probability and refined by a small head, and every attention is reweighted:

* **bias**: ``gamma_l * log(m_j + eps)`` is added to the logits of key ``j`` before the softmax
  (``gamma_l`` learned), so unlikely keypoints receive less attention mass;
* **value**: the value of key ``j`` is rescaled by ``m_j``, so what they do receive carries less.

Both switch on and off in :class:`AttentionMatcherConfig` (the ablation).  The assignment is
LightGlue's dual softmax with matchability dustbins: ``log P_ij = log_softmax_j(S)_ij +
log_softmax_i(S)_ij + logsigmoid(z0_i) + logsigmoid(z1_j)``, unmatched ``logsigmoid(-z)``, where
``z = logit(m)`` of the last layer.  Matches are mutual arg-maxima above a probability threshold.

Inputs to the network are tensors only (normalised keypoints, descriptors, SiLK scores, validity
masks), so padded batches and an ONNX export with a fixed maximum keypoint count share one graph.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..features.types import Features
from ..weights import WeightsError, load_state_into, load_weights, shipped_weights
from .base import Matches

__all__ = [
    "AttentionMatcherConfig",
    "AttentionMatcherNet",
    "AttentionMatcher",
    "OnnxAttentionMatcher",
    "MatcherOutput",
    "attend",
    "normalize_keypoints",
    "pad_features",
    "matches_from_log_assignment",
    "export_matcher_onnx",
    "load_attention_net",
    "build_attention_matcher",
]

#: Additive logit for padded keys: finite (no NaN when a row is all padding), yet exp() underflows to 0.
MASKED_LOGIT = -1e9


@dataclass
class AttentionMatcherConfig:
    """Architecture (stored in the weights file) plus inference options (not stored)."""

    descriptor_dim: int = 32
    width: int = 64
    num_heads: int = 1
    num_layers: int = 3
    #: add ``gamma_l * log(m_j + eps)`` to the attention logits of key j
    bias_reweighting: bool = True
    #: scale the value of key j by ``m_j``
    value_reweighting: bool = True
    gamma_init: float = 1.0
    matchability_eps: float = 1e-4
    #: SiLK probabilities are clamped to [p, 1 - p] before their logit initialises the matchability.
    score_clamp: float = 1e-3
    # --- inference options (not part of the architecture) ---
    #: minimum match probability exp(log P_ij) for a mutual match to be kept
    filter_threshold: float = 0.1
    #: early exit: stop after a layer when this fraction of keypoints is confident (0 disables)
    early_exit_ratio: float = 0.0
    #: a keypoint is confident when its best assignment (match or dustbin) has this probability
    early_exit_confidence: float = 0.95

    ARCHITECTURE_KEYS = (
        "descriptor_dim",
        "width",
        "num_heads",
        "num_layers",
        "bias_reweighting",
        "value_reweighting",
        "gamma_init",
        "matchability_eps",
        "score_clamp",
    )

    def __post_init__(self) -> None:
        if self.width % self.num_heads or (self.width // self.num_heads) % 2:
            raise ValueError(f"width {self.width} must split into {self.num_heads} heads of even size")
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")

    @property
    def variant(self) -> str:
        """Ablation name: none | bias | value | both."""
        return {(False, False): "none", (True, False): "bias", (False, True): "value", (True, True): "both"}[
            (self.bias_reweighting, self.value_reweighting)
        ]

    def architecture(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k in self.ARCHITECTURE_KEYS}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AttentionMatcherConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown attention matcher options {unknown} (known: {sorted(known)})")
        return cls(**values)


# ----------------------------------------------------------------------------------------------------
# building blocks


def normalize_keypoints(xy: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Pixels -> roughly [-1, 1], centred, isotropic (divide by half the longer side)."""
    h, w = image_size
    centre = xy.new_tensor([w / 2.0, h / 2.0])
    return (xy - centre) / (max(h, w) / 2.0)


class RotaryPositions(nn.Module):
    """Learned-frequency rotary encoding: self-attention logits then depend on relative keypoint positions."""

    def __init__(self, head_dim: int):
        super().__init__()
        self.frequencies = nn.Linear(2, head_dim // 2, bias=False)
        nn.init.normal_(self.frequencies.weight, std=2.0)

    def forward(self, xy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        angles = self.frequencies(xy).unsqueeze(1)  # (B, 1, N, head_dim / 2)
        return torch.cos(angles), torch.sin(angles)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate feature pairs (first half, second half) of ``x`` (B, H, N, d) by the keypoint angles."""
    a, b = x.chunk(2, dim=-1)
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


class Reweighting(nn.Module):
    """Turns key matchability into the two attention modifiers (each ``None`` when switched off)."""

    def __init__(self, bias: bool, value: bool, gamma_init: float, eps: float):
        super().__init__()
        self.value = value
        self.eps = eps
        self.gamma = nn.Parameter(torch.tensor(float(gamma_init))) if bias else None

    def forward(self, matchability: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        bias = self.gamma * torch.log(matchability + self.eps) if self.gamma is not None else None
        scale = matchability if self.value else None
        return bias, scale


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor,
    key_bias: torch.Tensor | None = None,
    value_scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """Multi-head attention (B, H, N, d) with per-key additive logit bias and value scale (B, Nk).

    Padded keys (``key_mask`` False) get ``MASKED_LOGIT`` and so no weight."""
    additive = torch.zeros_like(key_mask, dtype=q.dtype).masked_fill(~key_mask, MASKED_LOGIT)
    if key_bias is not None:
        additive = additive + key_bias
    if value_scale is not None:
        v = v * value_scale[:, None, :, None]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=additive[:, None, None, :])


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, c = x.shape
    return x.reshape(b, n, heads, c // heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


class FeedForward(nn.Module):
    """Update from [token, message]: LightGlue's residual MLP."""

    def __init__(self, width: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(2 * width, 2 * width), nn.LayerNorm(2 * width), nn.GELU(), nn.Linear(2 * width, width)
        )

    def forward(self, x: torch.Tensor, message: torch.Tensor) -> torch.Tensor:
        return x + self.net(torch.cat([x, message], dim=-1))


class SelfBlock(nn.Module):
    """Attention within one image, with rotary positions and matchability reweighting."""

    def __init__(self, cfg: AttentionMatcherConfig):
        super().__init__()
        self.heads = cfg.num_heads
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width)
        self.out = nn.Linear(cfg.width, cfg.width)
        self.reweight = Reweighting(cfg.bias_reweighting, cfg.value_reweighting, cfg.gamma_init, cfg.matchability_eps)
        self.update = FeedForward(cfg.width)

    def forward(self, x, rotary, mask, matchability):
        q, k, v = (split_heads(t, self.heads) for t in self.qkv(x).chunk(3, dim=-1))
        q, k = rotate(q, *rotary), rotate(k, *rotary)
        bias, scale = self.reweight(matchability)
        message = self.out(merge_heads(attend(q, k, v, mask, bias, scale)))
        return self.update(x, message)


class CrossBlock(nn.Module):
    """Bidirectional attention between the images: one query/key projection serves both directions."""

    def __init__(self, cfg: AttentionMatcherConfig):
        super().__init__()
        self.heads = cfg.num_heads
        self.qk = nn.Linear(cfg.width, cfg.width)
        self.v = nn.Linear(cfg.width, cfg.width)
        self.out = nn.Linear(cfg.width, cfg.width)
        self.reweight = Reweighting(cfg.bias_reweighting, cfg.value_reweighting, cfg.gamma_init, cfg.matchability_eps)
        self.update = FeedForward(cfg.width)

    def forward(self, x0, x1, mask0, mask1, m0, m1):
        qk0, qk1 = split_heads(self.qk(x0), self.heads), split_heads(self.qk(x1), self.heads)
        v0, v1 = split_heads(self.v(x0), self.heads), split_heads(self.v(x1), self.heads)
        bias0, scale0 = self.reweight(m0)
        bias1, scale1 = self.reweight(m1)
        message0 = self.out(merge_heads(attend(qk0, qk1, v1, mask1, bias1, scale1)))
        message1 = self.out(merge_heads(attend(qk1, qk0, v0, mask0, bias0, scale0)))
        return self.update(x0, message0), self.update(x1, message1)


class MatchabilityHead(nn.Module):
    """Refines the matchability logit residually; zero-initialised so training starts from SiLK's estimate."""

    def __init__(self, width: int):
        super().__init__()
        self.delta = nn.Linear(width, 1)
        nn.init.zeros_(self.delta.weight)
        nn.init.zeros_(self.delta.bias)

    def forward(self, x: torch.Tensor, logit: torch.Tensor) -> torch.Tensor:
        return logit + self.delta(x).squeeze(-1)


class AssignmentHead(nn.Module):
    """Dual-softmax assignment with matchability dustbins -> log P of shape (B, N0 + 1, N1 + 1)."""

    def __init__(self, width: int):
        super().__init__()
        self.proj = nn.Linear(width, width)
        self.scale = width**-0.25

    def forward(self, x0, x1, z0, z1, mask0, mask1):
        similarity = (self.proj(x0) * self.scale) @ (self.proj(x1) * self.scale).transpose(1, 2)
        valid = mask0[:, :, None] & mask1[:, None, :]
        similarity = similarity.masked_fill(~valid, MASKED_LOGIT)
        scores = (
            F.log_softmax(similarity, dim=2)
            + F.log_softmax(similarity, dim=1)
            + F.logsigmoid(z0)[:, :, None]
            + F.logsigmoid(z1)[:, None, :]
        )
        scores = scores.masked_fill(~valid, MASKED_LOGIT)
        unmatched0 = F.logsigmoid(-z0).masked_fill(~mask0, MASKED_LOGIT)[:, :, None]
        unmatched1 = F.logsigmoid(-z1).masked_fill(~mask1, MASKED_LOGIT)[:, None, :]
        corner = scores.new_zeros(scores.shape[0], 1, 1)
        top = torch.cat([scores, unmatched0], dim=2)
        bottom = torch.cat([unmatched1, corner], dim=2)
        return torch.cat([top, bottom], dim=1)


@dataclass
class MatcherOutput:
    """Per evaluated layer: log-assignments (B, N0+1, N1+1) and matchabilities (B, N) in (0, 1).

    ``matchability0[0]`` is the initial (SiLK) estimate; ``matchability0[l + 1]`` follows layer l."""

    log_assignment: list[torch.Tensor]
    matchability0: list[torch.Tensor]
    matchability1: list[torch.Tensor]
    layers_run: int


class AttentionMatcherNet(nn.Module):
    """Tensors in (normalised keypoints, descriptors, SiLK scores, masks of both images), log-assignment out."""

    def __init__(self, config: AttentionMatcherConfig | None = None):
        super().__init__()
        cfg = config or AttentionMatcherConfig()
        self.config = cfg
        self.input_proj = nn.Linear(cfg.descriptor_dim, cfg.width)
        self.positions = RotaryPositions(cfg.width // cfg.num_heads)
        self.self_blocks = nn.ModuleList(SelfBlock(cfg) for _ in range(cfg.num_layers))
        self.cross_blocks = nn.ModuleList(CrossBlock(cfg) for _ in range(cfg.num_layers))
        self.matchability_heads = nn.ModuleList(MatchabilityHead(cfg.width) for _ in range(cfg.num_layers))
        self.assignment_heads = nn.ModuleList(AssignmentHead(cfg.width) for _ in range(cfg.num_layers))

    def initial_logit(self, scores: torch.Tensor) -> torch.Tensor:
        p = self.config.score_clamp
        return torch.logit(scores.clamp(p, 1.0 - p))

    def forward(
        self,
        kpts0: torch.Tensor,
        desc0: torch.Tensor,
        scores0: torch.Tensor,
        mask0: torch.Tensor,
        kpts1: torch.Tensor,
        desc1: torch.Tensor,
        scores1: torch.Tensor,
        mask1: torch.Tensor,
        all_layers: bool = False,
    ) -> MatcherOutput:
        """``all_layers``: assignment after every layer (training's deep supervision)."""
        cfg = self.config
        x0, x1 = self.input_proj(desc0), self.input_proj(desc1)
        rot0, rot1 = self.positions(kpts0), self.positions(kpts1)
        z0, z1 = self.initial_logit(scores0), self.initial_logit(scores1)
        out = MatcherOutput([], [torch.sigmoid(z0)], [torch.sigmoid(z1)], 0)
        for layer in range(cfg.num_layers):
            m0, m1 = out.matchability0[-1], out.matchability1[-1]
            x0 = self.self_blocks[layer](x0, rot0, mask0, m0)
            x1 = self.self_blocks[layer](x1, rot1, mask1, m1)
            x0, x1 = self.cross_blocks[layer](x0, x1, mask0, mask1, m0, m1)
            z0, z1 = self.matchability_heads[layer](x0, z0), self.matchability_heads[layer](x1, z1)
            out.matchability0.append(torch.sigmoid(z0))
            out.matchability1.append(torch.sigmoid(z1))
            out.layers_run = layer + 1
            last = layer == cfg.num_layers - 1
            if all_layers or last or cfg.early_exit_ratio > 0:
                log_p = self.assignment_heads[layer](x0, x1, z0, z1, mask0, mask1)
                out.log_assignment.append(log_p)
                if not last and not all_layers and self._confident(log_p, mask0, mask1):
                    break
        return out

    def _confident(self, log_p: torch.Tensor, mask0: torch.Tensor, mask1: torch.Tensor) -> bool:
        """Early exit: enough keypoints already have a decided assignment (matched or dustbin)."""
        if self.training or self.config.early_exit_ratio <= 0:
            return False
        threshold = math.log(self.config.early_exit_confidence)
        sure0 = (log_p[:, :-1, :].amax(dim=2) > threshold) & mask0
        sure1 = (log_p[:, :, :-1].amax(dim=1) > threshold) & mask1
        fraction = (sure0.sum(1) + sure1.sum(1)).float() / (mask0.sum(1) + mask1.sum(1)).clamp(min=1).float()
        return bool((fraction >= self.config.early_exit_ratio).all())


class FinalAssignment(nn.Module):
    """Export view of the network: the last layer's log-assignment only (fixed graph, no early exit)."""

    def __init__(self, net: AttentionMatcherNet):
        super().__init__()
        self.net = net

    def forward(self, kpts0, desc0, scores0, mask0, kpts1, desc1, scores1, mask1):
        return self.net(kpts0, desc0, scores0, mask0, kpts1, desc1, scores1, mask1).log_assignment[-1]


# ----------------------------------------------------------------------------------------------------
# from Features to tensors and back


def pad_features(features: list[Features], size: int | None = None, dim: int | None = None) -> dict[str, np.ndarray]:
    """Stack a list of Features into padded arrays: normalised keypoints, descriptors, scores, mask."""
    size = max([len(f) for f in features] + [1]) if size is None else size
    dim = features[0].descriptors.shape[1] if dim is None else dim
    b = len(features)
    kpts = np.zeros((b, size, 2), np.float32)
    desc = np.zeros((b, size, dim), np.float32)
    scores = np.zeros((b, size), np.float32)
    mask = np.zeros((b, size), bool)
    for i, f in enumerate(features):
        n = len(f)
        if n > size:
            raise ValueError(f"{n} keypoints exceed the maximum of {size}; keep fewer (top_k) or raise the maximum")
        if f.is_binary:
            raise ValueError("the attention matcher needs float (SiLK) descriptors, got binary ones")
        if n and f.descriptors.shape[1] != dim:
            raise ValueError(f"descriptor dimension {f.descriptors.shape[1]} does not match the matcher's {dim}")
        h, w = f.image_size
        kpts[i, :n] = (f.keypoints_xy - np.array([w / 2.0, h / 2.0], np.float32)) / (max(h, w) / 2.0)
        desc[i, :n] = f.descriptors
        scores[i, :n] = f.scores
        mask[i, :n] = True
    return {"kpts": kpts, "desc": desc, "scores": scores, "mask": mask}


def matches_from_log_assignment(log_p: np.ndarray, n0: int, n1: int, threshold: float) -> Matches:
    """Mutual arg-maxima of P (without dustbins) with probability above ``threshold``."""
    if n0 == 0 or n1 == 0:
        return Matches.empty()
    scores = log_p[:n0, :n1]
    best1 = scores.argmax(axis=1)
    best0 = scores.argmax(axis=0)
    i = np.flatnonzero(best0[best1] == np.arange(n0))
    j = best1[i]
    probability = np.exp(scores[i, j])
    keep = probability > threshold
    return Matches(np.stack([i[keep], j[keep]], 1).astype(np.int64), probability[keep].astype(np.float32))


# ----------------------------------------------------------------------------------------------------
# matchers (the Matcher protocol) on PyTorch and ONNX Runtime


class _AssignmentMatcher:
    """The Matcher protocol on top of a backend's ``log_assignment(pairs)`` (shared by both backends)."""

    config: AttentionMatcherConfig

    def log_assignment(self, pairs: list[tuple[Features, Features]]) -> np.ndarray:
        raise NotImplementedError

    def match_batch(self, pairs: list[tuple[Features, Features]]) -> list[Matches]:
        log_p = self.log_assignment(pairs)
        threshold = self.config.filter_threshold
        return [matches_from_log_assignment(log_p[i], len(f0), len(f1), threshold) for i, (f0, f1) in enumerate(pairs)]

    def __call__(self, features0: Features, features1: Features) -> Matches:
        if len(features0) == 0 or len(features1) == 0:
            return Matches.empty()
        return self.match_batch([(features0, features1)])[0]


class AttentionMatcher(_AssignmentMatcher):
    """``AttentionMatcher(net)(features0, features1) -> Matches`` on PyTorch (CPU or CUDA)."""

    def __init__(self, net: AttentionMatcherNet, device: str = "cpu"):
        self.net = net.eval().to(device)
        self.config = net.config
        self.device = torch.device(device)
        self.backend = f"torch-{device}"

    def _tensors(self, features: list[Features]) -> dict[str, torch.Tensor]:
        arrays = pad_features(features, dim=self.config.descriptor_dim)
        return {k: torch.from_numpy(v).to(self.device) for k, v in arrays.items()}

    @torch.inference_mode()
    def log_assignment(self, pairs: list[tuple[Features, Features]]) -> np.ndarray:
        """Padded batch of pairs -> (B, N0max + 1, N1max + 1) log-assignment (dustbins last)."""
        a = self._tensors([p[0] for p in pairs])
        b = self._tensors([p[1] for p in pairs])
        out = self.net(a["kpts"], a["desc"], a["scores"], a["mask"], b["kpts"], b["desc"], b["scores"], b["mask"])
        return out.log_assignment[-1].float().cpu().numpy()


ONNX_INPUTS = ("kpts0", "desc0", "scores0", "mask0", "kpts1", "desc1", "scores1", "mask1")


def export_matcher_onnx(net: AttentionMatcherNet, target: str | Path | io.BytesIO, max_keypoints: int) -> None:
    """ONNX graph for a fixed maximum keypoint count per image (pad and mask the rest), dynamic batch.

    Output ``log_assignment`` (B, max + 1, max + 1)."""
    import warnings

    net = net.float().cpu().eval()
    n, d = max_keypoints, net.config.descriptor_dim
    example = (
        torch.rand(1, n, 2) * 2 - 1,
        F.normalize(torch.randn(1, n, d), dim=-1),
        torch.rand(1, n),
        torch.ones(1, n, dtype=torch.bool),
    ) * 2
    batch_axis = {name: {0: "batch"} for name in ONNX_INPUTS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            FinalAssignment(net),
            example,
            target if isinstance(target, io.BytesIO) else str(target),
            input_names=list(ONNX_INPUTS),
            output_names=["log_assignment"],
            dynamic_axes={**batch_axis, "log_assignment": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )


class OnnxAttentionMatcher(_AssignmentMatcher):
    """The same matcher on ONNX Runtime: one session per keypoint bucket (inputs padded to the bucket)."""

    def __init__(
        self,
        net: AttentionMatcherNet,
        buckets: tuple[int, ...] = (512, 1024, 2048, 4096),
        threads: int = 0,
        spin_wait: bool = True,
    ):
        self.net = net.float().cpu().eval()
        self.config = net.config
        self.buckets = tuple(sorted(buckets))
        self.threads = threads
        self.spin_wait = spin_wait
        self._sessions: dict[int, Any] = {}
        self.backend = "onnxruntime-cpu"

    def session(self, bucket: int):
        if bucket not in self._sessions:
            import onnxruntime as ort

            from ..features.runtime import cpu_session_options

            buffer = io.BytesIO()
            export_matcher_onnx(self.net, buffer, bucket)
            self._sessions[bucket] = ort.InferenceSession(
                buffer.getvalue(), cpu_session_options(self.threads, self.spin_wait), providers=["CPUExecutionProvider"]
            )
        return self._sessions[bucket]

    def bucket_for(self, count: int) -> int:
        for bucket in self.buckets:
            if count <= bucket:
                return bucket
        raise ValueError(f"{count} keypoints exceed the largest ONNX bucket {self.buckets[-1]}; keep fewer (top_k)")

    def log_assignment(self, pairs: list[tuple[Features, Features]]) -> np.ndarray:
        bucket = self.bucket_for(max(max(len(f0), len(f1)) for f0, f1 in pairs))
        d = self.config.descriptor_dim
        a = pad_features([p[0] for p in pairs], bucket, d)
        b = pad_features([p[1] for p in pairs], bucket, d)
        feed = {
            f"{name}{v}": arrays[name] for v, arrays in enumerate((a, b)) for name in ("kpts", "desc", "scores", "mask")
        }
        return self.session(bucket).run(None, feed)[0]


# ----------------------------------------------------------------------------------------------------
# loading


def load_attention_net(weights: str | Path, **inference_options) -> AttentionMatcherNet:
    """Network from a weights file or shipped name (``matcher-mu``); inference options override the config."""
    inference_keys = {f.name for f in fields(AttentionMatcherConfig)} - set(AttentionMatcherConfig.ARCHITECTURE_KEYS)
    wrong = sorted(set(inference_options) - inference_keys)
    if wrong:
        raise ValueError(
            f"unknown attention matcher options {wrong}: a trained matcher takes only {sorted(inference_keys)} "
            "(its architecture comes from the weights file)"
        )
    path = Path(weights)
    if not path.suffix and not path.exists():
        path = shipped_weights(str(weights))
    record = load_weights(path, kind="matcher")
    # the trainer stores the threshold it chose on its validation pool; explicit options win
    defaults = {k: record.provenance[k] for k in ("filter_threshold",) if k in record.provenance}
    try:
        config = AttentionMatcherConfig.from_dict({**record.architecture, **defaults, **inference_options})
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"weights file {path}: bad matcher architecture record ({exc})") from exc
    net = AttentionMatcherNet(config)
    load_state_into(net, record)
    net.provenance = record.provenance  # type: ignore[attr-defined]
    return net.eval()


def pose_check(weights: str | Path = "matcher-mu") -> dict | None:
    """The weights file's record of relative-pose accuracy against MNN on the same SiLK features and validation
    pairs (written by the matcher trainer): ``{"pairs": ..., "metric": ..., "matcher": x, "mnn": y}``, or None
    when the matcher was never checked against MNN on pose."""
    path = Path(weights)
    if not path.suffix and not path.exists():
        path = shipped_weights(str(weights))
    return load_weights(path, kind="matcher").provenance.get("pose_vs_mnn")


def loses_to_mnn(weights: str | Path = "matcher-mu") -> bool:
    """True unless the matcher's weights show it at least as accurate as MNN on validation pose pairs: the
    odometry does not build maps from a matcher that makes poses worse (the shipped one: Strecha pose AUC@10
    62.1 against MNN's 65.6, `silk-vo bench pose-pairs`)."""
    check = pose_check(weights)
    return check is None or check["matcher"] < check["mnn"]


def build_attention_matcher(
    weights: str | None = "matcher-mu",
    backend: str = "torch",
    device: str = "cpu",
    threads: int = 0,
    allow_untrained: bool = False,
    spin_wait: bool = True,
    **options: Any,
) -> AttentionMatcher | OnnxAttentionMatcher:
    """Entry point of ``build_matcher({"name": "attention", ...})``.

    ``weights``: shipped name or path; ``"untrained"`` (with ``allow_untrained``) builds random weights
    from ``options`` (tests, training).  ``backend``: torch | onnxruntime | auto (ONNX Runtime on CPU).
    ``spin_wait``: whether ONNX Runtime's workers spin after a run (``cpu_session_options``)."""
    if weights in (None, "untrained"):
        if not allow_untrained:
            raise WeightsError("the attention matcher needs trained weights; pass allow_untrained=True for random ones")
        torch.manual_seed(0)
        net = AttentionMatcherNet(AttentionMatcherConfig.from_dict(options)).eval()
    else:
        net = load_attention_net(weights, **options)
    if backend == "auto":
        backend = "onnxruntime" if device == "cpu" else "torch"
    if backend == "onnxruntime":
        if device != "cpu":
            raise ValueError("the ONNX Runtime matcher runs on CPU here; use backend='torch' for CUDA")
        return OnnxAttentionMatcher(net, threads=threads, spin_wait=spin_wait)
    if backend != "torch":
        raise ValueError(f"unknown backend '{backend}' (torch | onnxruntime | auto)")
    if threads:
        torch.set_num_threads(threads)
    return AttentionMatcher(net, device)
