"""``ATSSAssigner`` of a whole batch with fixed shapes.

Stock assigns one image at a time on the anchors inside the image (``flat_anchors[inside]``),
gathers candidates with index lists and writes the result with boolean-mask indexing. Here the
whole batch (B, A, G) is assigned at once over every anchor: anchors outside the image get an
infinite centre distance (so they are never candidates while a valid anchor is left) and are
masked out of the IoU statistics; padding rows of the ground truth never become positives.
"""
from typing import Optional, Sequence

import torch
from mmdet.core.bbox.iou_calculators import bbox_overlaps

INF = 100000000


def anchor_centers(anchors: torch.Tensor) -> torch.Tensor:
    """(..., 2) centres (cx, cy) of (..., 4) boxes, computed as ``ATSSAssigner`` does."""
    return torch.stack(((anchors[..., 0] + anchors[..., 2]) / 2.0,
                        (anchors[..., 1] + anchors[..., 3]) / 2.0), dim=-1)


def atss_assign(anchors: torch.Tensor, num_level_anchors: Sequence[int], gt_bboxes: torch.Tensor,
                gt_valid: torch.Tensor, topk: int,
                anchor_valid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """1-based assigned ground-truth index of every anchor of every image (0: negative).

    Steps as ``ATSSAssigner.assign``: IoU and centre distance of every (anchor, box) pair; per
    level and box the ``topk`` anchors of smallest centre distance (``Tensor.topk``, as stock);
    threshold = mean + std (unbiased) of the candidates' IoUs; a candidate is positive when its
    IoU ``>=`` the threshold and its centre lies more than 0.01 inside the box; an anchor
    positive for several boxes takes the one of highest IoU (first index on ties).

    Args:
        anchors (Tensor): (A, 4) anchors of all levels, level by level.
        num_level_anchors (Sequence[int]): A_l per level.
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
    num_imgs = gt_bboxes.shape[0]
    overlaps = bbox_overlaps(anchors[None].expand(num_imgs, -1, 4), gt_bboxes)  # (B, A, G)
    centers = anchor_centers(anchors)  # (A, 2)
    gt_centers = anchor_centers(gt_bboxes)  # (B, G, 2)
    distances = (centers[None, :, None, :] - gt_centers[:, None, :, :]).pow(2).sum(-1).sqrt()
    if anchor_valid is not None:
        distances = torch.where(anchor_valid[..., None], distances,
                                torch.full_like(distances, INF))
    candidates = _level_topk_candidates(distances, num_level_anchors, topk)  # (B, K, G)
    candidate_overlaps = torch.gather(overlaps, 1, candidates)
    if anchor_valid is None:
        threshold = candidate_overlaps.mean(1) + candidate_overlaps.std(1)
        candidate_ok = gt_valid[:, None, :]
    else:
        candidate_valid = torch.gather(anchor_valid[..., None].expand_as(overlaps), 1,
                                       candidates)
        threshold = _masked_mean_plus_std(candidate_overlaps, candidate_valid)
        candidate_ok = candidate_valid & gt_valid[:, None, :]
    is_pos = candidate_overlaps >= threshold[:, None, :]
    is_pos = is_pos & _centers_inside(centers, candidates, gt_bboxes) & candidate_ok
    positive = torch.zeros_like(overlaps, dtype=torch.bool).scatter(1, candidates, is_pos)
    overlaps_inf = torch.where(positive, overlaps, torch.full_like(overlaps, -INF))
    max_overlaps, argmax_overlaps = overlaps_inf.max(dim=2)
    return torch.where(max_overlaps != -INF, argmax_overlaps + 1,
                       torch.zeros_like(argmax_overlaps))


def _level_topk_candidates(distances: torch.Tensor, num_level_anchors: Sequence[int],
                           topk: int) -> torch.Tensor:
    """(B, K, G) anchor indices: per level the ``min(topk, A_l)`` closest to each box centre."""
    candidates, start = [], 0
    for num in num_level_anchors:
        level = distances[:, start:start + num, :]
        _, inds = level.topk(min(topk, num), dim=1, largest=False)
        candidates.append(inds + start)
        start += num
    return torch.cat(candidates, dim=1)


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
