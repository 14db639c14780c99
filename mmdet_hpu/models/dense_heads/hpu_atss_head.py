"""ATSS head with fixed-shape (static) training targets and batched static inference."""
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

from ..utils.anchor_validity import all_anchors_valid
from ..utils.batch_gt import batch_gt
from ..utils.dense_loss_terms import (
    EPS,
    centerness_bce_elements,
    image_major,
    iou_loss_elements,
    level_sums,
)
from ..utils.dense_static_inference import StaticDenseInferenceMixin
from ..utils.label_focal_loss import label_focal_loss_sum
from ..utils.static_atss_assigner import anchor_centers, anchor_grids, atss_assign
from ..utils.static_losses import check_static_losses
from .hpu_fcos_head import check_max_num_gt
from .padded_gt_forward import PaddedGTForwardMixin


@HEADS.register_module()
class HPUATSSHead(PaddedGTForwardMixin, StaticDenseInferenceMixin, ATSSHead):
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
        """Anchors per level and concatenated, cached per (sizes, device) in eager mode.

        Returns:
            dict: ``mlvl_anchors`` (per level (A_l, 4)), ``anchors`` (A, 4), ``centers``
            (A, 2), ``grids`` (per level
            :class:`~mmdet_hpu.models.utils.static_atss_assigner.AnchorGrid`),
            ``num_level_anchors`` (list[int]).
        """
        sizes = tuple((int(h), int(w)) for h, w in featmap_sizes)
        key = (sizes, str(device))
        # Under torch.compile the anchors are traced instead (see HPUFCOSHead._points).
        compiling = torch.compiler.is_compiling()
        cached = None if compiling else self._anchor_cache.get(key)
        if cached is None:
            mlvl = self.prior_generator.grid_priors(sizes, device=device)
            anchors = torch.cat(mlvl)
            cached = dict(mlvl_anchors=mlvl, anchors=anchors, centers=anchor_centers(anchors),
                          grids=anchor_grids(mlvl, sizes),
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
        if all_anchors_valid(sizes, self.prior_generator.strides, img_metas, border):
            return None
        anchors = self._anchors(sizes, device)['anchors']
        flags = []
        for meta in img_metas:
            valid = torch.cat(self.prior_generator.valid_flags(sizes, meta['pad_shape'], device))
            flags.append(anchor_inside_flags(anchors, valid, meta['img_shape'][:2], border))
        return torch.stack(flags)

    # ---------------------------------------------------------------- training
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
        labels, label_weights, bbox_targets, positive, _ = self._static_targets(
            featmap_sizes, gt_bboxes, gt_labels, gt_valid, img_metas)
        return labels, label_weights, bbox_targets, positive

    def _static_targets(self, featmap_sizes, gt_bboxes, gt_labels, gt_valid, img_metas):
        """``get_static_targets`` plus whether every label weight is 1 (a Python bool, known
        from the config and the shapes: no positive weight, no anchor masked)."""
        device = gt_bboxes.device
        anchors = self._anchors(featmap_sizes, device)
        anchor_valid = self._anchor_valid(featmap_sizes, img_metas, device)
        with torch.no_grad():
            assigned = atss_assign(anchors['grids'], anchors['anchors'], anchors['centers'],
                                   gt_bboxes, gt_valid, self.assigner.topk, anchor_valid)
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
        unit_weights = pos_weight <= 0 and anchor_valid is None
        return labels, label_weights, bbox_targets, positive, unit_weights

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
        labels, label_weights, bbox_targets, positive, unit_weights = self._static_targets(
            featmap_sizes, boxes, labels, valid, img_metas)
        # Stock: sum over images of max(num_pos_i, 1), all-reduced, at least 1.
        num_pos = positive.sum(1).clamp(min=1).sum().float()
        num_total_samples = reduce_mean(num_pos).clamp(min=1.0)
        anchors = self._anchors(featmap_sizes, device)
        split = anchors['num_level_anchors']
        losses_cls = self._focal_losses(cls_scores, labels, None if unit_weights else
                                        label_weights, split, num_total_samples)
        # Box and centerness losses: every anchor of the batch at once, image-major (B, A),
        # positives selected by weights, then summed per level as stock's loss_single.
        flat_anchors = anchors['anchors'][None].expand_as(bbox_targets)
        with torch.no_grad():
            centerness_targets = self.static_centerness_target(flat_anchors, bbox_targets,
                                                               positive)
        deltas = image_major(bbox_preds, 4)
        decoded = self.bbox_coder.decode(flat_anchors.reshape(-1, 4), deltas.reshape(-1, 4))
        pred_boxes = torch.where(positive[..., None], decoded.reshape(deltas.shape),
                                 flat_anchors)
        box_losses = iou_loss_elements(self.loss_bbox, pred_boxes, bbox_targets)
        losses_bbox = level_sums(box_losses * centerness_targets, split)
        centerness = image_major(centernesses, 1).squeeze(-1)
        centerness_losses = centerness_bce_elements(centerness, centerness_targets)
        losses_centerness = level_sums(centerness_losses * positive.to(centerness.dtype), split)
        # Stock's per-level box loss has avg_factor 1.0, then the all-reduced centerness sum.
        bbox_avg_factor = reduce_mean(centerness_targets.sum()).clamp(min=1)
        bbox_scale = self.loss_bbox.loss_weight / (1.0 + EPS)
        centerness_scale = self.loss_centerness.loss_weight / (num_total_samples + EPS)
        return dict(loss_cls=losses_cls,
                    loss_bbox=[loss * bbox_scale / bbox_avg_factor for loss in losses_bbox],
                    loss_centerness=[loss * centerness_scale for loss in losses_centerness])

    def _focal_losses(self, cls_scores, labels, label_weights, num_level_anchors,
                      num_total_samples) -> List[torch.Tensor]:
        """Per-level ``FocalLoss`` of the (B, P * C, h, w) maps (stock's ``loss_single``).

        Args:
            cls_scores (list[Tensor]): per level, (B, P * C, h, w).
            labels (Tensor): (B, A) long.
            label_weights (Tensor | None): (B, A), None when all ones.
            num_level_anchors (list[int]): A_l per level.
            num_total_samples (Tensor): Normaliser.

        Returns:
            list[Tensor]: one scalar per level.
        """
        focal = self.loss_cls
        scale = focal.loss_weight / (num_total_samples + EPS)
        split = list(num_level_anchors)
        level_weights = ([None] * len(split) if label_weights is None
                         else label_weights.split(split, 1))
        return [label_focal_loss_sum(score, level_labels, weights, focal.gamma, focal.alpha)
                * scale for score, level_labels, weights in zip(
                    cls_scores, labels.split(split, 1), level_weights)]

    @staticmethod
    def static_centerness_target(anchors: torch.Tensor, gts: torch.Tensor,
                                 positive: torch.Tensor) -> torch.Tensor:
        """``ATSSHead.centerness_target`` of every anchor; 0 where ``positive`` is False.

        Args:
            anchors (Tensor): (..., 4).
            gts (Tensor): (..., 4) target boxes (any well-formed box where not positive).
            positive (Tensor): (...) bool.

        Returns:
            Tensor: (...) centerness targets (no NaN: stock's NaN assert is a host sync).
        """
        centers = anchor_centers(anchors)
        left = centers[..., 0] - gts[..., 0]
        top = centers[..., 1] - gts[..., 1]
        right = gts[..., 2] - centers[..., 0]
        bottom = gts[..., 3] - centers[..., 1]
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

