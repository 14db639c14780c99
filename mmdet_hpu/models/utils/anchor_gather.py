"""Gather the raw predictions of selected anchors straight from YOLO prediction maps.

A YOLO prediction map is (B, n * attrib, h, w): channel-first, anchor ``(cell, base)`` at
``[b, base * attrib + attr, cell]``. Permuting it to anchor-major order copies the whole map;
when only K anchors per image matter (the positives in the loss, the ``nms_pre`` best at
inference) a fixed-size integer gather of (B, K, attrib) values is much cheaper.
"""
from typing import Sequence, Tuple

import torch


def gather_level_preds(pred_map: torch.Tensor, anchor_inds: torch.Tensor,
                       num_base: int) -> torch.Tensor:
    """Predictions of K anchors per image of one level.

    Args:
        pred_map (Tensor): (B, n * attrib, h, w), contiguous.
        anchor_inds (Tensor): (B, K) long level-local anchor index ``cell * n + base`` (the
            ``grid_priors`` order), in [0, h * w * n).
        num_base (int): n, anchors per cell.

    Returns:
        Tensor: (B, K, attrib).
    """
    num_imgs, channels, feat_h, feat_w = pred_map.shape
    grid = pred_map.reshape(num_imgs, num_base, channels // num_base, feat_h * feat_w)
    cell = torch.div(anchor_inds, num_base, rounding_mode='floor')
    img_ids = torch.arange(num_imgs, device=pred_map.device)[:, None]
    # Integer (not boolean) advanced indexing around a slice: the (B, K) index dims come first.
    return grid[img_ids, anchor_inds - cell * num_base, :, cell]


def _flat_offsets(anchor_inds: torch.Tensor, attribs: torch.Tensor, num_base: int,
                  num_attrib: int, num_cells: int) -> torch.Tensor:
    """Offsets of (anchor, attribute) pairs in a flattened (n * attrib * h * w) level map.

    Args:
        anchor_inds (Tensor): (...) long anchor index ``cell * n + base``.
        attribs (Tensor): (M,) long attribute indices.
        num_base (int): n.
        num_attrib (int): attrib.
        num_cells (int): h * w.

    Returns:
        Tensor: (..., M) long offsets.
    """
    cell = torch.div(anchor_inds, num_base, rounding_mode='floor')
    base = anchor_inds - cell * num_base
    return (base * (num_attrib * num_cells) + cell)[..., None] + attribs * num_cells


def gather_objectness_and_anchors(pred_map: torch.Tensor, anchor_inds: torch.Tensor,
                                  num_base: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Every anchor's objectness logit plus all predictions of K anchors, in one ``gather``.

    One gather means one full-size gradient buffer in the backward (a ``scatter_add``), where
    separate reads (a slice and an index) would allocate and add two. The objectness comes back
    as the first column of (objectness, next channel) pairs, i.e. a stride-2 view, like stock's
    ``pred_map[..., 4]`` of its anchor-major copy: CPU elementwise kernels then take the same
    (non-vectorised) path and round exactly as for stock.

    Args:
        pred_map (Tensor): (B, n * attrib, h, w), contiguous.
        anchor_inds (Tensor): (B, K) long level-local anchor index ``cell * n + base``.
        num_base (int): n, anchors per cell.

    Returns:
        tuple[Tensor, Tensor]: objectness logits (B, A_l) (anchor order of ``grid_priors``)
        and predictions (B, K, attrib) of the K anchors.
    """
    num_imgs, channels, feat_h, feat_w = pred_map.shape
    num_cells, num_attrib = feat_h * feat_w, channels // num_base
    num_anchors, k = num_cells * num_base, anchor_inds.shape[1]
    device = pred_map.device
    conf_offsets = _flat_offsets(torch.arange(num_anchors, device=device),
                                 torch.arange(4, 6, device=device), num_base, num_attrib,
                                 num_cells)  # (A_l, 2)
    anchor_offsets = _flat_offsets(anchor_inds, torch.arange(num_attrib, device=device),
                                   num_base, num_attrib, num_cells)  # (B, K, attrib)
    offsets = torch.cat([conf_offsets.reshape(1, -1).expand(num_imgs, -1),
                         anchor_offsets.reshape(num_imgs, -1)], dim=1)
    values = pred_map.reshape(num_imgs, -1).gather(1, offsets)
    objectness = values[:, :num_anchors * 2].reshape(num_imgs, num_anchors, 2)[..., 0]
    return objectness, values[:, num_anchors * 2:].reshape(num_imgs, k, num_attrib)


def gather_anchor_preds(pred_maps: Sequence[torch.Tensor], anchor_inds: torch.Tensor,
                        num_base: int) -> torch.Tensor:
    """Predictions of K anchors per image indexed over all levels.

    Every level is gathered at the (clamped) level-local index and the level that owns each
    anchor is selected with ``where``: fixed shapes, no boolean indexing.

    Args:
        pred_maps (Sequence[Tensor]): per level, (B, n * attrib, h, w).
        anchor_inds (Tensor): (B, K) long anchor index over the concatenated levels.
        num_base (int): n, anchors per cell.

    Returns:
        Tensor: (B, K, attrib).
    """
    gathered, start = None, 0
    for pred_map in pred_maps:
        num_anchors = pred_map.shape[-2] * pred_map.shape[-1] * num_base
        local = anchor_inds - start
        level = gather_level_preds(pred_map, local.clamp(0, num_anchors - 1), num_base)
        if gathered is None:
            gathered = level
        else:
            in_level = (local >= 0)[..., None].expand_as(level)  # expanded: faster on CPU
            gathered = torch.where(in_level, level, gathered)
        start += num_anchors
    return gathered
