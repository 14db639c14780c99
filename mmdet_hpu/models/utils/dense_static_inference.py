"""Batched fixed-shape inference for ``BaseDenseHead`` heads (FCOS, ATSS, ...).

Stock ``BaseDenseHead.get_bboxes`` loops over images and levels and filters with
``filter_scores_and_topk`` (boolean mask + ``nonzero``), then calls NMS once per image. Here
each level keeps a fixed ``nms_pre`` (point, class) pairs per image with a top-k over the
masked scores, the score threshold stays a mask, and one NMS call serves the whole batch
(:func:`~mmdet_hpu.models.utils.static_postprocess.batched_nms_fixed`).
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmcv.runner import force_fp32

from .static_postprocess import batched_nms_fixed


def parse_nms_cfg(nms_cfg, head_name: str) -> Tuple[float, bool, int]:
    """IoU threshold, class-agnosticism and ``max_num`` of an mmcv ``nms`` config.

    Raises:
        NotImplementedError: For NMS types other than ``'nms'`` (soft-NMS etc.).
        ValueError: Without an IoU threshold.
    """
    nms_type = nms_cfg.get('type', 'nms')
    if nms_type != 'nms':
        raise NotImplementedError(f"{head_name}: test_cfg.nms.type must be 'nms' for static "
                                  f'inference, got {nms_type!r}; use the stock head for it')
    iou_threshold = nms_cfg.get('iou_threshold', nms_cfg.get('iou_thr'))
    if iou_threshold is None:
        raise ValueError(f'{head_name}: test_cfg.nms needs iou_threshold')
    return (float(iou_threshold), bool(nms_cfg.get('class_agnostic', False)),
            int(nms_cfg.get('max_num', -1)))


def select_level_candidates(scores: torch.Tensor, score_thr: float, nms_pre: int
                            ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``filter_scores_and_topk`` of a whole batch with fixed shapes.

    The K best (prior, class) pairs all belong to the K priors of highest best-class score (a
    prior outside them has K priors, hence K pairs, above its best pair), so when K < A_l those
    priors are picked first (a top-k over A_l maxima instead of A_l * C pairs) and the pairs
    are ranked among their K * C pairs only. The result is the same set as a top-k over all
    pairs unless best-class scores tie at the K-th prior.

    Args:
        scores (Tensor): (B, A_l, C) class probabilities of one level.
        score_thr (float): A pair needs ``score > score_thr``.
        nms_pre (int): K pairs kept per image; <= 0 or > A_l * C keeps all of them.

    Returns:
        tuple[Tensor, Tensor, Tensor, Tensor]: scores (B, K) descending, prior indices (B, K),
        labels (B, K) and valid (B, K) bool (False where fewer than K pairs pass).
    """
    num_imgs, num_priors, num_classes = scores.shape
    num_pairs = num_priors * num_classes
    k = num_pairs if nms_pre <= 0 else min(nms_pre, num_pairs)
    prior_inds = None
    if k < num_priors:
        _, prior_inds = scores.amax(dim=2).topk(k, dim=1)  # (B, K)
        scores = gather_rows(scores, prior_inds)  # (B, K, C)
    flat = scores.reshape(num_imgs, -1)
    valid = flat > score_thr
    # Probabilities lie in [0, 1]: -1 ranks every filtered-out pair below every valid one.
    masked = torch.where(valid, flat, torch.full_like(flat, -1.0))
    _, top_inds = masked.topk(k, dim=1)
    rows = torch.div(top_inds, num_classes, rounding_mode='floor')
    labels = top_inds - rows * num_classes
    if prior_inds is not None:
        rows = torch.gather(prior_inds, 1, rows)
    return (torch.gather(flat, 1, top_inds), rows, labels, torch.gather(valid, 1, top_inds))


def gather_rows(values: torch.Tensor, inds: torch.Tensor) -> torch.Tensor:
    """(B, A, D) values at (B, K) indices: (B, K, D)."""
    return torch.gather(values, 1, inds[..., None].expand(*inds.shape, values.shape[-1]))


def clip_boxes(boxes: torch.Tensor, img_shapes: torch.Tensor) -> torch.Tensor:
    """Clamp (B, K, 4) boxes to [0, w] x [0, h] of each image; ``img_shapes`` (B, 2) (h, w)."""
    zero = torch.zeros_like(boxes[..., 0])
    height = img_shapes[:, 0, None].expand_as(zero)
    width = img_shapes[:, 1, None].expand_as(zero)
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([torch.clamp(x1, zero, width), torch.clamp(y1, zero, height),
                        torch.clamp(x2, zero, width), torch.clamp(y2, zero, height)], -1)


class StaticDenseInferenceMixin:
    """Fixed-shape ``get_bboxes`` for a ``BaseDenseHead`` subclass with sigmoid scores.

    The head provides ``_level_priors(featmap_sizes, device)`` (per-level (A_l, P) priors) and
    ``_level_decode(priors (B, K, P), bbox_preds (B, K, 4), level)`` (unclipped (B, K, 4) boxes).

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
        shapes = np.array([meta['img_shape'][:2] for meta in img_metas], dtype=np.float32)
        img_shapes = torch.from_numpy(shapes).to(device)
        if not rescale:
            return img_shapes, None
        factors = np.array([np.broadcast_to(np.asarray(meta['scale_factor'], np.float32), (4, ))
                            for meta in img_metas], dtype=np.float32)
        return img_shapes, torch.from_numpy(factors.reshape(len(img_metas), 1, 4)).to(device)

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
        num_imgs = cls_scores[0].shape[0]
        outputs = []
        for level, (cls_score, bbox_pred) in enumerate(zip(cls_scores, bbox_preds)):
            scores = cls_score.permute(0, 2, 3, 1).reshape(num_imgs, -1, self.cls_out_channels)
            scores, prior_inds, labels, valid = select_level_candidates(
                scores.sigmoid(), score_thr, nms_pre)
            preds = gather_rows(bbox_pred.permute(0, 2, 3, 1).reshape(num_imgs, -1, 4),
                                prior_inds)
            priors = mlvl_priors[level].index_select(0, prior_inds.reshape(-1))
            boxes = self._level_decode(priors.reshape(num_imgs, -1, priors.shape[-1]), preds,
                                       level)
            if self.bbox_coder.clip_border:
                boxes = clip_boxes(boxes, img_shapes)
            if scale_factors is not None:
                boxes = boxes / scale_factors
            if score_factors is not None:
                factor = score_factors[level].permute(0, 2, 3, 1).reshape(num_imgs, -1)
                scores = scores * torch.gather(factor, 1, prior_inds).sigmoid()
            outputs.append((boxes, scores, labels, valid))
        boxes, scores, labels, valid = zip(*outputs)
        return (torch.cat(boxes, 1), torch.cat(scores, 1), torch.cat(labels, 1),
                torch.cat(valid, 1))

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
        cfg = self.test_cfg if cfg is None else cfg
        iou_threshold, class_agnostic, max_num = parse_nms_cfg(cfg['nms'], type(self).__name__)
        max_per_img = cfg.get('max_per_img', -1)
        if max_num > 0:
            max_per_img = max_num if max_per_img <= 0 else min(max_num, max_per_img)
        img_shapes, scale_factors = self._image_tensors(img_metas, cls_scores[0].device, rescale)
        boxes, scores, labels, valid = self.get_bboxes_pre_nms(
            cls_scores, bbox_preds, score_factors, img_shapes, scale_factors,
            cfg['score_thr'], cfg.get('nms_pre', -1))
        return batched_nms_fixed(boxes, scores, labels, valid, self.num_classes, iou_threshold,
                                 max_per_img, class_agnostic=class_agnostic)

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
        dets, labels, num_dets = self.get_bboxes_static(cls_scores, bbox_preds, score_factors,
                                                        img_metas, cfg, rescale)
        # Removing the padding needs the counts on the host: one D2H copy, at the very end.
        counts = num_dets.tolist()
        return [(dets[i, :n], labels[i, :n]) for i, n in enumerate(counts)]
