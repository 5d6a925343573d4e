"""SiLK's two losses over dense grids, from one block-wise pass over the similarity matrix.

Descriptor loss: symmetric InfoNCE ("double softmax") over all grid positions.  For a true correspondence
(i, j) with logits ``S = D0 D1^T / temperature`` (unit descriptors):
``(lse_row(S)[i] - S[i, j]) + (lse_col(S)[j] - S[i, j])``, each direction averaged over the
correspondences and the two directions *summed*, as in the SiLK paper.  (The reference implementation
scales unit descriptors by sqrt(2) and uses temperature 0.1: its logits are cos / 0.05, so our configs set
``temperature: 0.05``.)

Keypoint loss: binary cross-entropy whose label says "this cell's mutual nearest neighbour is its true
correspondence" (SiLK: keypoints are the cells that match correctly), on the cells that have a true
correspondence (``mask="correspondences"``, SiLK's choice: outside the overlap appearance cannot tell) or on
every cell (``mask="all"``, the earlier recipe).  Labels carry no gradient.

Cost.  One pass over ``S`` in blocks of rows gives everything: the row log-sum-exps, the column ones (summed
across blocks), and the row and column maxima that decide the labels.  A cell's mutual nearest neighbour is
its true partner exactly when the partner's similarity is the maximum of both its row and its column, so no
argmax is needed (the partner's similarity is read from the same block, so the comparison is exact).
Cosines are bounded by 1, so ``exp(cos / t)`` stays inside float32 for t >= 0.02 and one exponential per
entry serves both log-sum-exps.  The backward pass recomputes each block (memory grows with block x N, not
N^2) and needs one exponential and two products per block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from silk_ros.features.extractor import context_grid_position, context_image_size

__all__ = [
    "MIN_TEMPERATURE",
    "KEYPOINT_MASKS",
    "similarity_reductions",
    "descriptor_loss",
    "descriptor_loss_dense",
    "nearest_neighbours",
    "mnn_labels",
    "keypoint_loss",
    "PairLoss",
    "pair_loss",
    "shrunk_views",
    "with_context",
]

#: Below this, ``exp(cos / t)`` can overflow (a row sum of N terms of up to e^(1/t)) or underflow (a row whose
#: best cosine is -1) in float32.
MIN_TEMPERATURE = 0.02


class _SimilarityReductions(torch.autograd.Function):
    """Row/column log-sum-exps of ``D0 D1^T / t`` (differentiable) and row/column maxima of ``D0 D1^T``.

    ``E = exp(D0 D1^T / t)`` is formed one block of rows at a time and never stored.  With
    ``a = g_row / rowsum(E)`` and ``b = g_col / colsum(E)`` the gradients are
    ``dD0 = (a * (E D1) + E (b * D1)) / t`` and ``dD1 = (E^T (a * D0) + b * (E^T D0)) / t``: two products
    with E per block and no elementwise pass over it besides the exponential.
    """

    @staticmethod
    def forward(ctx, d0: torch.Tensor, d1: torch.Tensor, gt01: torch.Tensor, inv_t: float, block: int):
        n0, n1 = len(d0), len(d1)
        scaled0, d1t = d0 * inv_t, d1.T.contiguous()
        row_sum, row_max, partner = d0.new_empty(n0), d0.new_empty(n0), d0.new_full((n0,), -float("inf"))
        col_sum, col_max = d0.new_zeros(n1), d0.new_full((n1,), -float("inf"))
        buffer = d0.new_empty(min(block, n0), n1)
        for start in range(0, n0, block):
            rows = scaled0[start : start + block]
            stop = start + len(rows)
            logits = torch.mm(rows, d1t, out=buffer[: len(rows)])
            row_max[start:stop] = logits.amax(dim=1)
            torch.maximum(col_max, logits.amax(dim=0), out=col_max)
            has = torch.nonzero(gt01[start:stop] >= 0).flatten()
            partner[start + has] = logits[has, gt01[start + has]]  # the same numbers the maxima saw
            e = logits.exp_()
            row_sum[start:stop] = e.sum(dim=1)
            col_sum += e.sum(dim=0)
        ctx.save_for_backward(d0, d1, row_sum, col_sum)
        ctx.inv_t, ctx.block = inv_t, block
        has = gt01 >= 0
        correct = has & (partner >= row_max) & (partner >= col_max[gt01.clamp(min=0)])
        ctx.mark_non_differentiable(correct)
        return row_sum.log(), col_sum.log(), correct

    @staticmethod
    def backward(ctx, g_row, g_col, _correct):
        d0, d1, row_sum, col_sum = ctx.saved_tensors
        inv_t, block = ctx.inv_t, ctx.block
        dim = d0.shape[1]
        a = g_row / row_sum if g_row is not None else torch.zeros_like(row_sum)
        b = g_col / col_sum if g_col is not None else torch.zeros_like(col_sum)
        d1_both = torch.cat([d1, b[:, None] * d1], dim=1)  # E @ [D1, b D1] in one product
        col_acc = d1.new_zeros(len(d1), 2 * dim)  # sum over blocks of E^T [a D0, D0]
        grad0 = torch.empty_like(d0)
        scaled0, d1t = d0 * inv_t, d1.T.contiguous()
        buffer = d0.new_empty(min(block, len(d0)), len(d1))
        for start in range(0, len(d0), block):
            stop = start + min(block, len(d0) - start)
            e = torch.mm(scaled0[start:stop], d1t, out=buffer[: stop - start]).exp_()
            rows = e @ d1_both
            grad0[start:stop] = a[start:stop, None] * rows[:, :dim] + rows[:, dim:]
            rows0 = d0[start:stop]
            col_acc.addmm_(e.T, torch.cat([a[start:stop, None] * rows0, rows0], dim=1))
        grad1 = col_acc[:, :dim] + b[:, None] * col_acc[:, dim:]
        return grad0.mul_(inv_t), grad1.mul_(inv_t), None, None, None


def similarity_reductions(
    d0: torch.Tensor, d1: torch.Tensor, gt01: torch.Tensor, temperature: float, block: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(lse_row, lse_col, correct) of unit descriptors ``d0`` (N0, D), ``d1`` (N1, D).

    ``lse_*`` are the log-sum-exps of ``d0 @ d1.T / temperature`` over rows / columns (differentiable);
    ``correct`` (N0, bool) marks the cells whose true partner ``gt01`` (-1: none) is their mutual nearest
    neighbour, i.e. the maximum of both its row and its column (ties count as correct).
    """
    if temperature < MIN_TEMPERATURE:
        raise ValueError(f"temperature {temperature} is below {MIN_TEMPERATURE} (float32 range)")
    return _SimilarityReductions.apply(d0, d1, gt01, 1.0 / temperature, block)


def descriptor_loss(
    d0: torch.Tensor, d1: torch.Tensor, idx0: torch.Tensor, idx1: torch.Tensor, temperature: float, block: int
) -> torch.Tensor:
    """Double-softmax loss of correspondences ``(idx0[k], idx1[k])`` between unit descriptors (N, D):
    the mean over the correspondences of each direction, the two directions summed."""
    if len(idx0) == 0:
        return d0.sum() * 0.0
    pairs = torch.full((len(d0),), -1, dtype=torch.long, device=d0.device)
    pairs[idx0] = idx1
    lse_row, lse_col, _ = similarity_reductions(d0, d1, pairs, temperature, block)
    positive = (d0[idx0] * d1[idx1]).sum(dim=1) / temperature
    return (lse_row[idx0] - positive).mean() + (lse_col[idx1] - positive).mean()


def descriptor_loss_dense(
    d0: torch.Tensor, d1: torch.Tensor, idx0: torch.Tensor, idx1: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Reference: the same loss with the full N x N similarity in memory (tests only)."""
    sim = d0 @ d1.T / temperature
    log_row = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    log_col = sim - torch.logsumexp(sim, dim=0, keepdim=True)
    return -log_row[idx0, idx1].mean() - log_col[idx0, idx1].mean()


@torch.no_grad()
def nearest_neighbours(d0: torch.Tensor, d1: torch.Tensor, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(nn01, nn10): nearest neighbours in both directions from one block-wise pass over the similarity.

    Used where the matches themselves are needed (validation precision); training needs only maxima.
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


def keypoint_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean binary cross-entropy over the cells in ``mask`` (all cells without one)."""
    if mask is not None:
        logits, labels = logits[mask], labels[mask]
    if logits.numel() == 0:
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


@dataclass
class PairLoss:
    loss: torch.Tensor
    descriptor: float
    keypoint: float
    #: Correctly matched cells (mutual nearest neighbour = true partner) and ground-truth correspondences.
    correct: int
    correspondences: int


KEYPOINT_MASKS = ("correspondences", "all")


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
    keypoint_mask: str = "correspondences",
) -> PairLoss:
    """Both losses of one pair.  ``logits*``: (h, w); ``desc*``: (D, h, w) raw descriptors.

    ``anchors`` > 0 keeps the descriptor loss of that many random correspondences (the rest still count in
    every softmax and in the keypoint labels); 0 uses every correspondence, which costs the same pass.
    """
    if keypoint_mask not in KEYPOINT_MASKS:
        raise ValueError(f"keypoint_mask must be one of {KEYPOINT_MASKS}, got {keypoint_mask!r}")
    d0 = F.normalize(desc0.flatten(1).T, dim=1)
    d1 = F.normalize(desc1.flatten(1).T, dim=1)
    idx0 = torch.nonzero(gt01 >= 0).flatten()
    idx1 = gt01[idx0]
    lse_row, lse_col, correct0 = similarity_reductions(d0, d1, gt01, temperature, block)
    correct = correct0[idx0]
    trained = torch.arange(len(idx0), device=idx0.device)
    if anchors and len(idx0) > anchors:
        trained = torch.randperm(len(idx0), generator=generator)[:anchors].to(idx0.device)
    if len(trained):
        positive = (d0[idx0[trained]] * d1[idx1[trained]]).sum(dim=1) / temperature
        desc = (lse_row[idx0[trained]] - positive).mean() + (lse_col[idx1[trained]] - positive).mean()
    else:
        desc = d0.sum() * 0.0
    label0 = torch.zeros_like(gt01, dtype=torch.bool)
    label1 = torch.zeros_like(gt10, dtype=torch.bool)
    label0[idx0], label1[idx1] = correct, correct
    mask0, mask1 = (gt01 >= 0, gt10 >= 0) if keypoint_mask == "correspondences" else (None, None)
    kp = 0.5 * (keypoint_loss(logits0.flatten(), label0, mask0) + keypoint_loss(logits1.flatten(), label1, mask1))
    return PairLoss(
        loss=descriptor_weight * desc + keypoint_weight * kp,
        descriptor=float(desc.detach()),
        keypoint=float(kp.detach()),
        correct=int(correct.sum()),
        correspondences=len(idx0),
    )


def shrunk_views(views: torch.Tensor, scale: float, border: int) -> torch.Tensor:
    """(B, 1, H, W) crops shrunk by ``scale`` as the extractor shrinks the image for its context pass (area
    average, at least one output cell)."""
    height, width = views.shape[-2:]
    small_width, small_height = context_image_size(width, height, scale, border)
    return F.interpolate(views, size=(small_height, small_width), mode="area")


def with_context(
    desc: torch.Tensor, small_desc: torch.Tensor, border: int, crop_size: tuple[int, int], weight: float
) -> torch.Tensor:
    """Dense raw descriptors (B, D, h, w) of the crops and (B, D, hs, ws) of the shrunk crops -> unit (B, 2D, h, w)
    descriptors joined as ``SilkExtractor`` joins them at its keypoints: each cell's own and ``weight`` x the one at
    the same point of the shrunk image (bilinear between the four nearest coarse cells, clamped to the coarse grid,
    which stops ``border`` coarse cells short of each edge), the whole re-normalised.  Why: a network trained on
    what the odometry matches (context descriptors are its default) instead of on half of it."""
    _, _, h, w = desc.shape
    hs, ws = small_desc.shape[-2:]
    height, width = crop_size
    small_size = (ws + 2 * border, hs + 2 * border)
    # the dense map's cell (i, j) sits at pixel (j + border, i + border) of the crop
    cells = np.stack([np.arange(max(h, w)) + border] * 2, axis=1)
    grid = context_grid_position(cells, (width, height), small_size, border)
    xs, ys = (torch.from_numpy(grid[:n, k]).to(desc.dtype) for k, n in ((0, w), (1, h)))
    # grid_sample with align_corners=True puts -1 and 1 on the centres of the first and last cells
    gx = xs / max(ws - 1, 1) * 2 - 1
    gy = ys / max(hs - 1, 1) * 2 - 1
    grid = torch.stack([gx.expand(h, w), gy[:, None].expand(h, w)], dim=-1).to(desc.device)
    context = F.grid_sample(small_desc, grid.expand(len(desc), h, w, 2), mode="bilinear", align_corners=True)
    joined = torch.cat([F.normalize(desc, dim=1), weight * F.normalize(context, dim=1)], dim=1)
    return F.normalize(joined, dim=1)
