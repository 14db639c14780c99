"""Batched, fixed-shape detection post-processing (thresholds, top-k, NMS as a keep mask).

Stock mmdet filters candidates per image with boolean indexing and ``nonzero`` before calling
NMS, so every tensor has a data-dependent length. Here thresholds become masks, fixed top-k's
select ``nms_pre`` candidates per image, NMS runs per image on the valid ones among those K
(classes moved apart, see :func:`boxes_apart_by_group`) and returns a fixed-shape (B, K) keep mask
(:func:`nms_keep_mask`, one custom op: a graph compiler sees static shapes end to end), and the
result is packed back into ``max_per_img`` rows per image plus a count.
"""
from typing import Tuple

import torch
import torchvision

# Above this many valid candidates in one image, NMS runs per class group (its cost is
# quadratic in the candidates it compares); below it, one call is cheaper than the loop.
GROUPED_NMS_MIN = 512


@torch.library.custom_op('mmdet_hpu::nms_keep_mask', mutates_args=())
def nms_keep_mask(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor,
                  valid: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS of each image's valid candidates within each group, as a fixed-shape mask.

    Per image, the valid candidates are taken out, moved apart by group
    (:func:`boxes_apart_by_group`, so NMS never lets one group suppress another and it can run
    group by group without changing its result) and NMS'd with ``torchvision.ops.nms``: in one
    call, or, above :data:`GROUPED_NMS_MIN` candidates, one call per group (the cost of a call
    grows with candidates x kept boxes, so splitting crowded images saves most of it). Invalid
    candidates are never touched. To a graph compiler (dynamo, ``hpu_backend``) this is one op
    from fixed shapes to a (B, K) mask: the data-dependent lengths never leave it.

    Args:
        boxes (Tensor): (B, K, 4) boxes; only boxes of the same image are compared.
        scores (Tensor): (B, K) scores.
        groups (Tensor): (B, K) long group (class; zeros: class-agnostic) of each candidate.
        valid (Tensor): (B, K) bool, False for candidates to drop.
        iou_threshold (float): A box is suppressed when its IoU with a kept, higher-scoring
            box of its group is > this.

    Returns:
        Tensor: (B, K) bool, True for the boxes NMS keeps (never an invalid one).
    """
    keep = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    for img in range(scores.shape[0]):
        # Data-dependent index lists, consumed here: the op's output shape is static.
        inds = valid[img].nonzero().squeeze(1)
        if inds.numel() == 0:
            continue
        img_groups = groups[img, inds]
        img_boxes = boxes_apart_by_group(boxes[img, inds], img_groups)
        if inds.numel() > GROUPED_NMS_MIN:
            kept = _grouped_nms(img_boxes, scores[img, inds], img_groups, iou_threshold)
        else:
            kept = torchvision.ops.nms(img_boxes, scores[img, inds], iou_threshold)
        keep[img].index_fill_(0, inds[kept], True)
    return keep


def boxes_apart_by_group(boxes: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """One image's (N, 4) boxes moved so that boxes of different groups never overlap.

    Boxes are shifted by ``-lo`` and then x and y by ``group * span`` (``lo``, ``span``: the
    smallest coordinate and the coordinate extent + 1 of these boxes): mmcv's ``batched_nms``
    trick, with coordinates below ``C * span`` as in stock (float32 rounding of the offsets may
    flip only IoUs within ~1e-3 of the threshold, as in stock).

    Args:
        boxes (Tensor): (N, 4) boxes, N >= 1.
        groups (Tensor): (N, ) long group labels.

    Returns:
        Tensor: (N, 4) shifted boxes.
    """
    low = boxes.amin()
    span = boxes.amax() - low + 1
    return boxes - low + (groups.to(boxes.dtype) * span)[:, None]


def _grouped_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor,
                 iou_threshold: float) -> torch.Tensor:
    """Indices kept by ``torchvision.ops.nms`` run separately on each group of (N, 4) boxes."""
    order = torch.argsort(groups, stable=True)
    counts = torch.bincount(groups).tolist()
    kept, start = [], 0
    for count in counts:
        if count:
            part = order[start:start + count]
            kept.append(part[torchvision.ops.nms(boxes[part], scores[part], iou_threshold)])
            start += count
    return torch.cat(kept)


@nms_keep_mask.register_fake
def _nms_keep_mask_fake(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor,
                        valid: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Shape of :func:`nms_keep_mask` for tracing: (B, K) bool."""
    return scores.new_empty(scores.shape, dtype=torch.bool)


def select_topk_candidates(bboxes: torch.Tensor, objectness: torch.Tensor,
                           cls_scores: torch.Tensor, conf_thr: float, score_thr: float,
                           nms_pre: int
                           ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Threshold every (anchor, class) pair and keep a fixed top-k per image.

    Replicates the filtering of ``YOLOV3Head.get_bboxes`` + ``multiclass_nms``: an anchor needs
    ``objectness >= conf_thr`` (only when ``conf_thr > 0``); a pair needs its *raw* class score
    ``> score_thr``; the score is then ``cls * objectness``.

    Args:
        bboxes (Tensor): (B, A, 4) decoded boxes.
        objectness (Tensor): (B, A) objectness probabilities.
        cls_scores (Tensor): (B, A, C) class probabilities.
        conf_thr (float): objectness threshold; <= 0 disables it.
        score_thr (float): class score threshold (strict).
        nms_pre (int): K, candidates kept per image; <= 0 or > A * C keeps A * C.

    Returns:
        tuple[Tensor, Tensor, Tensor, Tensor]: boxes (B, K, 4), scores (B, K) sorted in
        descending order, labels (B, K) long and valid (B, K) bool (False where fewer than K
        pairs pass the thresholds).
    """
    num_imgs, num_anchors, num_classes = cls_scores.shape
    valid = cls_scores > score_thr
    if conf_thr > 0:
        valid = valid & (objectness >= conf_thr)[..., None]
    scores = cls_scores * objectness[..., None]
    # Scores lie in [0, 1]: -1 ranks every filtered-out pair below every valid one.
    masked = torch.where(valid, scores, torch.full_like(scores, -1.0)).reshape(num_imgs, -1)
    num_pairs = num_anchors * num_classes
    k = num_pairs if nms_pre <= 0 else min(nms_pre, num_pairs)
    _, top_inds = masked.topk(k, dim=1)
    anchor_inds = torch.div(top_inds, num_classes, rounding_mode='floor')
    labels = top_inds - anchor_inds * num_classes
    boxes = torch.gather(bboxes, 1, anchor_inds[..., None].expand(num_imgs, k, 4))
    top_scores = torch.gather(scores.reshape(num_imgs, -1), 1, top_inds)
    top_valid = torch.gather(valid.reshape(num_imgs, -1), 1, top_inds)
    return boxes, top_scores, labels, top_valid


def batched_nms_fixed(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
                      valid: torch.Tensor, num_classes: int, iou_threshold: float,
                      max_per_img: int, class_agnostic: bool = False
                      ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Class-aware NMS of a whole batch, fixed shapes in and out, packed into M rows.

    Args:
        boxes (Tensor): (B, K, 4) candidate boxes.
        scores (Tensor): (B, K) scores.
        labels (Tensor): (B, K) long labels.
        valid (Tensor): (B, K) bool, False for padding candidates.
        num_classes (int): C (unused: groups come from the labels; kept for the signature).
        iou_threshold (float): NMS IoU threshold (a box is suppressed when IoU > threshold).
        max_per_img (int): M, detections kept per image; <= 0 keeps up to K.
        class_agnostic (bool): Group by image only, not by image and class.

    Returns:
        tuple[Tensor, Tensor, Tensor]: dets (B, M, 5) (x1, y1, x2, y2, score) sorted by score
        in descending order, labels (B, M) long, num_dets (B,) long. Rows at and after
        ``num_dets`` are padding: dets 0, labels -1.

    Note:
        One :func:`nms_keep_mask` op (``torchvision.ops.nms`` per image, or per image and
        class in crowded images: cost linear in B; groups moved apart by
        :func:`boxes_apart_by_group`). The order of equal-score detections is unspecified, as
        in stock.
    """
    groups = torch.zeros_like(labels) if class_agnostic else labels
    kept = nms_keep_mask(boxes, scores, groups, valid, float(iou_threshold))
    return pack_detections(boxes, scores, labels, kept, max_per_img)


def pack_detections(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
                    kept: torch.Tensor, max_per_img: int
                    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gather the kept candidates of each image into ``max_per_img`` rows, best score first.

    Args:
        boxes (Tensor): (B, K, 4).
        scores (Tensor): (B, K).
        labels (Tensor): (B, K) long.
        kept (Tensor): (B, K) bool.
        max_per_img (int): M; <= 0 or > K means K.

    Returns:
        tuple[Tensor, Tensor, Tensor]: dets (B, M, 5), labels (B, M), num_dets (B,), as in
        :func:`batched_nms_fixed`.
    """
    num_imgs, k = scores.shape
    m = k if max_per_img <= 0 else min(max_per_img, k)
    ranked = torch.where(kept, scores, torch.full_like(scores, -1.0))
    _, order = ranked.topk(m, dim=1)
    num_dets = kept.sum(dim=1).clamp(max=m)
    row_valid = torch.arange(m, device=scores.device)[None, :] < num_dets[:, None]
    out_boxes = torch.gather(boxes, 1, order[..., None].expand(num_imgs, m, 4))
    out_scores = torch.gather(scores, 1, order)
    dets = torch.cat([out_boxes, out_scores[..., None]], dim=-1)
    dets = torch.where(row_valid[..., None], dets, torch.zeros_like(dets))
    out_labels = torch.gather(labels, 1, order)
    out_labels = torch.where(row_valid, out_labels, torch.full_like(out_labels, -1))
    return dets, out_labels, num_dets
