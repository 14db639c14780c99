"""Vectorised, fixed-shape equivalent of mmdet's ``GridAssigner`` and YOLO responsible flags.

Every function works on a whole batch of images with ground truth padded to G rows plus a
validity mask, and uses no ``nonzero``, boolean-mask indexing, ``.item()`` or data-dependent
Python branch, so the graph has the same shape for every batch.
"""
from typing import Sequence, Tuple, Union

import torch

Threshold = Union[float, Tuple[float, float]]


def level_box_iou(gt_bboxes: torch.Tensor, anchor_x: torch.Tensor, anchor_y: torch.Tensor,
                  eps: float = 1e-6) -> torch.Tensor:
    """IoU of every GT box with every anchor of one grid level, computed separably.

    Grid anchors are the product of per-column x extents and per-row y extents, so the
    intersection width only needs the (B, G, w, n) column pairs and the height the (B, G, h, n)
    row pairs; only their product and the union are (B, G, h, w, n). The float operations are
    those of ``BboxOverlaps2D`` (``bbox_overlaps(gt, anchors)``), so the result is bitwise equal.

    Args:
        gt_bboxes (Tensor): (B, G, 4) boxes, (x1, y1, x2, y2).
        anchor_x (Tensor): (w, n, 2) x1, x2 of the n anchors of every grid column.
        anchor_y (Tensor): (h, n, 2) y1, y2 of the n anchors of every grid row.
        eps (float): Lower bound of the union, as in ``bbox_overlaps``.

    Returns:
        Tensor: (B, G, h * w * n) IoU, anchors in ``grid_priors`` order (row, column, base).
    """
    num_imgs, num_gts = gt_bboxes.shape[:2]
    gt = gt_bboxes[:, :, None, None, :]
    inter_w = (torch.min(gt[..., 2], anchor_x[..., 1]) -
               torch.max(gt[..., 0], anchor_x[..., 0])).clamp(min=0)  # (B, G, w, n)
    inter_h = (torch.min(gt[..., 3], anchor_y[..., 1]) -
               torch.max(gt[..., 1], anchor_y[..., 0])).clamp(min=0)  # (B, G, h, n)
    overlap = inter_w[:, :, None] * inter_h[:, :, :, None]  # (B, G, h, w, n)
    area_gt = (gt_bboxes[..., 2] - gt_bboxes[..., 0]) * (gt_bboxes[..., 3] - gt_bboxes[..., 1])
    width = anchor_x[..., 1] - anchor_x[..., 0]  # (w, n)
    height = anchor_y[..., 1] - anchor_y[..., 0]  # (h, n)
    area_anchor = width[None] * height[:, None]  # (h, w, n)
    union = (area_gt[..., None, None, None] + area_anchor).sub_(overlap).clamp_(min=eps)
    return overlap.div_(union).reshape(num_imgs, num_gts, -1)


def responsible_flags(gt_bboxes: torch.Tensor, gt_valid: torch.Tensor,
                      featmap_sizes: Sequence[Tuple[int, int]],
                      strides: Sequence[Tuple[int, int]],
                      num_base_anchors: Sequence[int]) -> torch.Tensor:
    """Flag the anchors whose grid cell contains the centre of a (valid) GT box.

    Equivalent to ``YOLOAnchorGenerator.responsible_flags`` for every image: each GT scatters a
    flag into its cell of a (B, h * w + 1) grid whose extra last column absorbs padding rows and
    out-of-range cells, so the shapes never depend on the data. Like the stock index-put, a
    negative cell index wraps around once (Python indexing); a cell index out of range after that
    (stock raises an ``IndexError``) flags nothing here.

    Args:
        gt_bboxes (Tensor): (B, G, 4) padded boxes.
        gt_valid (Tensor): (B, G) bool validity mask.
        featmap_sizes (Sequence[tuple[int, int]]): per level, (h, w).
        strides (Sequence[tuple[int, int]]): per level, (stride_w, stride_h).
        num_base_anchors (Sequence[int]): per level, anchors per cell n.

    Returns:
        Tensor: (B, A) bool, A = sum of h * w * n, anchors in ``grid_priors`` order.
    """
    num_imgs = gt_bboxes.shape[0]
    center_x = (gt_bboxes[..., 0] + gt_bboxes[..., 2]) * 0.5
    center_y = (gt_bboxes[..., 1] + gt_bboxes[..., 3]) * 0.5
    flags = []
    for (feat_h, feat_w), (stride_w, stride_h), num_base in zip(featmap_sizes, strides,
                                                                num_base_anchors):
        num_cells = feat_h * feat_w
        grid_x = torch.floor(center_x / stride_w).long()
        grid_y = torch.floor(center_y / stride_h).long()
        cell = grid_y * feat_w + grid_x
        cell = torch.where(cell < 0, cell + num_cells, cell)
        in_grid = gt_valid & (cell >= 0) & (cell < num_cells)
        cell = torch.where(in_grid, cell, torch.full_like(cell, num_cells))
        grid = torch.zeros(num_imgs, num_cells + 1, dtype=torch.bool, device=gt_bboxes.device)
        grid = grid.scatter(1, cell, torch.ones_like(in_grid))[:, :num_cells]
        flags.append(grid[..., None].expand(num_imgs, num_cells, num_base).reshape(num_imgs, -1))
    return torch.cat(flags, dim=1)


def _negative_mask(max_overlaps: torch.Tensor, neg_iou_thr: Threshold) -> torch.Tensor:
    """Step 2 of ``GridAssigner``: anchors whose best IoU is low enough to be negatives."""
    if isinstance(neg_iou_thr, (tuple, list)):
        low, high = neg_iou_thr
        return (max_overlaps > low) & (max_overlaps <= high)
    return (max_overlaps >= 0) & (max_overlaps <= neg_iou_thr)


def grid_assign(overlaps: torch.Tensor, flags: torch.Tensor, gt_valid: torch.Tensor,
                pos_iou_thr: float, neg_iou_thr: Threshold, min_pos_iou: float = 0.0,
                gt_max_assign_all: bool = True) -> torch.Tensor:
    """Assign each anchor -1 (ignore), 0 (negative) or a 1-based GT index, like ``GridAssigner``.

    The stock per-GT loop (step 4) becomes one masked reduction: every anchor takes the largest
    1-based index of the GTs that claim it, so the last GT wins, as in the loop. Padded GT rows
    get IoU -1, below every real IoU, so they never win a reduction over the GTs (0 valid GTs
    make every anchor negative, as in stock) and never claim an anchor. Steps 2 and 3 share one
    reduction over the GTs: masking the columns of non-responsible anchors, as stock does before
    step 3, does not change the rows of responsible ones. Equal to stock for ``min_pos_iou >= -1``
    (an IoU threshold; stock masks with -1 where this uses -inf).

    Args:
        overlaps (Tensor): (B, G, A) IoU of every GT row with every anchor.
        flags (Tensor): (B, A) bool responsible flags.
        gt_valid (Tensor): (B, G) bool validity mask.
        pos_iou_thr (float): IoU above which a responsible anchor is positive.
        neg_iou_thr (float | tuple[float, float]): negative IoU threshold or (low, high] range.
        min_pos_iou (float): minimum IoU for the per-GT best-anchor assignment.
        gt_max_assign_all (bool): give a GT every responsible anchor tied at its best IoU
            (True) or only the first one (False).

    Returns:
        Tensor: (B, A) long assigned GT index (1-based), 0 or -1.
    """
    num_imgs, num_gts, num_anchors = overlaps.shape
    any_valid = gt_valid.any(dim=1, keepdim=True)
    # Padded rows rank below every real IoU (>= 0) in both reductions over the GTs.
    overlaps = torch.where(gt_valid[..., None], overlaps, torch.full_like(overlaps, -1.0))

    # 1-2. default -1; negatives from the best IoU over the valid GTs (-1 when none).
    max_overlaps, argmax_overlaps = overlaps.max(dim=1)
    # Stock returns "everything negative" when an image has no GT, whatever the thresholds.
    negative = _negative_mask(max_overlaps, neg_iou_thr) | ~any_valid
    assigned = torch.where(negative, torch.zeros_like(flags, dtype=torch.long),
                           torch.full_like(flags, -1, dtype=torch.long))

    # 3. positives: best valid GT of each responsible anchor, above pos_iou_thr (the same
    # reduction: a responsible anchor's row is not masked by flags).
    positive = (max_overlaps > pos_iou_thr) & flags
    assigned = torch.where(positive, argmax_overlaps + 1, assigned)

    # 4. every valid GT claims its best responsible anchor(s); the last GT wins. Anchors that
    # are not responsible get -inf: never a GT's best unless it has no responsible anchor,
    # and then its best (-inf) fails ``> min_pos_iou``.
    # In place: ``overlaps`` is this function's own copy (the where above), one buffer less.
    masked = overlaps.masked_fill_(~flags[:, None, :], float('-inf'))
    gt_max_overlaps, gt_argmax_overlaps = masked.max(dim=2)
    claims = gt_valid & (gt_max_overlaps > min_pos_iou)
    if gt_max_assign_all:
        # NaN equals nothing: GTs without a claim match no anchor.
        no_claim = torch.full_like(gt_max_overlaps, float('nan'))
        target = torch.where(claims, gt_max_overlaps, no_claim)
        claimed = masked == target[..., None]
    else:
        anchor_ids = torch.arange(num_anchors, device=overlaps.device)
        target = torch.where(claims, gt_argmax_overlaps, torch.full_like(gt_argmax_overlaps, -1))
        claimed = anchor_ids == target[..., None]
    gt_ids = torch.arange(1, num_gts + 1, device=overlaps.device, dtype=torch.int32)
    winner = torch.where(claimed, gt_ids[None, :, None], torch.zeros_like(gt_ids)[None, :, None])
    winner = winner.amax(dim=1).long()
    return torch.where(winner > 0, winner, assigned)
