"""FCOS point targets of a whole batch with fixed shapes (``FCOSHead._get_target_single``, batched).

Every point is compared with every (padded) ground-truth box of its image at once: inside the
box (or its centre region with centre sampling), inside the level's regress range, then the
smallest-area box wins (first index on ties, as ``Tensor.min(dim)`` in stock). Padding rows never
win: their area is set to ``INF`` like the boxes a point is not inside.

The points of a level form a grid (x from the column, y from the row), and every test
separates: "inside" is an x test and a y test, and the largest of the four distances is
``max(max(left, right), max(top, bottom))``, so it is inside a range
``[low, high]`` iff (``x-reach >= low`` or ``y-reach >= low``) and both reaches ``<= high``.
The tests are made on (B, W, G) and (B, H, G) and combined with three boolean ops on
(B, H, W, G); the same float values as stock's, compared the same way.
"""
from typing import List, NamedTuple, Sequence, Tuple

import torch

INF = 1e8


class PointGrid(NamedTuple):
    """One level's point grid and constants (float32, as stock's per-point tensors).

    Attributes:
        xs (Tensor): (W,) x of the columns.
        ys (Tensor): (H,) y of the rows.
        regress_range (Tensor): (2,) (low, high).
        radius (Tensor): () ``stride * center_sample_radius``.
    """
    xs: torch.Tensor
    ys: torch.Tensor
    regress_range: torch.Tensor
    radius: torch.Tensor


def point_grids(mlvl_points: Sequence[torch.Tensor], featmap_sizes: Sequence[Tuple[int, int]],
                regress_ranges: torch.Tensor, radii: torch.Tensor) -> List[PointGrid]:
    """Per-level grids from ``MlvlPointGenerator.grid_priors`` points (row-major, x fastest).

    Args:
        mlvl_points (Sequence[Tensor]): per level, (h * w, 2).
        featmap_sizes (Sequence[tuple[int, int]]): per level, (h, w).
        regress_ranges (Tensor): (L, 2) float32.
        radii (Tensor): (L,) float32.

    Returns:
        list[PointGrid]: one per level.
    """
    grids = []
    for level, (points, (h, w)) in enumerate(zip(mlvl_points, featmap_sizes)):
        grid = points.reshape(h, w, 2)
        grids.append(PointGrid(grid[0, :, 0], grid[:, 0, 1], regress_ranges[level],
                               radii[level]))
    return grids


def fcos_point_targets(grids: Sequence[PointGrid], points: torch.Tensor,
                       gt_bboxes: torch.Tensor, gt_labels: torch.Tensor,
                       gt_valid: torch.Tensor, num_classes: int,
                       center_sampling: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """Labels and (left, top, right, bottom) targets of every point of every image.

    Args:
        grids (Sequence[PointGrid]): per level, see :func:`point_grids`.
        points (Tensor): (A, 2) point coordinates (x, y), all levels concatenated (the grids'
            points, row-major).
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
        num_imgs = gt_bboxes.shape[0]
        sides = tuple(side[:, None, :] for side in gt_bboxes.unbind(-1))  # (B, 1, G) each
        areas = ((gt_bboxes[..., 2] - gt_bboxes[..., 0])
                 * (gt_bboxes[..., 3] - gt_bboxes[..., 1]))[:, None, None, :]
        valid = gt_valid[:, None, :]
        min_areas, min_area_inds = [], []
        for grid in grids:
            candidate = _level_candidates(grid, sides, valid, center_sampling)  # (B, H, W, G)
            level_areas = torch.where(candidate, areas, areas.new_full((), INF))
            min_area, inds = level_areas.min(dim=3)
            min_areas.append(min_area.reshape(num_imgs, -1))
            min_area_inds.append(inds.reshape(num_imgs, -1))
        min_area, min_area_inds = torch.cat(min_areas, 1), torch.cat(min_area_inds, 1)
        labels = torch.gather(gt_labels, 1, min_area_inds)
        labels = torch.where(min_area == INF, labels.new_full((), num_classes), labels)
        # The distances to the winning box only: (B, A, 4), the same float ops as stock's.
        boxes = torch.gather(gt_bboxes, 1, min_area_inds[..., None].expand(-1, -1, 4))
        point_xs, point_ys = points[None, :, 0], points[None, :, 1]
        bbox_targets = torch.stack((point_xs - boxes[..., 0], point_ys - boxes[..., 1],
                                    boxes[..., 2] - point_xs, boxes[..., 3] - point_ys), -1)
    return labels, bbox_targets


def _level_candidates(grid: PointGrid, sides: Tuple[torch.Tensor, ...], valid: torch.Tensor,
                      center_sampling: bool) -> torch.Tensor:
    """(B, H, W, G) bool: inside (the centre region of) the box and its regress range."""
    x1, y1, x2, y2 = sides
    xs, ys = grid.xs[None, :, None], grid.ys[None, :, None]  # (1, W, 1), (1, H, 1)
    left, right = xs - x1, x2 - xs  # (B, W, G)
    top, bottom = ys - y1, y2 - ys  # (B, H, G)
    if center_sampling:
        inside_x = _inside_center_span(xs, x1, x2, grid.radius)
        inside_y = _inside_center_span(ys, y1, y2, grid.radius)
    else:  # stock: min(left, top, right, bottom) > 0
        inside_x = (left > 0) & (right > 0)
        inside_y = (top > 0) & (bottom > 0)
    reach_x, reach_y = torch.maximum(left, right), torch.maximum(top, bottom)
    low, high = grid.regress_range[0], grid.regress_range[1]
    part_x = inside_x & (reach_x <= high) & valid
    part_y = inside_y & (reach_y <= high)
    candidate = part_x[:, None, :, :] & part_y[:, :, None, :]
    candidate &= (reach_x >= low)[:, None, :, :] | (reach_y >= low)[:, :, None, :]
    return candidate


def _inside_center_span(coords: torch.Tensor, low_side: torch.Tensor, high_side: torch.Tensor,
                        radius: torch.Tensor) -> torch.Tensor:
    """(B, n, G) bool: the coordinate lies strictly inside the box's centre span on one axis.

    Stock clips with ``where(mins > x1, mins, x1)`` (= ``maximum``) and tests the minimum of
    the four distances ``> 0``; comparing the coordinates directly gives the same booleans.
    """
    centers = (low_side + high_side) / 2
    return ((coords > torch.maximum(centers - radius, low_side))
            & (coords < torch.minimum(centers + radius, high_side)))


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
