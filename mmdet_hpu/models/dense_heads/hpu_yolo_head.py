"""YOLOv3 head with fixed-shape (static) training targets and batched static inference."""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmcv.runner import force_fp32
from mmdet.core import multi_apply
from mmdet.core.bbox.assigners import GridAssigner
from mmdet.core.bbox.iou_calculators import BboxOverlaps2D
from mmdet.core.bbox.samplers import PseudoSampler
from mmdet.models.builder import HEADS
from mmdet.models.dense_heads import YOLOV3Head

from ..utils.anchor_gather import gather_anchor_preds, gather_objectness_and_anchors
from ..utils.gt_padding import bucket_gt_list, stack_padded_gt, unpad_gt
from ..utils.static_grid_assigner import grid_assign, level_box_iou, responsible_flags
from ..utils.static_postprocess import batched_nms_fixed, select_topk_candidates
from ..utils.test_params import StaticTestParams, parse_yolo_test_cfg
from .padded_gt_forward import PaddedGTForwardMixin

TARGET_MODES = ('device', 'host')


@HEADS.register_module()
class HPUYOLOV3Head(PaddedGTForwardMixin, YOLOV3Head):
    """Drop-in ``YOLOV3Head`` whose training loss and inference have static shapes.

    ``forward`` and the parameters are those of :class:`mmdet.models.dense_heads.YOLOV3Head`,
    so stock checkpoints load unchanged. Losses equal stock (the warning branch
    ``if torch.max(pos_and_neg_mask) > 1`` becomes an unconditional ``clamp(0, 1)``, same
    values) and detections equal stock ``get_bboxes`` whenever the anchors passing ``conf_thr``
    and the (anchor, class) pairs passing both thresholds each fit in ``test_cfg.nms_pre``
    (with ``conf_thr <= 0`` every anchor passes it).

    Target modes (``target_mode``):

    * ``'device'`` (default): ground truth is padded to G rows plus a validity mask and the
      targets are built on the device by a vectorised ``GridAssigner`` (see
      :mod:`mmdet_hpu.models.utils.static_grid_assigner`), batched over images, with no
      sampler, ``nonzero``, boolean indexing, ``.item()`` or data-dependent branch.
      G is a power-of-two bucket (8, 16, 32, 64, then ``max_num_gt``: at most 5 shapes with the
      default 128, see :func:`~mmdet_hpu.models.utils.gt_padding.gt_bucket`) holding the batch's
      most crowded image. The objectness loss is dense; the class/xy/wh losses (``reduction=
      'sum'``, as in every YOLOv3 config) only look at ``min(A_l, n * G)`` anchor slots per level
      (positives are responsible anchors: at most n per box and level), gathered with a fixed
      top-k of the positive mask. Other reductions fall back to dense target maps.
      ``train_cfg.assigner`` must be a ``GridAssigner`` and the sampler a ``PseudoSampler``.
    * ``'host'``: the Habana fork's approach. Ground truth goes to the host (CPU), the stock
      assigner/sampler build the targets there, and only the fixed-shape ``target_map``/
      ``neg_map`` go to the device. ``forward_train`` calls ``mmdet_hpu.device.mark_step()``
      after the head forward so the device runs the forward graph while the host computes.

    Ground-truth input of :meth:`loss` / :meth:`forward_train`:

    * stock per-image lists ``gt_bboxes`` (B tensors (n_i, 4)) and ``gt_labels`` (B tensors
      (n_i,)), with ``gt_valid=None``: padded here to the bucket of ``max(n_i)`` (host-side
      lengths, no device read);
    * already padded ground truth, detected by ``gt_valid is not None``: ``gt_valid`` (B, G) or
      (B, 1, G) (tensor, or list of per-image masks), non-zero for real rows, gives G by its
      shape; ``gt_bboxes`` (B, G, 4) and ``gt_labels`` (B, G), or lists of B tensors of at most
      G rows (what ``DefaultFormatBundle`` + collate deliver), zero-padded to G here. The
      ``HPUPadGT`` pipeline transform produces exactly this; the ``HPUYOLOV3`` detector passes
      ``gt_valid`` through. G may differ from ``max_num_gt``.

    Too many boxes: an image with more than ``max_num_gt`` boxes in list form raises a
    ``ValueError`` naming ``model.bbox_head.max_num_gt``; boxes are never dropped silently.

    Inference: :meth:`get_bboxes_static` returns fixed-size per-image results
    (``test_cfg.max_per_img`` rows plus a count), with fixed shapes through NMS (one
    fixed-shape keep-mask op, per-image NMS inside); :meth:`static_detections` is the same from
    tensors and plain Python values only (what a compiled graph runs);
    :meth:`get_bboxes` slices them into the stock list of ``(det_bboxes, det_labels)``.

    Args:
        *args: Positional arguments of ``YOLOV3Head``.
        target_mode (str): ``'device'`` or ``'host'``. Default: ``'device'``.
        max_num_gt (int): Most ground-truth boxes per image, and the largest bucket, for
            list-form ground truth. Default: 128.
        **kwargs: Keyword arguments of ``YOLOV3Head``.
    """

    def __init__(self, *args, target_mode: str = 'device', max_num_gt: int = 128, **kwargs):
        if target_mode not in TARGET_MODES:
            raise ValueError(f'target_mode must be one of {TARGET_MODES}, got {target_mode!r}')
        if not isinstance(max_num_gt, int) or isinstance(max_num_gt, bool) or max_num_gt < 1:
            raise ValueError(f'max_num_gt must be a positive int, got {max_num_gt!r}')
        super().__init__(*args, **kwargs)
        self.target_mode = target_mode
        self.max_num_gt = max_num_gt
        self._prior_cache: Dict[tuple, dict] = {}
        # Slot-gathered class/xy/wh losses equal the dense ones only for sum reductions.
        self._gathered_loss = all(getattr(loss, 'reduction', None) == 'sum'
                                  for loss in (self.loss_cls, self.loss_xy, self.loss_wh))
        if self.train_cfg and target_mode == 'device':
            self._check_device_mode_train_cfg()

    def _check_device_mode_train_cfg(self):
        """Reject assigners/samplers the vectorised device targets do not reproduce."""
        if type(self.assigner) is not GridAssigner:
            raise TypeError("target_mode='device' reproduces GridAssigner only, got "
                            f"{type(self.assigner).__name__}; use target_mode='host'")
        if type(self.sampler) is not PseudoSampler:
            raise TypeError("target_mode='device' needs PseudoSampler, got "
                            f"{type(self.sampler).__name__}; use target_mode='host'")
        iou_calculator = self.assigner.iou_calculator
        if type(iou_calculator) is not BboxOverlaps2D or iou_calculator.dtype is not None:
            raise TypeError("target_mode='device' needs the default fp32 BboxOverlaps2D; "
                            "use target_mode='host'")

    # ------------------------------------------------------------------ priors
    def _priors(self, featmap_sizes: Sequence[Tuple[int, int]], device) -> dict:
        """Anchors and per-anchor constants for these feature-map sizes, cached per device.

        Args:
            featmap_sizes (Sequence[tuple[int, int]]): per level, (h, w).
            device (torch.device | str): where the tensors live.

        Returns:
            dict: ``anchors`` (A, 4), ``strides`` (A,) float, ``mlvl_anchors`` (per level
            (A_l, 4)), ``anchor_x`` (per level (w, n, 2): x1, x2 of each column's anchors),
            ``anchor_y`` (per level (h, n, 2): y1, y2 of each row's), ``num_level_anchors``
            (list[int]).
        """
        sizes = tuple((int(h), int(w)) for h, w in featmap_sizes)
        key = (sizes, str(device))
        # Inside a compiled graph the priors are graph constants: a cache miss on the first
        # trace and a hit on the next would compile the same graph twice.
        compiling = torch.compiler.is_compiling()
        cached = None if compiling else self._prior_cache.get(key)
        if cached is not None:
            return cached
        mlvl_anchors = self.prior_generator.grid_priors(sizes, device=device)
        num_level_anchors = [anchors.shape[0] for anchors in mlvl_anchors]
        strides = torch.cat([
            torch.full((n,), float(stride), device=device)
            for n, stride in zip(num_level_anchors, self.featmap_strides)
        ])
        # Grid anchors are separable: x extents depend on the column, y extents on the row.
        grids = [anchors.reshape(h, w, -1, 4) for anchors, (h, w) in zip(mlvl_anchors, sizes)]
        anchor_x = [grid[0, :, :, 0::2].contiguous() for grid in grids]
        anchor_y = [grid[:, 0, :, 1::2].contiguous() for grid in grids]
        cached = dict(anchors=torch.cat(mlvl_anchors), strides=strides,
                      mlvl_anchors=mlvl_anchors, anchor_x=anchor_x, anchor_y=anchor_y,
                      num_level_anchors=num_level_anchors)
        if not compiling:
            self._prior_cache[key] = cached
        return cached

    # ---------------------------------------------------------------- training
    def _before_loss(self) -> None:
        """In ``target_mode='host'``, cut the lazy graph: the device runs the forward while
        the host builds the targets."""
        if self.target_mode == 'host':
            from mmdet_hpu import device

            device.mark_step()

    @force_fp32(apply_to=('pred_maps', ))
    def loss(self, pred_maps, gt_bboxes, gt_labels, img_metas, gt_bboxes_ignore=None,
             gt_valid=None):
        """Compute the losses, equal to ``YOLOV3Head.loss``.

        Args:
            pred_maps (Sequence[Tensor]): per level, (B, num_base * (5 + C), h, w).
            gt_bboxes (list[Tensor] | Tensor): see the class docstring.
            gt_labels (list[Tensor] | Tensor): see the class docstring.
            img_metas (list[dict]): Image meta information (only its length is used).
            gt_bboxes_ignore (None): Unused, as in stock.
            gt_valid (Tensor | list[Tensor] | None): validity mask of padded ground truth.

        Returns:
            dict[str, list[Tensor]]: ``loss_cls``, ``loss_conf``, ``loss_xy``, ``loss_wh``, each
            a list with one scalar per level.
        """
        featmap_sizes = [tuple(pred_map.shape[-2:]) for pred_map in pred_maps]
        device = pred_maps[0].device
        if self.target_mode == 'host':
            target_maps, neg_maps = self._host_targets(featmap_sizes, gt_bboxes, gt_labels,
                                                       gt_valid, device)
            return self._dense_losses(pred_maps, target_maps, neg_maps)
        boxes, labels, valid = self.padded_gt(gt_bboxes, gt_labels, gt_valid, device)
        return self.loss_padded(pred_maps, boxes, labels, valid)

    @force_fp32(apply_to=('pred_maps', ))
    def loss_padded(self, pred_maps, boxes: torch.Tensor, labels: torch.Tensor,
                    valid: torch.Tensor) -> dict:
        """Device-mode losses of batched, padded ground truth: tensors and shapes only.

        What a compiled training graph runs (no image metadata, no Python lists): its
        inputs have one shape per (batch size, GT bucket).

        Args:
            pred_maps (Sequence[Tensor]): per level, (B, num_base * (5 + C), h, w).
            boxes (Tensor): (B, G, 4) padded boxes.
            labels (Tensor): (B, G) long labels.
            valid (Tensor): (B, G) bool, True for real rows.

        Returns:
            dict[str, list[Tensor]]: as :meth:`loss`.
        """
        featmap_sizes = [tuple(pred_map.shape[-2:]) for pred_map in pred_maps]
        device = pred_maps[0].device
        if not self._gathered_loss:
            target_maps, neg_maps = self.get_static_targets(featmap_sizes, boxes, labels, valid)
            return self._dense_losses(pred_maps, target_maps, neg_maps)
        assigned = self.assign_static(featmap_sizes, boxes, valid)
        priors = self._priors(featmap_sizes, device)
        losses_cls, losses_conf, losses_xy, losses_wh = multi_apply(
            self.loss_level, pred_maps, assigned.split(priors['num_level_anchors'], dim=1),
            priors['mlvl_anchors'], self.featmap_strides, gt_bboxes=boxes, gt_labels=labels)
        return dict(loss_cls=losses_cls, loss_conf=losses_conf, loss_xy=losses_xy,
                    loss_wh=losses_wh)

    def _dense_losses(self, pred_maps, target_maps, neg_maps) -> dict:
        """Losses from dense per-level target maps (host mode, non-sum reductions)."""
        losses_cls, losses_conf, losses_xy, losses_wh = multi_apply(
            self.loss_single, pred_maps, target_maps, neg_maps)
        return dict(loss_cls=losses_cls, loss_conf=losses_conf, loss_xy=losses_xy,
                    loss_wh=losses_wh)

    def loss_level(self, pred_map: torch.Tensor, assigned: torch.Tensor, anchors: torch.Tensor,
                   stride: int, gt_bboxes: torch.Tensor, gt_labels: torch.Tensor
                   ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss of one level from the assignment, equal to :meth:`loss_single` on its targets.

        Nothing copies the whole map to anchor-major order (stock does): the objectness loss
        covers every anchor, the class/xy/wh losses only cover
        ``K = min(A_l, n * G)`` slots per image: the positives (each is a responsible anchor,
        at most n per GT box) followed by arbitrary anchors of weight 0, picked by a fixed-size
        top-k of the positive mask. Both are read with one gather
        (:func:`~mmdet_hpu.models.utils.anchor_gather.gather_objectness_and_anchors`).

        Args:
            pred_map (Tensor): (B, n * (5 + C), h, w).
            assigned (Tensor): (B, A_l) long 1-based GT index, 0 (negative) or -1 (ignored).
            anchors (Tensor): (A_l, 4) anchors of the level.
            stride (int): Stride of the level.
            gt_bboxes (Tensor): (B, G, 4) padded boxes.
            gt_labels (Tensor): (B, G) long labels.

        Returns:
            tuple[Tensor, Tensor, Tensor, Tensor]: loss_cls, loss_conf, loss_xy, loss_wh.
        """
        num_imgs = pred_map.shape[0]
        positive = (assigned > 0).to(pred_map.dtype)
        num_slots = min(assigned.shape[1], self.num_base_priors * gt_bboxes.shape[1])
        weight, slots = positive.topk(num_slots, dim=1)  # (B, K): positives first
        objectness, preds = gather_objectness_and_anchors(pred_map, slots, self.num_base_priors)
        # Stock's pos_and_neg_mask = (neg_map + pos_mask).clamp(0, 1) == (assigned >= 0).
        loss_conf = self.loss_conf(objectness, positive,
                                   weight=(assigned >= 0).to(pred_map.dtype))
        gt_inds = (assigned.gather(1, slots) - 1).clamp(min=0)
        matched = torch.gather(gt_bboxes, 1, gt_inds[..., None].expand(num_imgs, num_slots, 4))
        slot_anchors = anchors.index_select(0, slots.reshape(-1)).reshape(num_imgs, num_slots, 4)
        encoded = self.bbox_coder.encode(slot_anchors, matched, float(stride))
        one_hot = self._one_hot(torch.gather(gt_labels, 1, gt_inds), encoded.dtype)
        weight = weight[..., None]
        loss_cls = self.loss_cls(preds[..., 5:], one_hot, weight=weight)
        loss_xy = self.loss_xy(preds[..., :2], encoded[..., :2], weight=weight)
        loss_wh = self.loss_wh(preds[..., 2:4], encoded[..., 2:4], weight=weight)
        return loss_cls, loss_conf, loss_xy, loss_wh

    def _one_hot(self, labels: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(..., C) one-hot class targets of (...) long labels, smoothed like stock."""
        classes = torch.arange(self.num_classes, device=labels.device)
        one_hot = (labels[..., None] == classes).to(dtype)
        if self.one_hot_smoother != 0:
            one_hot = one_hot * (1 - self.one_hot_smoother) + \
                self.one_hot_smoother / self.num_classes
        return one_hot

    def loss_single(self, pred_map, target_map, neg_map):
        """Loss of one level; stock minus the host-syncing overlap check.

        Args:
            pred_map (Tensor): (B, num_base * (5 + C), h, w).
            target_map (Tensor): (B, A_l, 5 + C).
            neg_map (Tensor): (B, A_l).

        Returns:
            tuple[Tensor, Tensor, Tensor, Tensor]: loss_cls, loss_conf, loss_xy, loss_wh.
        """
        num_imgs = pred_map.shape[0]
        pred_map = pred_map.permute(0, 2, 3, 1).reshape(num_imgs, -1, self.num_attrib)
        pos_mask = target_map[..., 4]
        # Stock checks ``torch.max(pos_and_neg_mask) > 1`` first (a host sync); the clamp
        # gives the same values unconditionally.
        pos_and_neg_mask = (neg_map.float() + pos_mask).clamp(min=0., max=1.)
        pos_mask = pos_mask.unsqueeze(dim=-1)
        loss_cls = self.loss_cls(pred_map[..., 5:], target_map[..., 5:], weight=pos_mask)
        loss_conf = self.loss_conf(pred_map[..., 4], target_map[..., 4],
                                   weight=pos_and_neg_mask)
        loss_xy = self.loss_xy(pred_map[..., :2], target_map[..., :2], weight=pos_mask)
        loss_wh = self.loss_wh(pred_map[..., 2:4], target_map[..., 2:4], weight=pos_mask)
        return loss_cls, loss_conf, loss_xy, loss_wh

    def padded_gt(self, gt_bboxes, gt_labels, gt_valid, device
                  ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalise either ground-truth form to (B, G, 4), (B, G), (B, G) on ``device``.

        Shape logic on host-side lengths only (lists are padded to the bucket of their
        longest entry); already batched tensors pass through.
        """
        if gt_valid is not None:
            boxes, labels, valid = stack_padded_gt(gt_bboxes, gt_labels, gt_valid)
        elif torch.is_tensor(gt_bboxes):
            raise ValueError('gt_bboxes is a padded tensor but gt_valid is missing; pass '
                             'gt_valid (see HPUPadGT) or per-image lists')
        else:
            boxes, labels, valid = bucket_gt_list(gt_bboxes, gt_labels, self.max_num_gt)
        return boxes.to(device), labels.to(device), valid.to(device)

    def get_static_targets(self, featmap_sizes: Sequence[Tuple[int, int]],
                           gt_bboxes: torch.Tensor, gt_labels: torch.Tensor,
                           gt_valid: torch.Tensor) -> Tuple[List[torch.Tensor],
                                                            List[torch.Tensor]]:
        """Build the training targets of a batch with fixed shapes (device mode).

        Args:
            featmap_sizes (Sequence[tuple[int, int]]): per level, (h, w).
            gt_bboxes (Tensor): (B, G, 4) padded boxes.
            gt_labels (Tensor): (B, G) long labels (any value in padding rows).
            gt_valid (Tensor): (B, G) bool.

        Returns:
            tuple[list[Tensor], list[Tensor]]: per level, target maps (B, A_l, 5 + C) and
            negative maps (B, A_l) uint8, as stock ``get_targets``.
        """
        priors = self._priors(featmap_sizes, gt_bboxes.device)
        assigned = self.assign_static(featmap_sizes, gt_bboxes, gt_valid)
        target_map = self._encode_targets(priors['anchors'], priors['strides'], gt_bboxes,
                                          gt_labels, assigned)
        neg_map = (assigned == 0).to(torch.uint8)
        split = priors['num_level_anchors']
        return list(target_map.split(split, dim=1)), list(neg_map.split(split, dim=1))

    def assign_static(self, featmap_sizes: Sequence[Tuple[int, int]], gt_bboxes: torch.Tensor,
                      gt_valid: torch.Tensor) -> torch.Tensor:
        """``GridAssigner`` result of every anchor of a batch, with fixed shapes.

        Args:
            featmap_sizes (Sequence[tuple[int, int]]): per level, (h, w).
            gt_bboxes (Tensor): (B, G, 4) padded boxes.
            gt_valid (Tensor): (B, G) bool.

        Returns:
            Tensor: (B, A) long 1-based GT index, 0 (negative) or -1 (ignored).
        """
        priors = self._priors(featmap_sizes, gt_bboxes.device)
        flags = responsible_flags(gt_bboxes, gt_valid, featmap_sizes,
                                  self.prior_generator.strides,
                                  self.prior_generator.num_base_anchors)
        overlaps = torch.cat([
            level_box_iou(gt_bboxes, anchor_x, anchor_y)
            for anchor_x, anchor_y in zip(priors['anchor_x'], priors['anchor_y'])
        ], dim=-1)
        assigner = self.assigner
        return grid_assign(overlaps, flags, gt_valid, assigner.pos_iou_thr,
                           assigner.neg_iou_thr, assigner.min_pos_iou,
                           assigner.gt_max_assign_all)

    def _encode_targets(self, anchors: torch.Tensor, strides: torch.Tensor,
                        gt_bboxes: torch.Tensor, gt_labels: torch.Tensor,
                        assigned: torch.Tensor) -> torch.Tensor:
        """Dense target map from assigned GT indices (no sampler, no dynamic gathers).

        Args:
            anchors (Tensor): (A, 4).
            strides (Tensor): (A,) float.
            gt_bboxes (Tensor): (B, G, 4).
            gt_labels (Tensor): (B, G) long.
            assigned (Tensor): (B, A) long, 1-based GT index, 0 or -1.

        Returns:
            Tensor: (B, A, 5 + C); zero on every non-positive anchor.
        """
        num_imgs, num_anchors = assigned.shape
        positive = (assigned > 0)[..., None]
        gt_inds = (assigned - 1).clamp(min=0)
        matched = torch.gather(gt_bboxes, 1, gt_inds[..., None].expand(num_imgs, num_anchors, 4))
        encoded = self.bbox_coder.encode(anchors.expand(num_imgs, num_anchors, 4), matched,
                                         strides)
        one_hot = self._one_hot(torch.gather(gt_labels, 1, gt_inds), encoded.dtype)
        target_map = torch.cat([encoded, torch.ones_like(encoded[..., :1]), one_hot], dim=-1)
        return torch.where(positive, target_map, torch.zeros_like(target_map))

    def _host_targets(self, featmap_sizes, gt_bboxes, gt_labels, gt_valid, device):
        """Build the targets on the host with the stock code, then move them (host mode).

        Returns:
            tuple[list[Tensor], list[Tensor]]: per level, target maps (B, A_l, 5 + C) and
            negative maps (B, A_l), on ``device``.
        """
        # Host mode: any D2H copy of the ground truth and the dynamic stock assigner run here
        # on purpose, on CPU; only fixed-shape targets go back to the device.
        if gt_valid is not None:
            boxes, labels, valid = stack_padded_gt(gt_bboxes, gt_labels, gt_valid)
            gt_bboxes, gt_labels = unpad_gt(boxes.cpu(), labels.cpu(), valid.cpu())
        else:
            gt_bboxes = [b.cpu() for b in gt_bboxes]
            gt_labels = [lbl.cpu() for lbl in gt_labels]
        mlvl_anchors = self._priors(featmap_sizes, 'cpu')['mlvl_anchors']
        flags = [self.prior_generator.responsible_flags(featmap_sizes, b, 'cpu')
                 for b in gt_bboxes]
        target_maps, neg_maps = self.get_targets([mlvl_anchors] * len(gt_bboxes), flags,
                                                 gt_bboxes, gt_labels)
        target_maps = [t.to(device, non_blocking=True) for t in target_maps]
        neg_maps = [n.to(device, non_blocking=True) for n in neg_maps]
        return target_maps, neg_maps

    # --------------------------------------------------------------- inference
    def _scale_factors(self, img_metas, device) -> torch.Tensor:
        """(B, 1, 4) or (B, 1, 1) scale factors from the image metas (host metadata -> H2D)."""
        factors = np.array([meta['scale_factor'] for meta in img_metas], dtype=np.float32)
        return torch.from_numpy(factors.reshape(len(img_metas), 1, -1)).to(device)

    def _objectness(self, pred_maps: Sequence[torch.Tensor]) -> torch.Tensor:
        """(B, A) objectness probabilities of every anchor, in ``grid_priors`` order."""
        num_imgs = pred_maps[0].shape[0]
        num_base = self.num_base_priors
        logits = [
            pred.reshape(num_imgs, num_base, self.num_attrib, -1)[:, :, 4].transpose(1, 2)
            .reshape(num_imgs, -1) for pred in pred_maps
        ]
        return torch.cat(logits, dim=1).float().sigmoid()

    def get_bboxes_pre_nms(self, pred_maps: Sequence[torch.Tensor],
                           scale_factors: Optional[torch.Tensor], conf_thr: float,
                           score_thr: float, nms_pre: int
                           ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Static part of inference: select, decode, rescale, threshold and top-k (no NMS).

        As mmdet's own ``onnx_export``, the ``nms_pre`` anchors of highest objectness are
        selected first (a fixed top-k; anchors failing ``conf_thr`` rank last anyway); only they
        are gathered, decoded and get class scores, (B, nms_pre, C) instead of (B, A, C). The
        (anchor, class) pairs passing both thresholds then go through a fixed top-``nms_pre``
        (:func:`select_topk_candidates`). Equal to stock whenever at most ``nms_pre`` anchors
        pass ``conf_thr`` and at most ``nms_pre`` pairs pass both thresholds.

        Args:
            pred_maps (Sequence[Tensor]): per level, (B, num_base * (5 + C), h, w).
            scale_factors (Tensor | None): (B, 1, 4) to map boxes to the original image, or
                None.
            conf_thr (float): objectness threshold (<= 0 disables it).
            score_thr (float): raw class-score threshold.
            nms_pre (int): K candidates per image (<= 0: every anchor and pair).

        Returns:
            tuple[Tensor, Tensor, Tensor, Tensor]: boxes (B, K, 4), scores (B, K), labels
            (B, K), valid (B, K); see :func:`select_topk_candidates`.
        """
        num_imgs = pred_maps[0].shape[0]
        featmap_sizes = [tuple(pred_map.shape[-2:]) for pred_map in pred_maps]
        priors = self._priors(featmap_sizes, pred_maps[0].device)
        objectness = self._objectness(pred_maps)
        num_anchors = objectness.shape[1]
        num_selected = num_anchors if nms_pre <= 0 else min(nms_pre, num_anchors)
        top_objectness, anchor_inds = objectness.topk(num_selected, dim=1)
        preds = gather_anchor_preds(pred_maps, anchor_inds, self.num_base_priors).float()
        flat_inds = anchor_inds.reshape(-1)
        anchors = priors['anchors'].index_select(0, flat_inds).reshape(num_imgs, -1, 4)
        strides = priors['strides'].index_select(0, flat_inds).reshape(num_imgs, -1, 1)
        bbox_preds = torch.cat([preds[..., :2].sigmoid(), preds[..., 2:4]], dim=-1)
        bboxes = self.bbox_coder.decode(anchors, bbox_preds, strides)
        if scale_factors is not None:
            bboxes = bboxes / scale_factors
        return select_topk_candidates(bboxes, top_objectness, preds[..., 5:].sigmoid(),
                                      conf_thr, score_thr, nms_pre)

    @force_fp32(apply_to=('pred_maps', ))
    def get_bboxes_static(self, pred_maps, img_metas, cfg=None, rescale=False
                          ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fixed-size detections of a whole batch.

        Uses ``cfg`` (default ``self.test_cfg``) keys ``conf_thr`` (default -1: off),
        ``score_thr``, ``nms_pre`` (default 1000; <= 0: every anchor x class pair),
        ``nms=dict(type='nms', iou_threshold=...)`` (``class_agnostic`` honoured) and
        ``max_per_img``.

        Args:
            pred_maps (Sequence[Tensor]): per level, (B, num_base * (5 + C), h, w).
            img_metas (list[dict]): Image meta information (``scale_factor`` when rescaling).
            cfg (mmcv.Config | dict | None): Test config; ``self.test_cfg`` when None.
            rescale (bool): Map boxes back to the original image size.

        Returns:
            tuple[Tensor, Tensor, Tensor]: dets (B, M, 5) float32 (x1, y1, x2, y2, score),
            best first; labels (B, M) long; num_dets (B,) long. M = ``max_per_img`` (or fewer
            when there are fewer candidates); rows from ``num_dets`` on are padding (dets 0,
            labels -1).
        """
        params = self.static_test_params(cfg)
        scale_factors = self._scale_factors(img_metas, pred_maps[0].device) if rescale else None
        return self.static_detections(pred_maps, scale_factors, params)

    def static_test_params(self, cfg=None) -> StaticTestParams:
        """The test config as plain Python values (what a compiled graph may depend on).

        Call it outside any traced region (dynamo on torch 2.6 cannot trace mmcv's
        ``ConfigDict.get``) and hand the result to :meth:`static_detections`.

        Args:
            cfg (mmcv.Config | dict | None): Test config; ``self.test_cfg`` when None.

        Returns:
            StaticTestParams: conf_thr, score_thr, nms_pre, iou_threshold, class_agnostic,
            max_per_img.
        """
        return parse_yolo_test_cfg(self.test_cfg if cfg is None else cfg, type(self).__name__)

    def static_detections(self, pred_maps: Sequence[torch.Tensor],
                          scale_factors: Optional[torch.Tensor], params: StaticTestParams
                          ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fixed-size detections from tensors and static values only (compilable, one graph
        per batch size).

        Args:
            pred_maps (Sequence[Tensor]): per level, (B, num_base * (5 + C), h, w).
            scale_factors (Tensor | None): (B, 1, 4) or (B, 1, 1); None: no rescaling.
            params (StaticTestParams): see :meth:`static_test_params`.

        Returns:
            tuple[Tensor, Tensor, Tensor]: dets (B, M, 5), labels (B, M), num_dets (B,), as
            :meth:`get_bboxes_static`.
        """
        boxes, scores, labels, valid = self.get_bboxes_pre_nms(
            [pred_map.float() for pred_map in pred_maps], scale_factors, params.conf_thr,
            params.score_thr, params.nms_pre)
        return batched_nms_fixed(boxes, scores, labels, valid, self.num_classes,
                                 params.iou_threshold, params.max_per_img,
                                 class_agnostic=params.class_agnostic)

    def get_bboxes(self, pred_maps, img_metas, cfg=None, rescale=False, with_nms=True):
        """Stock-compatible batched inference built on :meth:`get_bboxes_static`.

        As in stock mmdet 2.28, ``with_nms`` does not disable NMS (stock always calls
        ``multiclass_nms``); it is accepted for signature compatibility.

        Args:
            pred_maps (Sequence[Tensor]): per level, (B, num_base * (5 + C), h, w).
            img_metas (list[dict]): Image meta information.
            cfg (mmcv.Config | None): Test config; ``self.test_cfg`` when None.
            rescale (bool): Map boxes back to the original image size.
            with_nms (bool): Ignored, as in stock.

        Returns:
            list[tuple[Tensor, Tensor]]: per image, det_bboxes (n, 5) float32 sorted by score in
            descending order and det_labels (n,) long.
        """
        dets, labels, num_dets = self.get_bboxes_static(pred_maps, img_metas, cfg=cfg,
                                                        rescale=rescale)
        # Removing the padding needs the counts on the host: one D2H copy, at the very end.
        counts = num_dets.tolist()
        return [(dets[i, :n].float(), labels[i, :n]) for i, n in enumerate(counts)]
