"""Fixed-shape training targets and batched inference shared by the HPU anchor heads.

Mixed into subclasses of mmdet's ``AnchorHead`` (``HPURetinaHead``, ``HPUSSDHead``) in front of
the stock class, so ``forward``, the parameters and the config keys stay the stock ones.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmdet.core import anchor_inside_flags
from mmdet.core.bbox.coder import DeltaXYWHBBoxCoder
from mmdet.core.bbox.samplers import PseudoSampler

from mmdet_hpu.errors import ConfigError

from ..utils.anchor_validity import all_anchors_valid
from ..utils.dense_static_inference import (
    finish_boxes,
    image_tensors,
    select_candidates,
    static_detections,
    unpad_detections,
)
from ..utils.gt_padding import bucket_gt_list, stack_padded_gt
from ..utils.static_max_iou_assigner import StaticMaxIoUAssigner
from ..utils.test_params import parse_test_cfg
from .padded_gt_forward import PaddedGTForwardMixin

StaticTargets = Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class StaticAnchorHeadMixin(PaddedGTForwardMixin):
    """Static targets (``MaxIoUAssigner`` + ``PseudoSampler``) and inference for anchor heads.

    Ground-truth input of ``loss`` / ``forward_train`` (as ``HPUYOLOV3Head``): stock per-image
    lists with ``gt_valid=None`` (padded here to the bucket of the most crowded image, see
    :func:`~mmdet_hpu.models.utils.gt_padding.bucket_gt_list`), or padded ground truth with
    ``gt_valid`` (B, G) / (B, 1, G) from ``HPUPadGT``. Padded rows never become positives.
    """

    def _init_static(self, max_num_gt: int, head_name: str) -> None:
        """Validate the static settings and read the train config into plain Python."""
        if not isinstance(max_num_gt, int) or isinstance(max_num_gt, bool) or max_num_gt < 1:
            raise ConfigError(f'model.bbox_head.max_num_gt must be a positive int, '
                              f'got {max_num_gt!r}')
        self.max_num_gt = max_num_gt
        self._anchor_cache: Dict[tuple, dict] = {}
        if not self.train_cfg:
            return
        if type(self.sampler) is not PseudoSampler:
            raise ConfigError(f'{head_name} needs no sampler (PseudoSampler), got '
                              f'model.train_cfg.sampler.type={type(self.sampler).__name__}; '
                              'delete the sampler from the config or use the stock head')
        self._static_assigner = StaticMaxIoUAssigner(self.assigner)
        self._allowed_border = float(self.train_cfg.get('allowed_border', -1))
        pos_weight = float(self.train_cfg.get('pos_weight', -1))
        self._pos_weight = 1.0 if pos_weight <= 0 else pos_weight

    # ------------------------------------------------------------------ anchors
    def _anchors(self, featmap_sizes: Sequence[Tuple[int, int]], device) -> dict:
        """Anchors of every level for these feature-map sizes, cached per device.

        Returns:
            dict: ``anchors`` (A, 4), ``mlvl_anchors`` (per level (A_l, 4)),
            ``num_level_anchors`` (list[int]), ``anchor_xywh`` (centre x, centre y, width,
            height: four (A,) tensors, see :meth:`_encode_deltas`).
        """
        sizes = tuple((int(h), int(w)) for h, w in featmap_sizes)
        key = (sizes, str(device))
        cached = self._cached(key)
        if cached is None:
            mlvl_anchors = self.prior_generator.grid_priors(sizes, device=device)
            anchors = torch.cat(mlvl_anchors)
            # Centres and sizes as in mmdet's bbox2delta (same operations, same values).
            anchor_xywh = ((anchors[:, 0] + anchors[:, 2]) * 0.5,
                           (anchors[:, 1] + anchors[:, 3]) * 0.5,
                           anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1])
            cached = dict(anchors=anchors, mlvl_anchors=mlvl_anchors,
                          num_level_anchors=[a.shape[0] for a in mlvl_anchors],
                          anchor_xywh=tuple(v.contiguous() for v in anchor_xywh))
            self._store(key, cached)
        return cached

    def _cached(self, key: tuple):
        """Cached anchor data, or None. Never read while ``torch.compile`` traces: a lookup
        that misses on the first trace and hits on the next would fail the dict guard and
        compile the same step twice; in a graph the anchors are a few ops anyway."""
        if torch.compiler.is_compiling():
            return None
        return self._anchor_cache.get(key)

    def _store(self, key: tuple, value) -> None:
        """Cache anchor data in eager mode (see :meth:`_cached`)."""
        if not torch.compiler.is_compiling():
            self._anchor_cache[key] = value

    def _inside_flags(self, featmap_sizes, img_metas, anchors: torch.Tensor
                      ) -> Optional[torch.Tensor]:
        """(B, A) stock ``inside_flags``: valid for the padded shape, inside the image.

        Built from host metadata (shapes) only, cached per distinct image/pad shape. None when
        every anchor is valid (:func:`~mmdet_hpu.models.utils.anchor_validity.all_anchors_valid`).
        """
        sizes = tuple((int(h), int(w)) for h, w in featmap_sizes)
        if all_anchors_valid(sizes, self.prior_generator.strides, img_metas,
                             self._allowed_border):
            return None
        flags = []
        for meta in img_metas:
            pad_shape = tuple(int(v) for v in meta['pad_shape'][:2])
            img_shape = tuple(int(v) for v in meta['img_shape'][:2])
            key = ('inside', sizes, pad_shape, img_shape, str(anchors.device))
            cached = self._cached(key)
            if cached is None:
                valid = torch.cat(self.prior_generator.valid_flags(sizes, pad_shape,
                                                                   anchors.device))
                cached = anchor_inside_flags(anchors, valid, img_shape, self._allowed_border)
                self._store(key, cached)
            flags.append(cached)
        return torch.stack(flags)

    # ---------------------------------------------------------------- training
    def _padded_gt(self, gt_bboxes, gt_labels, gt_valid, device
                   ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalise either ground-truth form to (B, G, 4), (B, G), (B, G) on ``device``."""
        if gt_valid is not None:
            boxes, labels, valid = stack_padded_gt(gt_bboxes, gt_labels, gt_valid)
        elif torch.is_tensor(gt_bboxes):
            raise ValueError('gt_bboxes is a padded tensor but gt_valid is missing; pass '
                             'gt_valid (see HPUPadGT) or per-image lists')
        else:
            boxes, labels, valid = bucket_gt_list(gt_bboxes, gt_labels, self.max_num_gt)
        return boxes.to(device), labels.to(device), valid.to(device)

    def get_static_targets(self, featmap_sizes, img_metas, gt_bboxes, gt_labels, gt_valid,
                           device) -> Tuple[dict, StaticTargets]:
        """Training targets of a batch, with fixed shapes, equal to stock ``get_targets``.

        Args:
            featmap_sizes (Sequence[tuple[int, int]]): per level, (h, w).
            img_metas (list[dict]): ``img_shape`` and ``pad_shape`` of each image.
            gt_bboxes, gt_labels, gt_valid: either ground-truth form (class docstring).
            device (torch.device): Device of the predictions.

        Returns:
            tuple[dict, tuple]: the anchors (see :meth:`_anchors`) and the concatenated targets
            labels (B, A) long (``num_classes`` = background), label_weights (B, A),
            bbox_targets (B, A, 4), bbox_weights (B, A, 4) and num_total_pos (0-dim float
            tensor: sum over images of ``max(num_pos, 1)``, as stock, never read on the host).
        """
        priors = self._anchors(featmap_sizes, device)
        anchors = priors['anchors']
        boxes, labels, valid = self._padded_gt(gt_bboxes, gt_labels, gt_valid, device)
        inside = self._inside_flags(featmap_sizes, img_metas, anchors)
        assigned, _ = self._static_assigner.assign(anchors, boxes, valid, inside)
        num_imgs, num_anchors = assigned.shape
        positive = assigned > 0
        gt_inds = (assigned - 1).clamp(min=0)
        positive_4 = positive[..., None]
        if not self.reg_decoded_bbox and type(self.bbox_coder) is DeltaXYWHBBoxCoder:
            bbox_targets = self._encode_deltas(priors, boxes, gt_inds, positive)
        else:
            matched = torch.gather(boxes, 1,
                                   gt_inds[..., None].expand(num_imgs, num_anchors, 4))
            if self.reg_decoded_bbox:
                encoded = matched
            else:
                encoded = self.bbox_coder.encode(
                    anchors.expand(num_imgs, num_anchors, 4).reshape(-1, 4),
                    matched.reshape(-1, 4)).reshape(num_imgs, num_anchors, 4)
            bbox_targets = torch.where(positive_4, encoded, torch.zeros_like(encoded))
        bbox_weights = positive_4.expand(num_imgs, num_anchors, 4).to(bbox_targets.dtype)
        target_labels = torch.where(positive, torch.gather(labels, 1, gt_inds),
                                    torch.full_like(gt_inds, self.num_classes))
        label_weights = torch.where(positive, self._pos_weight, (assigned == 0).float())
        num_total_pos = positive.sum(dim=1).clamp(min=1).sum().float()
        return priors, (target_labels, label_weights.float(), bbox_targets, bbox_weights,
                        num_total_pos)

    def _encode_deltas(self, priors: dict, boxes: torch.Tensor, gt_inds: torch.Tensor,
                       positive: torch.Tensor) -> torch.Tensor:
        """``DeltaXYWHBBoxCoder.encode`` of every positive anchor and its GT, bit for bit.

        mmdet's ``bbox2delta`` with its operations split by side: the anchor centres and sizes
        come from the anchor cache, the GT ones are computed on the (B, G) boxes and gathered,
        so only the four deltas are computed per anchor (no (B, A, 4) matched boxes).

        Args:
            priors (dict): :meth:`_anchors` output (``anchor_xywh``: four (A,) tensors).
            boxes (Tensor): (B, G, 4) padded GT boxes.
            gt_inds (Tensor): (B, A) long 0-based GT index of every anchor.
            positive (Tensor): (B, A) bool.

        Returns:
            Tensor: (B, A, 4) deltas, 0 where the anchor is not positive.
        """
        px, py, pw, ph = priors['anchor_xywh']
        gx = (boxes[..., 0] + boxes[..., 2]) * 0.5
        gy = (boxes[..., 1] + boxes[..., 3]) * 0.5
        gw = boxes[..., 2] - boxes[..., 0]
        gh = boxes[..., 3] - boxes[..., 1]
        gx, gy, gw, gh = (torch.gather(v, 1, gt_inds) for v in (gx, gy, gw, gh))
        coder = self.bbox_coder
        deltas = [(gx - px).div_(pw), (gy - py).div_(ph), gw.div_(pw).log_(), gh.div_(ph).log_()]
        zero = torch.zeros((), dtype=gx.dtype, device=gx.device)
        # Normalised and zeroed one (B, A) plane at a time: a where over the (B, A, 4) stack
        # broadcasts the mask along the last axis, which the CPU does element by element.
        deltas = [torch.where(positive, d.sub_(mean).div_(std), zero)
                  for d, mean, std in zip(deltas, coder.means, coder.stds)]
        return torch.stack(deltas, dim=-1)

    # --------------------------------------------------------------- inference
    def get_bboxes_pre_nms(self, cls_scores, bbox_preds, img_metas, score_thr: float,
                           nms_pre: int, rescale: bool
                           ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Static part of inference: per-level top-k, decode, clip, rescale (no NMS).

        Per level, the (anchor, class) pairs with score ``> score_thr`` rank first and a fixed
        top-``nms_pre`` picks them (stock ``filter_scores_and_topk``: top ``nms_pre`` of the
        passing pairs); the rest are marked invalid. The pairs are ranked among the ``nms_pre``
        anchors of highest best-class score only (the same top pairs, up to ties), and only the
        picked anchors are decoded (see
        :func:`~mmdet_hpu.models.utils.dense_static_inference.select_level_candidates`).

        Args:
            cls_scores (list[Tensor]): per level, (B, num_anchors * cls_out_channels, h, w).
            bbox_preds (list[Tensor]): per level, (B, num_anchors * 4, h, w).
            img_metas (list[dict]): ``img_shape`` (clipping) and ``scale_factor``.
            score_thr (float): class-score threshold (strict).
            nms_pre (int): pairs kept per level and image; <= 0 keeps every pair.
            rescale (bool): divide the boxes by ``scale_factor``.

        Returns:
            tuple[Tensor, Tensor, Tensor, Tensor]: boxes (B, K, 4), scores (B, K), labels (B, K)
            long and valid (B, K) bool; K = sum over levels of ``min(nms_pre, A_l * C)``.
        """
        device = cls_scores[0].device
        featmap_sizes = [tuple(score.shape[-2:]) for score in cls_scores]
        mlvl_anchors = self._anchors(featmap_sizes, device)['mlvl_anchors']
        num_base = self.num_base_priors
        num_base = num_base if isinstance(num_base, list) else [num_base] * len(cls_scores)
        found = select_candidates(cls_scores, bbox_preds, None, mlvl_anchors, num_base,
                                  self.num_classes, self.use_sigmoid_cls, score_thr, nms_pre)
        num_imgs, num_cands = found.scores.shape
        # Decoded unclipped, clipped to each image below (what stock's max_shape does).
        boxes = self.bbox_coder.decode(found.priors.reshape(-1, 4), found.preds.reshape(-1, 4))
        img_shapes, scale_factors = image_tensors(img_metas, device, rescale)
        boxes = finish_boxes(boxes.reshape(num_imgs, num_cands, 4), img_shapes, scale_factors,
                             getattr(self.bbox_coder, 'clip_border', True))
        return boxes, found.scores, found.labels, found.valid

    def get_bboxes_static(self, cls_scores, bbox_preds, img_metas, cfg=None, rescale=False
                          ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fixed-size detections of a whole batch, with one NMS call.

        Equal to stock ``get_bboxes`` (same boxes, scores and labels, up to the order of equal
        scores) when ``nms_pre > 0`` and, per level, no two (anchor, class) pairs tie in score
        at the ``nms_pre``-th place among those passing ``score_thr`` and no two anchors tie in
        best-class score at the ``nms_pre``-th place, nor two detections at the
        ``max_per_img``-th place after NMS; NMS itself may differ only for IoUs within
        ~1e-3 of the threshold (float32 rounding of the group offsets, as in stock; see
        :func:`~mmdet_hpu.models.utils.static_postprocess.boxes_apart_by_group`). With
        ``nms_pre <= 0`` every pair is a candidate (stock then drops the last one, a quirk of
        its slicing).

        Args:
            cls_scores (list[Tensor]): per level, (B, num_anchors * cls_out_channels, h, w).
            bbox_preds (list[Tensor]): per level, (B, num_anchors * 4, h, w).
            img_metas (list[dict]): Image meta information.
            cfg (mmcv.Config | None): test config (``score_thr``, ``nms_pre``, ``nms``,
                ``max_per_img``); ``self.test_cfg`` when None.
            rescale (bool): map boxes back to the original image size.

        Returns:
            tuple[Tensor, Tensor, Tensor]: dets (B, M, 5), labels (B, M) long, num_dets (B,)
            long; M = ``max_per_img``; rows from ``num_dets`` on are padding.
        """
        params = parse_test_cfg(self.test_cfg if cfg is None else cfg, type(self).__name__)
        boxes, scores, labels, valid = self.get_bboxes_pre_nms(
            [s.float() for s in cls_scores], [b.float() for b in bbox_preds], img_metas,
            params.score_thr, params.nms_pre, rescale)
        return static_detections(boxes, scores, labels, valid, self.num_classes, params)

    def get_bboxes(self, cls_scores, bbox_preds, score_factors=None, img_metas=None, cfg=None,
                   rescale=False, with_nms=True, **kwargs) -> List[tuple]:
        """Stock ``get_bboxes`` list built on :meth:`get_bboxes_static`.

        ``with_nms=False`` (and score factors) go to the stock code.

        Returns:
            list[tuple[Tensor, Tensor]]: per image, det_bboxes (n, 5) and det_labels (n,).
        """
        if not with_nms or score_factors is not None:
            return super().get_bboxes(cls_scores, bbox_preds, score_factors, img_metas, cfg,
                                      rescale, with_nms, **kwargs)
        return unpad_detections(*self.get_bboxes_static(cls_scores, bbox_preds, img_metas,
                                                        cfg=cfg, rescale=rescale))


def split_levels(tensor: torch.Tensor, num_level_anchors: List[int]) -> List[torch.Tensor]:
    """Split (B, A, ...) into per-level (B, A_l, ...) views (stock ``images_to_levels``)."""
    return list(tensor.split(num_level_anchors, dim=1))

