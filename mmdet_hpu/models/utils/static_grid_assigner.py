"""Vectorised, fixed-shape equivalent of mmdet's ``GridAssigner`` and YOLO responsible flags.

Every function works on a whole batch of images with ground truth padded to G rows plus a
validity mask, and uses no ``nonzero``, boolean-mask indexing, ``.item()`` or data-dependent
Python branch, so the graph has the same shape for every batch.
"""
from typing import Sequence, Tuple, Union

import torch

Threshold = Union[float, Tuple[float, float]]


def batched_box_iou(gt_bboxes: torch.Tensor, anchors: torch.Tensor,
                    eps: float = 1e-6) -> torch.Tensor:
    """IoU of every GT box with every anchor, numerically identical to ``BboxOverlaps2D``.

    Args:
        gt_bboxes (Tensor): (B, G, 4) boxes, (x1, y1, x2, y2).
        anchors (Tensor): (A, 4) anchors shared by every image.
        eps (float): Lower bound of the union, as in ``bbox_overlaps``.

    Returns:
        Tensor: (B, G, A) IoU.
    """
    area_gt = (gt_bboxes[..., 2] - gt_bboxes[..., 0]) * (gt_bboxes[..., 3] - gt_bboxes[..., 1])
    area_anchor = (anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1])
    lt = torch.max(gt_bboxes[..., :, None, :2], anchors[None, None, :, :2])
    rb = torch.min(gt_bboxes[..., :, None, 2:], anchors[None, None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    overlap = wh[..., 0] * wh[..., 1]
    union = area_gt[..., None] + area_anchor[None, None, :] - overlap
    return overlap / union.clamp(min=eps)


def responsible_flags(gt_bboxes: torch.Tensor, gt_valid: torch.Tensor,
                      level_cells: Sequence[torch.Tensor],
                      featmap_sizes: Sequence[Tuple[int, int]],
                      strides: Sequence[Tuple[int, int]]) -> torch.Tensor:
    """Flag the anchors whose grid cell contains the centre of a (valid) GT box.

    Equivalent to ``YOLOAnchorGenerator.responsible_flags`` for every image, but done as an
    (A x G) comparison followed by ``any`` instead of an index-put of GT-count length. Like the
    stock index-put, a negative cell index wraps around (Python indexing); a cell index past the
    end, for which stock raises an ``IndexError``, flags nothing here.

    Args:
        gt_bboxes (Tensor): (B, G, 4) padded boxes.
        gt_valid (Tensor): (B, G) bool validity mask.
        level_cells (Sequence[Tensor]): per level, (A_l,) long row-major cell index of every
            anchor (``arange(h * w).repeat_interleave(num_base_anchors)``).
        featmap_sizes (Sequence[tuple[int, int]]): per level, (h, w).
        strides (Sequence[tuple[int, int]]): per level, (stride_w, stride_h).

    Returns:
        Tensor: (B, A) bool, A = sum of A_l.
    """
    center_x = (gt_bboxes[..., 0] + gt_bboxes[..., 2]) * 0.5
    center_y = (gt_bboxes[..., 1] + gt_bboxes[..., 3]) * 0.5
    flags = []
    for cells, (feat_h, feat_w), (stride_w, stride_h) in zip(level_cells, featmap_sizes, strides):
        grid_x = torch.floor(center_x / stride_w).long()
        grid_y = torch.floor(center_y / stride_h).long()
        grid_idx = grid_y * feat_w + grid_x
        grid_idx = torch.where(grid_idx < 0, grid_idx + feat_h * feat_w, grid_idx)
        hit = (cells[None, :, None] == grid_idx[:, None, :]) & gt_valid[:, None, :]
        flags.append(hit.any(dim=-1))
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
    get IoU 0 in the negative stage (0 valid GTs still make every anchor negative) and never take
    part in the positive stages.

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
    valid = gt_valid[..., None]
    any_valid = gt_valid.any(dim=1, keepdim=True)

    # 1-2. default -1; negatives from the best IoU over all (valid) GTs.
    max_overlaps = torch.where(valid, overlaps, torch.zeros_like(overlaps)).amax(dim=1)
    # Stock returns "everything negative" when an image has no GT, whatever the thresholds.
    negative = _negative_mask(max_overlaps, neg_iou_thr) | ~any_valid
    assigned = torch.where(negative, torch.zeros_like(flags, dtype=torch.long),
                           torch.full_like(flags, -1, dtype=torch.long))

    # 3. positives: best valid GT of each responsible anchor, above pos_iou_thr.
    keep = valid & flags[:, None, :]
    masked = torch.where(keep, overlaps, torch.full_like(overlaps, -1.0))
    max_overlaps, argmax_overlaps = masked.max(dim=1)
    positive = (max_overlaps > pos_iou_thr) & flags
    assigned = torch.where(positive, argmax_overlaps + 1, assigned)

    # 4. every valid GT claims its best responsible anchor(s); the last GT wins.
    gt_max_overlaps, gt_argmax_overlaps = masked.max(dim=2)
    claims = gt_valid & (gt_max_overlaps > min_pos_iou)
    if gt_max_assign_all:
        claimed = masked == gt_max_overlaps[..., None]
    else:
        anchor_ids = torch.arange(num_anchors, device=overlaps.device)
        claimed = anchor_ids[None, None, :] == gt_argmax_overlaps[..., None]
    claimed = claimed & flags[:, None, :] & claims[..., None]
    gt_ids = torch.arange(1, num_gts + 1, device=overlaps.device, dtype=torch.int32)
    winner = torch.where(claimed, gt_ids[None, :, None], torch.zeros_like(gt_ids)[None, :, None])
    winner = winner.amax(dim=1).long()
    return torch.where(winner > 0, winner, assigned)
