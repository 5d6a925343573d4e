"""SiLK's two losses over dense grids, computed block-wise so memory grows with block x N, not N^2.

Descriptor loss: symmetric InfoNCE ("double softmax"): for a true correspondence (i, j),
``-(log softmax_row(S)[i, j] + log softmax_col(S)[i, j]) / 2`` with ``S = D0 D1^T / temperature`` over
all grid positions.  Only the log-sum-exp of each needed row and column is required; each block of
rows is a ``torch.utils.checkpoint`` region, so its ``block x N`` similarity is recomputed in the
backward pass instead of being stored.

Keypoint loss: binary cross-entropy whose label says "this cell's mutual nearest neighbour is its true
correspondence" (SiLK: keypoints are the cells that match correctly).  Labels carry no gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

__all__ = [
    "block_logsumexp",
    "descriptor_loss",
    "descriptor_loss_dense",
    "nearest_neighbours",
    "mnn_labels",
    "keypoint_loss",
    "PairLoss",
    "pair_loss",
]


def _lse_rows(anchors: torch.Tensor, others: torch.Tensor, inv_temperature: float) -> torch.Tensor:
    return torch.logsumexp((anchors @ others.T) * inv_temperature, dim=1)


def block_logsumexp(anchors: torch.Tensor, others: torch.Tensor, temperature: float, block: int) -> torch.Tensor:
    """``logsumexp(anchors @ others.T / t, dim=1)`` one block of rows at a time, recomputed in backward."""
    inv_t = 1.0 / temperature
    parts = []
    for start in range(0, len(anchors), block):
        chunk = anchors[start : start + block]
        if torch.is_grad_enabled() and (chunk.requires_grad or others.requires_grad):
            parts.append(checkpoint(_lse_rows, chunk, others, inv_t, use_reentrant=False))
        else:
            parts.append(_lse_rows(chunk, others, inv_t))
    return torch.cat(parts) if parts else anchors.new_zeros(0)


def descriptor_loss(
    d0: torch.Tensor, d1: torch.Tensor, idx0: torch.Tensor, idx1: torch.Tensor, temperature: float, block: int
) -> torch.Tensor:
    """Double-softmax loss of correspondences ``(idx0[k], idx1[k])`` between unit descriptors (N, D).

    The softmaxes run over *all* positions of the other view; ``idx0`` may be every valid
    correspondence (full recipe) or a random subset of anchors (CPU recipe).
    """
    if len(idx0) == 0:
        return d0.sum() * 0.0
    a0, a1 = d0[idx0], d1[idx1]
    positive = (a0 * a1).sum(dim=1) / temperature
    row = block_logsumexp(a0, d1, temperature, block)
    col = block_logsumexp(a1, d0, temperature, block)
    return ((row - positive) + (col - positive)).mean() * 0.5


def descriptor_loss_dense(
    d0: torch.Tensor, d1: torch.Tensor, idx0: torch.Tensor, idx1: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Reference: the same loss with the full N x N similarity in memory (tests only)."""
    sim = d0 @ d1.T / temperature
    log_row = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    log_col = sim - torch.logsumexp(sim, dim=0, keepdim=True)
    return -(log_row[idx0, idx1] + log_col[idx0, idx1]).mean() * 0.5


@torch.no_grad()
def nearest_neighbours(d0: torch.Tensor, d1: torch.Tensor, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(nn01, nn10): nearest neighbours in both directions from one block-wise pass over the similarity.

    Row maxima come from each ``block x N`` slab; column maxima are carried across slabs, so the
    N x N matrix is never held and each similarity is computed once.
    """
    nn01 = []
    col_best = torch.full((len(d1),), -float("inf"), device=d1.device, dtype=d1.dtype)
    nn10 = torch.zeros(len(d1), dtype=torch.long, device=d1.device)
    for start in range(0, len(d0), block):
        sim = d0[start : start + block] @ d1.T
        nn01.append(sim.argmax(dim=1))
        value, index = sim.max(dim=0)
        better = value > col_best  # strict: ties keep the earlier row, as argmax over the full matrix does
        col_best = torch.where(better, value, col_best)
        nn10 = torch.where(better, index + start, nn10)
    return torch.cat(nn01), nn10


@torch.no_grad()
def mnn_labels(
    d0: torch.Tensor, d1: torch.Tensor, gt01: torch.Tensor, gt10: torch.Tensor, block: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(label0, label1, mutual0): cell is a correct mutual nearest neighbour; mutual0 marks all MNN cells of view 0."""
    nn01, nn10 = nearest_neighbours(d0, d1, block)
    cells = torch.arange(len(d0), device=d0.device)
    mutual0 = nn10[nn01] == cells
    label0 = mutual0 & (nn01 == gt01)
    cells1 = torch.arange(len(d1), device=d1.device)
    label1 = (nn01[nn10] == cells1) & (nn10 == gt10)
    return label0, label1, mutual0


def keypoint_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


@dataclass
class PairLoss:
    loss: torch.Tensor
    descriptor: float
    keypoint: float
    #: MNN matches, correct ones, and ground-truth correspondences (for precision / recall / F1).
    matches: int
    correct: int
    correspondences: int


def pair_loss(
    logits0: torch.Tensor,
    desc0: torch.Tensor,
    logits1: torch.Tensor,
    desc1: torch.Tensor,
    gt01: torch.Tensor,
    gt10: torch.Tensor,
    temperature: float,
    block: int,
    anchors: int = 0,
    generator: torch.Generator | None = None,
    descriptor_weight: float = 1.0,
    keypoint_weight: float = 1.0,
) -> PairLoss:
    """Both losses of one pair.  ``logits*``: (h, w); ``desc*``: (D, h, w) raw descriptors."""
    d0 = F.normalize(desc0.flatten(1).T, dim=1)
    d1 = F.normalize(desc1.flatten(1).T, dim=1)
    idx0 = torch.nonzero(gt01 >= 0).flatten()
    if anchors and len(idx0) > anchors:
        pick = torch.randperm(len(idx0), generator=generator)[:anchors]
        idx0 = idx0[pick.to(idx0.device)]
    desc = descriptor_loss(d0, d1, idx0, gt01[idx0], temperature, block)
    label0, label1, mutual0 = mnn_labels(d0.detach(), d1.detach(), gt01, gt10, block)
    kp = 0.5 * (keypoint_loss(logits0.flatten(), label0) + keypoint_loss(logits1.flatten(), label1))
    return PairLoss(
        loss=descriptor_weight * desc + keypoint_weight * kp,
        descriptor=float(desc.detach()),
        keypoint=float(kp.detach()),
        matches=int(mutual0.sum()),
        correct=int(label0.sum()),
        correspondences=int((gt01 >= 0).sum()),
    )
