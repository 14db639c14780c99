"""Batched fixed-shape inference shared by the dense heads (RetinaNet, SSD, FCOS, ATSS).

Stock ``BaseDenseHead.get_bboxes`` loops over images and levels and filters with
``filter_scores_and_topk`` (boolean mask + ``nonzero``), then calls NMS once per image. Here
each level keeps a fixed ``nms_pre`` (prior, class) pairs per image with top-k's (the score
threshold stays a mask, see :func:`select_level_candidates`), only those candidates are
gathered and decoded, and one NMS call serves the whole batch
(:func:`~mmdet_hpu.models.utils.static_postprocess.batched_nms_fixed`).
:class:`StaticDenseInferenceMixin` (FCOS, ATSS) and
:class:`~mmdet_hpu.models.dense_heads.static_anchor_head.StaticAnchorHeadMixin` (RetinaNet,
SSD) both run :func:`select_candidates`, :func:`finish_boxes` and :func:`static_detections`.
"""
import functools
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from mmcv.runner import force_fp32

from .static_postprocess import batched_nms_fixed
from .test_params import NMSParams, parse_nms_cfg, parse_test_cfg


@functools.lru_cache(maxsize=None)
def class_group_size(num_classes: int) -> int:
    """The divisor of C closest to sqrt(C): classes per cell in :func:`select_level_candidates`.

    A plain loop: dynamo cannot trace ``min(..., key=lambda ...)`` (a graph break in every
    traced post-processing call, caught by ``tests/test_analysis/test_audit_static_heads.py``).
    Cached: the loop costs ~10 us of Python per level in eager mode.
    """
    root = num_classes ** 0.5
    best = 1
    for size in range(2, num_classes + 1):
        if num_classes % size == 0 and abs(size - root) < abs(best - root):
            best = size
    return best


def top_or_all(values: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The k largest values along dim 1 and their indices, in no set order (every column, in
    place, when k >= the row length; unsorted top-k's are a few times cheaper on the CPU)."""
    if k >= values.shape[1]:
        inds = torch.arange(values.shape[1], device=values.device)
        return values, inds.expand(values.shape[0], -1)
    return values.topk(k, dim=1, sorted=False)


# Levels with at most this many times K pairs rank all their pairs at once (fewer ops).
DIRECT_TOPK_FACTOR = 8


def select_level_candidates(cls_map: torch.Tensor, num_base: int, num_classes: int,
                            use_sigmoid: bool, score_thr: float, nms_pre: int
                            ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``filter_scores_and_topk`` of one level of a whole batch, with fixed shapes.

    Stock keeps the ``nms_pre`` best pairs among those with ``score > score_thr``. Passing
    pairs outrank failing ones, so these are the top-K (K = ``nms_pre``) pairs overall, with
    the failing ones among them marked invalid. The top-K pairs lie in the K anchors of highest
    best-class score, and within those in the K cells (anchor, group of classes) of highest
    maximum (a cell outside them has K cells above its best pair, each holding a pair above
    it), so three small top-k's replace one over A_l * C pairs: anchors by best score, cells
    (classes in groups of :func:`class_group_size`) by maximum, pairs of the picked cells.
    Sigmoid scores are ranked by their logits (sigmoid is monotonic) and only the K picked
    ones go through the sigmoid. The result is stock's set unless pair scores tie at the K-th
    place (a tie of anchor or cell maxima at their cut changes nothing unless it is one).

    Args:
        cls_map (Tensor): (B, P * C', H, W) class logits; C' = C (sigmoid) or C + 1 (softmax,
            background last, dropped as stock does).
        num_base (int): P, base priors per position.
        num_classes (int): C.
        use_sigmoid (bool): Sigmoid scores, else softmax.
        score_thr (float): A pair needs ``score > score_thr``.
        nms_pre (int): K pairs kept per image; <= 0 or > A_l * C keeps all of them.

    Returns:
        tuple[Tensor, Tensor, Tensor, Tensor]: scores (B, K), anchor indices (B, K), labels
        (B, K) and valid (B, K) bool (False where fewer than K pairs pass), in no set order.
    """
    num_imgs, channels, height, width = cls_map.shape
    depth, num_pos = channels // num_base, height * width
    maps = cls_map.reshape(num_imgs, num_base, depth, num_pos)
    if not use_sigmoid:
        maps = maps.softmax(2)
    num_anchors = num_base * num_pos
    k = num_anchors * num_classes
    k = k if nms_pre <= 0 else min(nms_pre, k)
    if num_anchors * num_classes <= DIRECT_TOPK_FACTOR * k:  # small level: rank every pair
        pairs = maps[:, :, :num_classes].permute(0, 3, 1, 2).reshape(num_imgs, -1)
        values, top_inds = top_or_all(pairs, k)
        anchors = torch.div(top_inds, num_classes, rounding_mode='floor')
        labels = top_inds - anchors * num_classes
        scores = values.sigmoid() if use_sigmoid else values
        return scores, anchors, labels, scores > score_thr
    group = class_group_size(num_classes)
    num_groups = num_classes // group
    # (B, P, G, H * W): the maximum of each cell, from one pass over the level.
    cell_max = maps[:, :, :num_classes].reshape(num_imgs, num_base, num_groups, group,
                                                num_pos).amax(3)
    # Map offsets (into (B, P, D, H * W)) of the first class of the candidate cells, and the
    # cells' maxima, both (B, G * K') in one order.
    if k < num_anchors:
        # Slots s = p * H * W + pos (the maps' own order, converted to mmdet's at the end).
        _, slots = cell_max.amax(2).reshape(num_imgs, num_anchors).topk(k, dim=1, sorted=False)
        prior = _base_prior(slots, num_base, num_pos)
        first = _cell_offsets(slots, prior, depth, num_pos, group, num_groups)
        cell_inds = _cell_offsets(slots, prior, num_groups, num_pos, 1, num_groups)
        cells = torch.gather(cell_max.reshape(num_imgs, -1), 1, cell_inds)
    else:
        slots = torch.arange(num_anchors, device=maps.device)[None]
        prior = _base_prior(slots, num_base, num_pos)
        first = _cell_offsets(slots, prior, depth, num_pos, group, num_groups).expand(num_imgs, -1)
        cells = cell_max.reshape(num_imgs, -1)
    _, picked = top_or_all(cells, k)
    # (B, K * group) map offsets of every pair of the picked cells.
    index = (torch.gather(first, 1, picked)[..., None]
             + torch.arange(group, device=maps.device) * num_pos).reshape(num_imgs, -1)
    values, top_inds = top_or_all(torch.gather(maps.reshape(num_imgs, -1), 1, index), k)
    anchors, labels = _pair_of_offset(torch.gather(index, 1, top_inds), num_base, depth,
                                      num_pos)
    scores = values.sigmoid() if use_sigmoid else values
    return scores, anchors, labels, scores > score_thr


def _base_prior(slots: torch.Tensor, num_base: int, num_pos: int) -> Optional[torch.Tensor]:
    """The base prior p of (B, K) slots ``p * H * W + pos``; None when P = 1 (always 0)."""
    return None if num_base == 1 else torch.div(slots, num_pos, rounding_mode='floor')


def _cell_offsets(slots: torch.Tensor, prior: Optional[torch.Tensor], depth: int, num_pos: int,
                  group: int, num_groups: int) -> torch.Tensor:
    """Offsets of class ``g * group`` of some slots in a (B, P, depth, H * W) map, every g.

    Args:
        slots (Tensor): (B, K) or (1, K) long, ``p * H * W + pos``.
        prior (Tensor | None): :func:`_base_prior` of the slots.
        depth, num_pos: channels per base prior, H * W.
        group (int): classes per cell (1 to index the (B, P, G, H * W) cell maxima).
        num_groups (int): G.

    Returns:
        Tensor: (B, G * K) long, cell group-major: ``g * K + k`` is group g of slot k.
    """
    base = slots if prior is None else slots + prior * ((depth - 1) * num_pos)
    steps = torch.arange(num_groups, device=slots.device) * (group * num_pos)
    return (base[:, None, :] + steps[None, :, None]).reshape(slots.shape[0], -1)


def _pair_of_offset(offsets: torch.Tensor, num_base: int, depth: int, num_pos: int
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
    """mmdet anchor index (``pos * P + p``) and class of (B, K) offsets into (B, P, D, H * W)."""
    rows = torch.div(offsets, num_pos, rounding_mode='floor')  # p * D + class
    pos = offsets - rows * num_pos
    if num_base == 1:
        return pos, rows
    prior = torch.div(rows, depth, rounding_mode='floor')
    return pos * num_base + prior, rows - prior * depth


class Candidates(NamedTuple):
    """Pre-NMS candidates of a batch, all levels concatenated (N = sum of the levels' K)."""
    scores: torch.Tensor  # (B, N) class scores
    labels: torch.Tensor  # (B, N) long
    valid: torch.Tensor  # (B, N) bool
    preds: torch.Tensor  # (B, N, 4) box regressions
    priors: torch.Tensor  # (B, N, D) priors (points or anchors)
    factors: Optional[torch.Tensor]  # (B, N) score-factor logits (centerness), or None


def select_candidates(cls_scores: Sequence[torch.Tensor], bbox_preds: Sequence[torch.Tensor],
                      score_factors: Optional[Sequence[torch.Tensor]],
                      mlvl_priors: Sequence[torch.Tensor], num_base: Sequence[int],
                      num_classes: int, use_sigmoid: bool, score_thr: float, nms_pre: int
                      ) -> Candidates:
    """Per-level :func:`select_level_candidates` and the picked anchors' inputs, concatenated.

    Args:
        cls_scores (Sequence[Tensor]): per level, (B, P_l * C', h, w).
        bbox_preds (Sequence[Tensor]): per level, (B, P_l * 4, h, w).
        score_factors (Sequence[Tensor] | None): per level, (B, P_l, h, w).
        mlvl_priors (Sequence[Tensor]): per level, (A_l, D) priors.
        num_base (Sequence[int]): per level, P_l.
        num_classes (int): C.
        use_sigmoid (bool): Sigmoid class scores, else softmax with background last.
        score_thr (float): Class-score threshold (strict).
        nms_pre (int): K pairs per level and image (<= 0: all).

    Returns:
        Candidates: see the class.
    """
    num_imgs = cls_scores[0].shape[0]
    scores, labels, valid, inds, start = [], [], [], [], 0
    for level, cls_map in enumerate(cls_scores):
        level_scores, level_inds, level_labels, level_valid = select_level_candidates(
            cls_map, num_base[level], num_classes, use_sigmoid, score_thr, nms_pre)
        scores.append(level_scores)
        labels.append(level_labels)
        valid.append(level_valid)
        inds.append(level_inds + start)  # index among the anchors of all levels
        start += mlvl_priors[level].shape[0]
    inds = torch.cat(inds, 1)
    preds = torch.cat([pred.permute(0, 2, 3, 1).reshape(num_imgs, -1, 4)
                       for pred in bbox_preds], 1)
    priors = torch.cat(list(mlvl_priors)).index_select(0, inds.reshape(-1))
    factors = None
    if score_factors is not None:
        factors = torch.gather(torch.cat([factor.permute(0, 2, 3, 1).reshape(num_imgs, -1)
                                          for factor in score_factors], 1), 1, inds)
    return Candidates(torch.cat(scores, 1), torch.cat(labels, 1), torch.cat(valid, 1),
                      torch.gather(preds, 1, inds[..., None].expand(*inds.shape, 4)),
                      priors.reshape(num_imgs, inds.shape[1], -1), factors)


def level_maps(maps: torch.Tensor, num_base: int) -> torch.Tensor:
    """(B, P * D, H, W) head output as (B, P, D, H * W) (a view of a contiguous map)."""
    num_imgs, channels, height, width = maps.shape
    return maps.reshape(num_imgs, num_base, channels // num_base, height * width)


def clip_boxes(boxes: torch.Tensor, img_shapes: torch.Tensor) -> torch.Tensor:
    """Clamp (B, K, 4) boxes to [0, w] x [0, h] of each image; ``img_shapes`` (B, 2) (h, w)."""
    max_xy = img_shapes.flip(-1).repeat(1, 2)[:, None, :]  # (B, 1, 4): w, h, w, h
    return torch.minimum(boxes.clamp(min=0), max_xy)


def finish_boxes(boxes: torch.Tensor, img_shapes: torch.Tensor,
                 scale_factors: Optional[torch.Tensor], clip: bool) -> torch.Tensor:
    """Stock's clip to each image (when ``clip``) and ``rescale`` of (B, N, 4) decoded boxes."""
    if clip:
        boxes = clip_boxes(boxes, img_shapes)
    if scale_factors is not None:
        boxes = boxes / scale_factors
    return boxes


def image_tensors(img_metas, device, rescale: bool
                  ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(B, 2) image shapes (h, w) and (B, 1, 4) scale factors (or None) from the metas."""
    shapes = np.array([meta['img_shape'][:2] for meta in img_metas], dtype=np.float32)
    img_shapes = torch.from_numpy(shapes).to(device)
    if not rescale:
        return img_shapes, None
    factors = np.array([np.broadcast_to(np.asarray(meta['scale_factor'], np.float32), (4, ))
                        for meta in img_metas], dtype=np.float32)
    return img_shapes, torch.from_numpy(factors.reshape(len(img_metas), 1, 4)).to(device)


def static_detections(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
                      valid: torch.Tensor, num_classes: int, params: NMSParams
                      ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One NMS call for the batch, packed: dets (B, M, 5), labels (B, M), num_dets (B,)."""
    return batched_nms_fixed(boxes, scores, labels, valid, num_classes, params.iou_threshold,
                             params.max_per_img, class_agnostic=params.class_agnostic)


def unpad_detections(dets: torch.Tensor, labels: torch.Tensor, num_dets: torch.Tensor
                     ) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """Stock ``get_bboxes`` list from fixed-size detections: per image (n, 5) and (n,)."""
    # Removing the padding needs the counts on the host: one D2H copy, at the very end.
    counts = num_dets.tolist()
    return [(dets[i, :n], labels[i, :n]) for i, n in enumerate(counts)]


class StaticDenseInferenceMixin:
    """Fixed-shape ``get_bboxes`` for a ``BaseDenseHead`` subclass with sigmoid scores.

    The head provides ``_level_priors(featmap_sizes, device)`` (per-level (A_l, D) priors) and
    ``_decode_candidates(priors (B, N, D), bbox_preds (B, N, 4))`` (unclipped (B, N, 4) boxes).

    Detections equal stock ``get_bboxes`` (mmcv ``batched_nms`` per image) when, on every level
    of every image, the (prior, class) pairs with ``score > score_thr`` number at most
    ``nms_pre`` or the ``nms_pre``-th and next score differ (stock sorts, this takes a top-k: the
    same set unless scores tie at the cut), and no two candidates of one image tie in final score
    (stock's and this NMS visit equal scores in unspecified order); with ``nms_pre`` below the
    level's prior count, also no tie of best-class scores at the ``nms_pre``-th prior (see
    :func:`select_level_candidates`). ``nms_pre <= 0`` keeps every
    pair (stock's ``filter_scores_and_topk`` with ``nms_pre=-1`` drops the last one).
    """

    def _check_test_cfg(self) -> None:
        """Refuse, at build time, a ``test_cfg.nms`` the static inference cannot run."""
        if self.test_cfg and 'nms' in self.test_cfg:
            parse_nms_cfg(self.test_cfg['nms'], type(self).__name__)

    def _image_tensors(self, img_metas, device, rescale: bool
                       ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(B, 2) image shapes (h, w) and (B, 1, 4) scale factors (or None) from the metas."""
        return image_tensors(img_metas, device, rescale)

    def get_bboxes_pre_nms(self, cls_scores: Sequence[torch.Tensor],
                           bbox_preds: Sequence[torch.Tensor],
                           score_factors: Optional[Sequence[torch.Tensor]],
                           img_shapes: torch.Tensor, scale_factors: Optional[torch.Tensor],
                           score_thr: float, nms_pre: int
                           ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Static part of inference: per-level top-k, decode, clip, rescale, score factors.

        Args:
            cls_scores (Sequence[Tensor]): per level, (B, P * C, h, w).
            bbox_preds (Sequence[Tensor]): per level, (B, P * 4, h, w).
            score_factors (Sequence[Tensor] | None): per level, (B, P, h, w) logits (centerness).
            img_shapes (Tensor): (B, 2) (h, w) to clip the boxes to.
            scale_factors (Tensor | None): (B, 1, 4) to map boxes to the original image.
            score_thr (float): Raw class-score threshold.
            nms_pre (int): K pairs per level and image (<= 0: all).

        Returns:
            tuple[Tensor, Tensor, Tensor, Tensor]: boxes (B, N, 4), scores (B, N), labels (B, N),
            valid (B, N) bool, N = sum over levels of K.
        """
        featmap_sizes = [tuple(score.shape[-2:]) for score in cls_scores]
        mlvl_priors = self._level_priors(featmap_sizes, cls_scores[0].device)
        found = select_candidates(cls_scores, bbox_preds, score_factors, mlvl_priors,
                                  [self.num_base_priors] * len(cls_scores), self.num_classes,
                                  True, score_thr, nms_pre)
        boxes = finish_boxes(self._decode_candidates(found.priors, found.preds), img_shapes,
                             scale_factors, self.bbox_coder.clip_border)
        scores = found.scores
        if found.factors is not None:
            scores = scores * found.factors.sigmoid()
        return boxes, scores, found.labels, found.valid

    @force_fp32(apply_to=('cls_scores', 'bbox_preds', 'score_factors'))
    def get_bboxes_static(self, cls_scores, bbox_preds, score_factors=None, img_metas=None,
                          cfg=None, rescale=False
                          ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fixed-size detections of a whole batch with one NMS call.

        Uses ``cfg`` (default ``self.test_cfg``) keys ``score_thr``, ``nms_pre`` (default -1:
        all pairs), ``nms=dict(type='nms', iou_threshold=..., class_agnostic=..., max_num=...)``
        and ``max_per_img``.

        Returns:
            tuple[Tensor, Tensor, Tensor]: dets (B, M, 5) (x1, y1, x2, y2, score) best first,
            labels (B, M) long, num_dets (B,) long; rows from ``num_dets`` on are padding.
        """
        params = parse_test_cfg(self.test_cfg if cfg is None else cfg, type(self).__name__)
        img_shapes, scale_factors = image_tensors(img_metas, cls_scores[0].device, rescale)
        boxes, scores, labels, valid = self.get_bboxes_pre_nms(
            cls_scores, bbox_preds, score_factors, img_shapes, scale_factors,
            params.score_thr, params.nms_pre)
        return static_detections(boxes, scores, labels, valid, self.num_classes, params)

    def get_bboxes(self, cls_scores, bbox_preds, score_factors=None, img_metas=None, cfg=None,
                   rescale=False, with_nms=True, **kwargs) -> List[Tuple[torch.Tensor,
                                                                        torch.Tensor]]:
        """Stock-compatible ``get_bboxes`` built on :meth:`get_bboxes_static`.

        ``with_nms=False`` (test-time augmentation) falls back to the stock code.

        Returns:
            list[tuple[Tensor, Tensor]]: per image, det_bboxes (n, 5) and det_labels (n,).
        """
        if not with_nms:
            return super().get_bboxes(cls_scores, bbox_preds, score_factors, img_metas, cfg,
                                      rescale, with_nms, **kwargs)
        return unpad_detections(*self.get_bboxes_static(cls_scores, bbox_preds, score_factors,
                                                        img_metas, cfg, rescale))
