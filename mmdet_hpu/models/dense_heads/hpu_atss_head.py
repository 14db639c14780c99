"""ATSS head with fixed-shape (static) training targets and batched static inference."""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmcv.runner import force_fp32
from mmdet.core import anchor_inside_flags, reduce_mean
from mmdet.core.bbox.assigners import ATSSAssigner
from mmdet.core.bbox.coder import DeltaXYWHBBoxCoder
from mmdet.core.bbox.coder.delta_xywh_bbox_coder import delta2bbox
from mmdet.core.bbox.iou_calculators import BboxOverlaps2D
from mmdet.models.builder import HEADS
from mmdet.models.dense_heads import ATSSHead

from ..utils.batch_gt import batch_gt
from ..utils.dense_static_inference import StaticDenseInferenceMixin
from ..utils.static_atss_assigner import anchor_centers, atss_assign
from ..utils.static_losses import (
    check_static_losses,
    static_centerness_loss,
    static_focal_loss,
    static_iou_loss,
)
from .hpu_fcos_head import check_max_num_gt


@HEADS.register_module()
class HPUATSSHead(StaticDenseInferenceMixin, ATSSHead):
    """Drop-in ``ATSSHead`` whose training loss and inference have static shapes.

    ``forward`` and the parameters are those of :class:`mmdet.models.dense_heads.ATSSHead`, so
    stock checkpoints load with ``strict=True``. ``ATSSAssigner`` runs on the whole batch at once
    (:func:`~mmdet_hpu.models.utils.static_atss_assigner.atss_assign`: per-level top-k by centre
    distance, IoU mean + std threshold with ``>=``, centre inside the box, highest IoU wins), and
    the focal, GIoU and centerness losses run over every anchor with the positives selected by
    weights: no ``nonzero``, boolean indexing, ``.item()`` or data-dependent branch. The
    normalisers (``num_total_samples`` and the centerness sum that divides the box loss) stay
    device tensors, all-reduced with mmdet's ``reduce_mean`` when distributed. Losses equal
    stock ``ATSSHead.loss`` per level (up to float summation order).

    Anchors stock drops (``valid_flags`` of the padded shape, ``train_cfg.allowed_border``) are
    masked (weight 0, never a candidate while a valid anchor is left on the level); with a fixed
    canvas and ``allowed_border=-1`` (the COCO recipe) there are none and the assignment is
    bitwise stock's.

    Ground truth: stock per-image lists (padded here to the bucket of the largest image) or
    padded ground truth with ``gt_valid`` (``HPUPadGT``). Padding rows never become positives.

    Refused at build time (use the stock ``ATSSHead`` for them): an assigner other than
    ``ATSSAssigner`` with ``alpha=None`` (DDOD's cost-based variant) and ``ignore_iof_thr <= 0``,
    a non-default IoU calculator, ``reg_decoded_bbox=False``, a bbox coder other than
    ``DeltaXYWHBBoxCoder``, losses other than sigmoid ``FocalLoss`` / ``IoULoss`` or
    ``GIoULoss`` / sigmoid ``CrossEntropyLoss``.

    Args:
        *args: Positional arguments of ``ATSSHead``.
        max_num_gt (int): Most boxes per image (and largest bucket) for list ground truth.
            Default: 128.
        **kwargs: Keyword arguments of ``ATSSHead``.
    """

    def __init__(self, *args, max_num_gt: int = 128, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_num_gt = check_max_num_gt(max_num_gt)
        name = type(self).__name__
        check_static_losses(name, self.loss_cls, self.loss_bbox, self.loss_centerness)
        if type(self.bbox_coder) is not DeltaXYWHBBoxCoder:
            raise TypeError(f"{name}: bbox_coder must be 'DeltaXYWHBBoxCoder', got "
                            f'{type(self.bbox_coder).__name__}; use the stock ATSSHead')
        if not self.reg_decoded_bbox:
            raise ValueError(f'{name}: reg_decoded_bbox=False is not supported (ATSSHead '
                             'computes its centerness from decoded boxes); set it to True')
        if self.train_cfg:
            self._check_assigner(name)
        self._anchor_cache: Dict[tuple, dict] = {}
        self._check_test_cfg()

    def _check_assigner(self, name: str) -> None:
        assigner = self.assigner
        if type(assigner) is not ATSSAssigner or assigner.alpha is not None:
            raise TypeError(f"{name}: train_cfg.assigner must be dict(type='ATSSAssigner', "
                            f'topk=...) without alpha, got {type(assigner).__name__}; use the '
                            'stock ATSSHead for other assigners')
        if assigner.ignore_iof_thr > 0:
            raise ValueError(f'{name}: train_cfg.assigner.ignore_iof_thr > 0 (ignored boxes) is '
                             'not supported; set it to -1 or use the stock ATSSHead')
        calculator = assigner.iou_calculator
        if type(calculator) is not BboxOverlaps2D or calculator.dtype is not None:
            raise TypeError(f"{name}: train_cfg.assigner.iou_calculator must be the default "
                            "fp32 dict(type='BboxOverlaps2D')")

    # ------------------------------------------------------------------ anchors
    def _anchors(self, featmap_sizes: Sequence[Tuple[int, int]], device) -> dict:
        """Anchors per level and concatenated, cached per (sizes, device) in eager mode."""
        sizes = tuple((int(h), int(w)) for h, w in featmap_sizes)
        key = (sizes, str(device))
        # Under torch.compile the anchors are traced instead (see HPUFCOSHead._points).
        compiling = torch.compiler.is_compiling()
        cached = None if compiling else self._anchor_cache.get(key)
        if cached is None:
            mlvl = self.prior_generator.grid_priors(sizes, device=device)
            cached = dict(mlvl_anchors=mlvl, anchors=torch.cat(mlvl),
                          num_level_anchors=[a.shape[0] for a in mlvl])
            if not compiling:
                self._anchor_cache[key] = cached
        return cached

    def _anchor_valid(self, featmap_sizes, img_metas, device) -> Optional[torch.Tensor]:
        """(B, A) bool of the anchors stock keeps, or None when it keeps them all.

        With ``train_cfg.allowed_border < 0`` stock keeps the anchors of the valid feature-map
        region of ``pad_shape``; whether that is all of them is decided from the shapes in
        Python (no tensor is read). Otherwise the mask is built on the device with stock's
        ``valid_flags`` and ``anchor_inside_flags`` (comparisons with Python numbers from the
        metas: static, no host read).
        """
        sizes = [(int(h), int(w)) for h, w in featmap_sizes]
        border = self.train_cfg.allowed_border
        strides = self.prior_generator.strides
        if border < 0 and all(
                math.ceil(meta['pad_shape'][0] / stride[1]) >= h
                and math.ceil(meta['pad_shape'][1] / stride[0]) >= w
                for meta in img_metas for (h, w), stride in zip(sizes, strides)):
            return None
        anchors = self._anchors(sizes, device)['anchors']
        flags = []
        for meta in img_metas:
            valid = torch.cat(self.prior_generator.valid_flags(sizes, meta['pad_shape'], device))
            flags.append(anchor_inside_flags(anchors, valid, meta['img_shape'][:2], border))
        return torch.stack(flags)

    # ---------------------------------------------------------------- training
    def forward_train(self, x, img_metas, gt_bboxes, gt_labels=None, gt_bboxes_ignore=None,
                      proposal_cfg=None, gt_valid=None, **kwargs):
        """Head forward + loss, passing ``gt_valid`` (padded ground truth) through.

        Args:
            x (tuple[Tensor]): Multi-level features.
            img_metas (list[dict]): Image meta information.
            gt_bboxes (list[Tensor] | Tensor): (n_i, 4) per image, or padded (B, G, 4).
            gt_labels (list[Tensor] | Tensor): (n_i,) per image, or padded (B, G).
            gt_bboxes_ignore (None): Must be None (ignored boxes are refused).
            proposal_cfg (mmcv.Config | None): If set, also return proposals.
            gt_valid (Tensor | list[Tensor] | None): Validity mask of padded ground truth.

        Returns:
            dict[str, list[Tensor]] | tuple: losses, plus the proposal list if requested.
        """
        outs = self(x)
        losses = self.loss(*outs, gt_bboxes, gt_labels, img_metas,
                           gt_bboxes_ignore=gt_bboxes_ignore, gt_valid=gt_valid)
        if proposal_cfg is None:
            return losses
        return losses, self.get_bboxes(*outs, img_metas=img_metas, cfg=proposal_cfg)

    def get_static_targets(self, featmap_sizes, gt_bboxes, gt_labels, gt_valid, img_metas
                           ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Assignment and targets of every anchor of the batch (fixed shapes).

        Args:
            featmap_sizes (Sequence[tuple[int, int]]): per level, (h, w).
            gt_bboxes (Tensor): (B, G, 4) padded boxes.
            gt_labels (Tensor): (B, G) long labels.
            gt_valid (Tensor): (B, G) bool.
            img_metas (list[dict]): ``pad_shape`` / ``img_shape`` of each image.

        Returns:
            tuple[Tensor, Tensor, Tensor, Tensor]: labels (B, A) (``num_classes`` =
            background), label weights (B, A) float, bbox targets (B, A, 4) (the assigned GT box
            at positives, the anchor elsewhere) and positive (B, A) bool.
        """
        device = gt_bboxes.device
        anchors = self._anchors(featmap_sizes, device)
        anchor_valid = self._anchor_valid(featmap_sizes, img_metas, device)
        assigned = atss_assign(anchors['anchors'], anchors['num_level_anchors'], gt_bboxes,
                               gt_valid, self.assigner.topk, anchor_valid)
        positive = assigned > 0
        gt_inds = (assigned - 1).clamp(min=0)
        labels = torch.where(positive, torch.gather(gt_labels, 1, gt_inds),
                             torch.full_like(gt_inds, self.num_classes))
        matched = torch.gather(gt_bboxes, 1, gt_inds[..., None].expand(*gt_inds.shape, 4))
        bbox_targets = torch.where(positive[..., None], matched,
                                   anchors['anchors'][None].expand_as(matched))
        label_weights = torch.ones_like(matched[..., 0])
        pos_weight = self.train_cfg.pos_weight
        if pos_weight > 0:  # a config value, not data
            label_weights = torch.where(positive, torch.full_like(label_weights, pos_weight),
                                        label_weights)
        if anchor_valid is not None:
            label_weights = label_weights * anchor_valid.to(label_weights.dtype)
        return labels, label_weights, bbox_targets, positive

    @force_fp32(apply_to=('cls_scores', 'bbox_preds', 'centernesses'))
    def loss(self, cls_scores, bbox_preds, centernesses, gt_bboxes, gt_labels, img_metas,
             gt_bboxes_ignore=None, gt_valid=None):
        """Losses equal to ``ATSSHead.loss`` (per level), with static shapes and no host read.

        Args:
            cls_scores (list[Tensor]): per level, (B, P * C, h, w).
            bbox_preds (list[Tensor]): per level, (B, P * 4, h, w).
            centernesses (list[Tensor]): per level, (B, P, h, w).
            gt_bboxes (list[Tensor] | Tensor): see the class docstring.
            gt_labels (list[Tensor] | Tensor): see the class docstring.
            img_metas (list[dict]): Image meta information.
            gt_bboxes_ignore (None): Must be None or empty.
            gt_valid (Tensor | list[Tensor] | None): Validity mask of padded ground truth.

        Returns:
            dict[str, list[Tensor]]: ``loss_cls``, ``loss_bbox``, ``loss_centerness``, one scalar
            per level each.
        """
        if gt_bboxes_ignore is not None and any(len(b) for b in gt_bboxes_ignore):
            raise NotImplementedError(f'{type(self).__name__} does not support gt_bboxes_ignore '
                                      '(static targets); drop the ignored boxes')
        featmap_sizes = [tuple(score.shape[-2:]) for score in cls_scores]
        device = cls_scores[0].device
        boxes, labels, valid = batch_gt(gt_bboxes, gt_labels, gt_valid, self.max_num_gt, device)
        labels, label_weights, bbox_targets, positive = self.get_static_targets(
            featmap_sizes, boxes, labels, valid, img_metas)
        # Stock: sum over images of max(num_pos_i, 1), all-reduced, at least 1.
        num_pos = positive.sum(1).clamp(min=1).sum().float()
        num_total_samples = reduce_mean(num_pos).clamp(min=1.0)
        split = self._anchors(featmap_sizes, device)['num_level_anchors']
        levels = zip(cls_scores, bbox_preds, centernesses, labels.split(split, 1),
                     label_weights.split(split, 1), bbox_targets.split(split, 1),
                     positive.split(split, 1), self._anchors(featmap_sizes, device)
                     ['mlvl_anchors'])
        losses_cls, losses_bbox, losses_centerness, centerness_sums = [], [], [], []
        for level in levels:
            loss_cls, loss_bbox, loss_centerness, centerness_sum = self.loss_level(
                *level, num_total_samples=num_total_samples)
            losses_cls.append(loss_cls)
            losses_bbox.append(loss_bbox)
            losses_centerness.append(loss_centerness)
            centerness_sums.append(centerness_sum)
        bbox_avg_factor = reduce_mean(sum(centerness_sums)).clamp(min=1)
        losses_bbox = [loss / bbox_avg_factor for loss in losses_bbox]
        return dict(loss_cls=losses_cls, loss_bbox=losses_bbox,
                    loss_centerness=losses_centerness)

    def loss_level(self, cls_score, bbox_pred, centerness, labels, label_weights, bbox_targets,
                   positive, anchors, num_total_samples):
        """Losses of one level over all anchors; equal to ``ATSSHead.loss_single``.

        Args:
            cls_score (Tensor): (B, P * C, h, w).
            bbox_pred (Tensor): (B, P * 4, h, w).
            centerness (Tensor): (B, P, h, w).
            labels (Tensor): (B, A_l) long.
            label_weights (Tensor): (B, A_l).
            bbox_targets (Tensor): (B, A_l, 4) decoded target boxes.
            positive (Tensor): (B, A_l) bool.
            anchors (Tensor): (A_l, 4).
            num_total_samples (Tensor): Normaliser of the classification/centerness losses.

        Returns:
            tuple[Tensor, Tensor, Tensor, Tensor]: loss_cls, loss_bbox (before the centerness
            normaliser), loss_centerness and the sum of the centerness targets.
        """
        num_imgs = cls_score.shape[0]
        anchors = anchors.repeat(num_imgs, 1)
        cls_score = cls_score.permute(0, 2, 3, 1).reshape(-1, self.cls_out_channels)
        bbox_pred = bbox_pred.permute(0, 2, 3, 1).reshape(-1, 4)
        centerness = centerness.permute(0, 2, 3, 1).reshape(-1)
        bbox_targets = bbox_targets.reshape(-1, 4)
        positive = positive.reshape(-1)
        loss_cls = static_focal_loss(self.loss_cls, cls_score, labels.reshape(-1),
                                     label_weights.reshape(-1), num_total_samples)
        centerness_targets = self.static_centerness_target(anchors, bbox_targets, positive)
        decoded = self.bbox_coder.decode(anchors, bbox_pred)
        pred_boxes = torch.where(positive[:, None], decoded, anchors)
        loss_bbox = static_iou_loss(self.loss_bbox, pred_boxes, bbox_targets,
                                    weight=centerness_targets, avg_factor=1.0)
        loss_centerness = static_centerness_loss(
            self.loss_centerness, centerness, centerness_targets,
            weight=positive.to(centerness.dtype), avg_factor=num_total_samples)
        return loss_cls, loss_bbox, loss_centerness, centerness_targets.sum()

    @staticmethod
    def static_centerness_target(anchors: torch.Tensor, gts: torch.Tensor,
                                 positive: torch.Tensor) -> torch.Tensor:
        """``ATSSHead.centerness_target`` of every anchor; 0 where ``positive`` is False.

        Args:
            anchors (Tensor): (N, 4).
            gts (Tensor): (N, 4) target boxes (any well-formed box where not positive).
            positive (Tensor): (N,) bool.

        Returns:
            Tensor: (N,) centerness targets (no NaN: stock's NaN assert is a host sync).
        """
        centers = anchor_centers(anchors)
        left = centers[:, 0] - gts[:, 0]
        top = centers[:, 1] - gts[:, 1]
        right = gts[:, 2] - centers[:, 0]
        bottom = gts[:, 3] - centers[:, 1]
        ones = torch.ones_like(left)
        left, top, right, bottom = (torch.where(positive, side, ones)
                                    for side in (left, top, right, bottom))
        centerness = torch.sqrt((torch.minimum(left, right) / torch.maximum(left, right)) *
                                (torch.minimum(top, bottom) / torch.maximum(top, bottom)))
        return torch.where(positive, centerness, torch.zeros_like(centerness))

    # --------------------------------------------------------------- inference
    def _level_priors(self, featmap_sizes, device) -> List[torch.Tensor]:
        """Per-level (A_l, 4) anchors."""
        return self._anchors(featmap_sizes, device)['mlvl_anchors']

    def _decode_candidates(self, priors: torch.Tensor, bbox_preds: torch.Tensor
                           ) -> torch.Tensor:
        """(B, N, 4) boxes from (B, N, 4) anchors and deltas (unclipped, as stock's decode)."""
        coder = self.bbox_coder
        boxes = delta2bbox(priors.reshape(-1, 4), bbox_preds.reshape(-1, 4), coder.means,
                           coder.stds, None, 16 / 1000, coder.clip_border, coder.add_ctr_clamp,
                           coder.ctr_clamp)
        return boxes.reshape(bbox_preds.shape)

