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
    boxes = gt_bboxes[:, None, :, :]  # (B, 1, G, 4)
    xs = points[None, :, None, 0]  # (1, A, 1)
    ys = points[None, :, None, 1]
    left = xs - boxes[..., 0]
    right = boxes[..., 2] - xs
    top = ys - boxes[..., 1]
    bottom = boxes[..., 3] - ys
    bbox_targets = torch.stack((left, top, right, bottom), -1)  # (B, A, G, 4)
    if center_sampling:
        inside = _inside_center_region(xs, ys, boxes, sample_radii)
    else:
        inside = bbox_targets.min(-1)[0] > 0
    max_regress_distance = bbox_targets.max(-1)[0]
    ranges = regress_ranges[None, :, None, :]
    inside_range = ((max_regress_distance >= ranges[..., 0])
                    & (max_regress_distance <= ranges[..., 1]))
    areas = (gt_bboxes[..., 2] - gt_bboxes[..., 0]) * (gt_bboxes[..., 3] - gt_bboxes[..., 1])
    candidate = inside & inside_range & gt_valid[:, None, :]
    areas = torch.where(candidate, areas[:, None, :], torch.full_like(areas[:, None, :], INF))
    min_area, min_area_inds = areas.min(dim=2)  # (B, A)
    labels = torch.gather(gt_labels, 1, min_area_inds)
    labels = torch.where(min_area == INF, torch.full_like(labels, num_classes), labels)
    num_imgs, num_points = min_area_inds.shape
    index = min_area_inds[..., None, None].expand(num_imgs, num_points, 1, 4)
    bbox_targets = torch.gather(bbox_targets, 2, index).squeeze(2)
    return labels, bbox_targets


def _inside_center_region(xs: torch.Tensor, ys: torch.Tensor, boxes: torch.Tensor,
                          sample_radii: torch.Tensor) -> torch.Tensor:
    """(B, A, G) bool: the point lies strictly inside the box clipped to its centre region."""
    radii = sample_radii[None, :, None]
    center_xs = (boxes[..., 0] + boxes[..., 2]) / 2
    center_ys = (boxes[..., 1] + boxes[..., 3]) / 2
    x_mins, y_mins = center_xs - radii, center_ys - radii
    x_maxs, y_maxs = center_xs + radii, center_ys + radii
    region_x1 = torch.where(x_mins > boxes[..., 0], x_mins, boxes[..., 0])
    region_y1 = torch.where(y_mins > boxes[..., 1], y_mins, boxes[..., 1])
    region_x2 = torch.where(x_maxs > boxes[..., 2], boxes[..., 2], x_maxs)
    region_y2 = torch.where(y_maxs > boxes[..., 3], boxes[..., 3], y_maxs)
    dists = torch.stack((xs - region_x1, ys - region_y1, region_x2 - xs, region_y2 - ys), -1)
    return dists.min(-1)[0] > 0


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
