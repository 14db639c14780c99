"""``ATSSAssigner`` of a whole batch with fixed shapes.

Stock assigns one image at a time on the anchors inside the image (``flat_anchors[inside]``),
gathers candidates with index lists and writes the result with boolean-mask indexing. Here the
whole batch (B, A, G) is assigned at once over every anchor: anchors outside the image get an
infinite centre distance (so they are never candidates while a valid anchor is left) and are
masked out of the IoU statistics; padding rows of the ground truth never become positives.

The anchors of a level form a grid: the centre x depends on the column and the base anchor
only, the centre y on the row. So the squared centre distances along x and y are computed on
(B, W, P, G) and (B, H, P, G) and added once on (B, H, W, P, G) (stock's ``pow(2).sum(-1)`` of
two terms: the same floats). Only the (B, K, G) top-k candidates can become positive, so the
IoU is computed for them alone, with ``bbox_overlaps``' float ops.
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch

INF = 100000000
IOU_EPS = 1e-6  # BboxOverlaps2D's default


class AnchorGrid(NamedTuple):
    """One level's anchors as a grid (float32 values of ``grid_priors``' anchors).

    Attributes:
        xs (Tensor): (W, P, 2) x1, x2 of each column and base anchor.
        ys (Tensor): (H, P, 2) y1, y2 of each row and base anchor.
    """
    xs: torch.Tensor
    ys: torch.Tensor


def anchor_grids(mlvl_anchors: Sequence[torch.Tensor], featmap_sizes: Sequence[Tuple[int, int]]
                 ) -> List[AnchorGrid]:
    """Per-level grids of ``AnchorGenerator.grid_priors`` anchors ((h, w, P) row-major order).

    Args:
        mlvl_anchors (Sequence[Tensor]): per level, (h * w * P, 4).
        featmap_sizes (Sequence[tuple[int, int]]): per level, (h, w).

    Returns:
        list[AnchorGrid]: one per level.
    """
    grids = []
    for anchors, (h, w) in zip(mlvl_anchors, featmap_sizes):
        grid = anchors.reshape(h, w, -1, 4)
        grids.append(AnchorGrid(grid[0][..., 0::2], grid[:, 0][..., 1::2]))
    return grids


def anchor_centers(anchors: torch.Tensor) -> torch.Tensor:
    """(..., 2) centres (cx, cy) of (..., 4) boxes, computed as ``ATSSAssigner`` does."""
    return torch.stack(((anchors[..., 0] + anchors[..., 2]) / 2.0,
                        (anchors[..., 1] + anchors[..., 3]) / 2.0), dim=-1)


def atss_assign(grids: Sequence[AnchorGrid], anchors: torch.Tensor, centers: torch.Tensor,
                gt_bboxes: torch.Tensor, gt_valid: torch.Tensor, topk: int,
                anchor_valid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """1-based assigned ground-truth index of every anchor of every image (0: negative).

    Steps as ``ATSSAssigner.assign``: IoU and centre distance of every (anchor, box) pair; per
    level and box the ``topk`` anchors of smallest centre distance (``Tensor.topk``, as stock);
    threshold = mean + std (unbiased) of the candidates' IoUs; a candidate is positive when its
    IoU ``>=`` the threshold and its centre lies more than 0.01 inside the box; an anchor
    positive for several boxes takes the one of highest IoU (first index on ties).

    Args:
        grids (Sequence[AnchorGrid]): per level, see :func:`anchor_grids`.
        anchors (Tensor): (A, 4) anchors of all levels, level by level.
        centers (Tensor): (A, 2) anchor centres (:func:`anchor_centers`), all levels.
        gt_bboxes (Tensor): (B, G, 4) padded boxes.
        gt_valid (Tensor): (B, G) bool, False for padding rows.
        topk (int): Candidates per level and box.
        anchor_valid (Tensor | None): (B, A) bool, False for anchors stock drops (outside the
            image / padding); None when every anchor is valid (the statistics then are
            ``Tensor.mean``/``Tensor.std`` exactly as stock; with a mask they are computed over
            the valid candidates, equal up to float rounding).

    Returns:
        Tensor: (B, A) long.
    """
    with torch.no_grad():
        num_imgs = gt_bboxes.shape[0]
        gt_centers = anchor_centers(gt_bboxes)[:, None, None, :, :]  # (B, 1, 1, G, 2)
        candidates, start = [], 0
        for grid in grids:
            num = grid.ys.shape[0] * grid.xs.shape[0] * grid.xs.shape[1]
            distances = _grid_distances(grid, gt_centers).reshape(num_imgs, num, -1)
            if anchor_valid is not None:
                distances = torch.where(anchor_valid[:, start:start + num, None], distances,
                                        distances.new_full((), INF))
            _, inds = distances.topk(min(topk, num), dim=1, largest=False)  # (B, k, G)
            candidates.append(inds + start)
            start += num
        candidates = torch.cat(candidates, dim=1)  # (B, K, G)
        # Only candidates can become positive: their IoUs are all the assignment needs.
        candidate_anchors = anchors.index_select(0, candidates.reshape(-1)).reshape(
            *candidates.shape, 4)
        candidate_overlaps = _pair_overlaps(candidate_anchors, gt_bboxes[:, None, :, :])
        if anchor_valid is None:
            threshold = candidate_overlaps.mean(1) + candidate_overlaps.std(1)
            candidate_ok = gt_valid[:, None, :]
        else:
            candidate_valid = torch.gather(
                anchor_valid[..., None].expand(-1, -1, gt_bboxes.shape[1]), 1, candidates)
            threshold = _masked_mean_plus_std(candidate_overlaps, candidate_valid)
            candidate_ok = candidate_valid & gt_valid[:, None, :]
        is_pos = candidate_overlaps >= threshold[:, None, :]
        is_pos = is_pos & _centers_inside(centers, candidates, gt_bboxes) & candidate_ok
        # (B, A, G): the IoU of positive pairs, -INF elsewhere (a box's candidates are
        # distinct anchors, so the scatter writes each element at most once).
        overlaps_inf = gt_bboxes.new_full((num_imgs, start, gt_bboxes.shape[1]), -INF).scatter(
            1, candidates, torch.where(is_pos, candidate_overlaps,
                                       candidate_overlaps.new_full((), -INF)))
        max_overlaps, argmax_overlaps = overlaps_inf.max(dim=2)
        return torch.where(max_overlaps != -INF, argmax_overlaps + 1,
                           torch.zeros_like(argmax_overlaps))


def _pair_overlaps(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """IoU of (..., 4) box pairs (broadcast) with ``bbox_overlaps``' float ops (non-aligned)."""
    area1 = (boxes1[..., 2] - boxes1[..., 0]) * (boxes1[..., 3] - boxes1[..., 1])
    area2 = (boxes2[..., 2] - boxes2[..., 0]) * (boxes2[..., 3] - boxes2[..., 1])
    lt = torch.max(boxes1[..., :2], boxes2[..., :2])
    rb = torch.min(boxes1[..., 2:], boxes2[..., 2:])
    wh = (rb - lt).clamp(min=0)
    overlap = wh[..., 0] * wh[..., 1]
    union = area1 + area2 - overlap
    union = torch.max(union, union.new_tensor([IOU_EPS]))
    return overlap / union


def _grid_distances(grid: AnchorGrid, gt_centers: torch.Tensor) -> torch.Tensor:
    """(B, H, W, P, G) distance between anchor and box centres (stock's float ops)."""
    center_xs = ((grid.xs[..., 0] + grid.xs[..., 1]) / 2.0)[None, :, :, None]  # (1, W, P, 1)
    center_ys = ((grid.ys[..., 0] + grid.ys[..., 1]) / 2.0)[None, :, :, None]  # (1, H, P, 1)
    dx2 = (center_xs - gt_centers[..., 0]).pow(2)  # (B, W, P, G)
    dy2 = (center_ys - gt_centers[..., 1]).pow(2)  # (B, H, P, G)
    return (dx2[:, None] + dy2[:, :, None]).sqrt()


def _masked_mean_plus_std(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, G) mean + unbiased std over dim 1 of (B, K, G) ``values`` where ``mask``."""
    weight = mask.to(values.dtype)
    count = weight.sum(1)
    mean = (values * weight).sum(1) / count.clamp(min=1)
    var = ((values - mean[:, None, :]).pow(2) * weight).sum(1) / (count - 1)
    return mean + var.sqrt()


def _centers_inside(centers: torch.Tensor, candidates: torch.Tensor, gt_bboxes: torch.Tensor
                    ) -> torch.Tensor:
    """(B, K, G) bool: the candidate anchor's centre is more than 0.01 inside the box."""
    cx = centers[:, 0][candidates]
    cy = centers[:, 1][candidates]
    boxes = gt_bboxes[:, None, :, :]
    dists = torch.stack([cx - boxes[..., 0], cy - boxes[..., 1], boxes[..., 2] - cx,
                         boxes[..., 3] - cy], dim=1)
    return dists.min(dim=1)[0] > 0.01
