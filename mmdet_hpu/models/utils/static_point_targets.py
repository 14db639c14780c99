"""FCOS point targets of a whole batch with fixed shapes (``FCOSHead._get_target_single``, batched).

Every point is compared with every (padded) ground-truth box of its image at once, (B, A, G):
inside the box (or its centre region with centre sampling), inside the level's regress range,
then the smallest-area box wins (first index on ties, as ``Tensor.min(dim)`` in stock). Padding
rows never win: their area is set to ``INF`` like the boxes a point is not inside.
"""
from typing import Tuple

import torch

INF = 1e8


def fcos_point_targets(points: torch.Tensor, regress_ranges: torch.Tensor,
                       sample_radii: torch.Tensor, gt_bboxes: torch.Tensor,
                       gt_labels: torch.Tensor, gt_valid: torch.Tensor, num_classes: int,
                       center_sampling: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """Labels and (left, top, right, bottom) targets of every point of every image.

    Args:
        points (Tensor): (A, 2) point coordinates (x, y), all levels concatenated.
        regress_ranges (Tensor): (A, 2) regress range (low, high) of each point's level.
        sample_radii (Tensor): (A,) ``stride * center_sample_radius`` of each point's level.
        gt_bboxes (Tensor): (B, G, 4) padded boxes.
        gt_labels (Tensor): (B, G) long labels.
        gt_valid (Tensor): (B, G) bool, False for padding rows.
        num_classes (int): C; background label.
        center_sampling (bool): Positives must lie in the centre region of the box.

    Returns:
        tuple[Tensor, Tensor]: labels (B, A) long (C for background) and bbox targets
        (B, A, 4), equal to stock's wherever the label is not background.
    """
    with torch.no_grad():
        xs = points[None, :, None, 0]  # (1, A, 1)
        ys = points[None, :, None, 1]
        x1, y1, x2, y2 = (side[:, None, :] for side in gt_bboxes.unbind(-1))  # (B, 1, G)
        # (B, A, G) distances; stock's min/max over the stacked four, without the stack.
        left, top, right, bottom = xs - x1, ys - y1, x2 - xs, y2 - ys
        if center_sampling:
            inside = _inside_center_region(xs, ys, (x1, y1, x2, y2), sample_radii)
        else:
            inside = torch.minimum(torch.minimum(left, top), torch.minimum(right, bottom)) > 0
        max_regress_distance = torch.maximum(torch.maximum(left, top), torch.maximum(right, bottom))
        ranges = regress_ranges[None, :, None, :]
        candidate = ((max_regress_distance >= ranges[..., 0])
                     & (max_regress_distance <= ranges[..., 1]))
        candidate &= inside
        candidate &= gt_valid[:, None, :]
        areas = ((gt_bboxes[..., 2] - gt_bboxes[..., 0])
                 * (gt_bboxes[..., 3] - gt_bboxes[..., 1]))[:, None, :]
        areas = torch.where(candidate, areas, areas.new_full((), INF))
        min_area, min_area_inds = areas.min(dim=2)  # (B, A)
        labels = torch.gather(gt_labels, 1, min_area_inds)
        labels = torch.where(min_area == INF, labels.new_full((), num_classes), labels)
        # The distances to the winning box only: (B, A, 4), the same float ops as stock's.
        boxes = torch.gather(gt_bboxes, 1, min_area_inds[..., None].expand(-1, -1, 4))
        point_xs, point_ys = points[None, :, 0], points[None, :, 1]
        bbox_targets = torch.stack((point_xs - boxes[..., 0], point_ys - boxes[..., 1],
                                    boxes[..., 2] - point_xs, boxes[..., 3] - point_ys), -1)
    return labels, bbox_targets


def _inside_center_region(xs: torch.Tensor, ys: torch.Tensor, sides: Tuple[torch.Tensor, ...],
                          sample_radii: torch.Tensor) -> torch.Tensor:
    """(B, A, G) bool: the point lies strictly inside the box clipped to its centre region.

    Stock clips with ``where(x_mins > x1, x_mins, x1)`` (= ``maximum``) and tests the minimum of
    the four distances ``> 0``; comparing the coordinates directly gives the same booleans.
    """
    x1, y1, x2, y2 = sides
    radii = sample_radii[None, :, None]
    center_xs = (x1 + x2) / 2
    center_ys = (y1 + y2) / 2
    inside = xs > torch.maximum(center_xs - radii, x1)
    inside &= ys > torch.maximum(center_ys - radii, y1)
    inside &= xs < torch.minimum(center_xs + radii, x2)
    inside &= ys < torch.minimum(center_ys + radii, y2)
    return inside


def fcos_centerness_target(bbox_targets: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """``FCOSHead.centerness_target`` of every point; 0 (not NaN) where ``positive`` is False.

    Args:
        bbox_targets (Tensor): (..., 4) (left, top, right, bottom).
        positive (Tensor): (...) bool.

    Returns:
        Tensor: (...) centerness targets.
    """
    safe = torch.where(positive[..., None], bbox_targets, torch.ones_like(bbox_targets))
    left, top, right, bottom = safe.unbind(-1)
    centerness = (torch.minimum(left, right) / torch.maximum(left, right)) * (
        torch.minimum(top, bottom) / torch.maximum(top, bottom))
    return torch.where(positive, torch.sqrt(centerness), torch.zeros_like(centerness))
