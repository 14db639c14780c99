"""Fixed-shape training targets and batched inference shared by the HPU anchor heads.

Mixed into subclasses of mmdet's ``AnchorHead`` (``HPURetinaHead``, ``HPUSSDHead``) in front of
the stock class, so ``forward``, the parameters and the config keys stay the stock ones.
"""
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from mmdet.core import anchor_inside_flags
from mmdet.core.bbox.coder import DeltaXYWHBBoxCoder
from mmdet.core.bbox.samplers import PseudoSampler

from mmdet_hpu.errors import ConfigError

from ..utils.gt_padding import bucket_gt_list, stack_padded_gt
from ..utils.static_max_iou_assigner import StaticMaxIoUAssigner
from ..utils.static_postprocess import batched_nms_fixed

StaticTargets = Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class StaticAnchorHeadMixin:
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

    def _inside_flags(self, featmap_sizes, img_metas, anchors: torch.Tensor) -> torch.Tensor:
        """(B, A) stock ``inside_flags``: valid for the padded shape, inside the image.

        Built from host metadata (shapes) only, cached per distinct image/pad shape.
        """
        sizes = tuple((int(h), int(w)) for h, w in featmap_sizes)
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

    def forward_train(self, x, img_metas, gt_bboxes, gt_labels=None, gt_bboxes_ignore=None,
                      proposal_cfg=None, gt_valid=None, **kwargs):
        """Head forward + loss, passing ``gt_valid`` (padded ground truth) through.

        Returns:
            dict | tuple: losses, plus the proposal list if ``proposal_cfg`` is given.
        """
        outs = self(x)
        losses = self.loss(*outs, gt_bboxes, gt_labels, img_metas,
                           gt_bboxes_ignore=gt_bboxes_ignore, gt_valid=gt_valid)
        if proposal_cfg is None:
            return losses
        return losses, self.get_bboxes(*outs, img_metas=img_metas, cfg=proposal_cfg)

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
        if not self.reg_decoded_bbox and type(self.bbox_coder) is DeltaXYWHBBoxCoder:
            encoded = self._encode_deltas(priors, boxes, gt_inds)
        else:
            matched = torch.gather(boxes, 1,
                                   gt_inds[..., None].expand(num_imgs, num_anchors, 4))
            if self.reg_decoded_bbox:
                encoded = matched
            else:
                encoded = self.bbox_coder.encode(
                    anchors.expand(num_imgs, num_anchors, 4).reshape(-1, 4),
                    matched.reshape(-1, 4)).reshape(num_imgs, num_anchors, 4)
        positive_4 = positive[..., None]
        bbox_targets = torch.where(positive_4, encoded, torch.zeros_like(encoded))
        bbox_weights = positive_4.expand(num_imgs, num_anchors, 4).to(encoded.dtype)
        target_labels = torch.where(positive, torch.gather(labels, 1, gt_inds),
                                    torch.full_like(gt_inds, self.num_classes))
        label_weights = torch.where(positive, self._pos_weight, (assigned == 0).float())
        num_total_pos = positive.sum(dim=1).clamp(min=1).sum().float()
        return priors, (target_labels, label_weights.float(), bbox_targets, bbox_weights,
                        num_total_pos)

    def _encode_deltas(self, priors: dict, boxes: torch.Tensor, gt_inds: torch.Tensor
                       ) -> torch.Tensor:
        """``DeltaXYWHBBoxCoder.encode`` of every anchor and its matched GT, bit for bit.

        mmdet's ``bbox2delta`` with its operations split by side: the anchor centres and sizes
        come from the anchor cache, the GT ones are computed on the (B, G) boxes and gathered,
        so only the four deltas are computed per anchor (no (B, A, 4) matched boxes).

        Args:
            priors (dict): :meth:`_anchors` output (``anchor_xywh``: four (A,) tensors).
            boxes (Tensor): (B, G, 4) padded GT boxes.
            gt_inds (Tensor): (B, A) long 0-based GT index of every anchor.

        Returns:
            Tensor: (B, A, 4) deltas (garbage where the anchor is not positive).
        """
        px, py, pw, ph = priors['anchor_xywh']
        gx = (boxes[..., 0] + boxes[..., 2]) * 0.5
        gy = (boxes[..., 1] + boxes[..., 3]) * 0.5
        gw = boxes[..., 2] - boxes[..., 0]
        gh = boxes[..., 3] - boxes[..., 1]
        gx, gy, gw, gh = (torch.gather(v, 1, gt_inds) for v in (gx, gy, gw, gh))
        deltas = torch.stack([(gx - px).div_(pw), (gy - py).div_(ph), gw.div_(pw).log_(),
                              gh.div_(ph).log_()], dim=-1)
        coder = self.bbox_coder
        means = deltas.new_tensor(coder.means)
        stds = deltas.new_tensor(coder.stds)
        return deltas.sub_(means).div_(stds)

    # --------------------------------------------------------------- inference
    def _level_scores(self, cls_score: torch.Tensor) -> torch.Tensor:
        """(B, A_l, C) class scores of one level: sigmoid, or softmax without background."""
        num_imgs = cls_score.shape[0]
        logits = cls_score.permute(0, 2, 3, 1).reshape(num_imgs, -1, self.cls_out_channels)
        if self.use_sigmoid_cls:
            return logits.sigmoid()
        return logits.softmax(-1)[..., :-1]

    def get_bboxes_pre_nms(self, cls_scores, bbox_preds, img_metas, score_thr: float,
                           nms_pre: int, rescale: bool
                           ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Static part of inference: per-level top-k, decode, clip, rescale (no NMS).

        Per level, the (anchor, class) pairs with score ``> score_thr`` rank first and a fixed
        top-``nms_pre`` picks them (stock ``filter_scores_and_topk``: top ``nms_pre`` of the
        passing pairs); the rest are marked invalid. The pairs are ranked among the ``nms_pre``
        anchors of highest best-class score only (the same top pairs, up to ties), and only the
        picked anchors are decoded.

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
        num_imgs = cls_scores[0].shape[0]
        featmap_sizes = [tuple(score.shape[-2:]) for score in cls_scores]
        mlvl_anchors = self._anchors(featmap_sizes, cls_scores[0].device)['mlvl_anchors']
        all_boxes, all_scores, all_labels, all_valid = [], [], [], []
        for cls_score, bbox_pred, anchors in zip(cls_scores, bbox_preds, mlvl_anchors):
            scores = self._level_scores(cls_score)
            num_level, num_classes = scores.shape[1:]
            k = num_level * num_classes if nms_pre <= 0 else min(nms_pre, num_level * num_classes)
            # The top k pairs lie among the k anchors of highest best-class score (each anchor
            # ranked above a pair's anchor holds a pair ranked above it): pick those first.
            num_sel = min(k, num_level)
            _, sel = scores.amax(dim=2).topk(num_sel, dim=1)
            sel_scores = torch.gather(scores, 1, sel[..., None].expand(-1, -1, num_classes))
            flat = sel_scores.reshape(num_imgs, -1)
            valid = flat > score_thr
            # Scores lie in [0, 1]: -1 ranks every failing pair below every passing one.
            ranked = torch.where(valid, flat, torch.full_like(flat, -1.0))
            k = min(k, flat.shape[1])
            _, top = ranked.topk(k, dim=1)
            sel_inds = torch.div(top, num_classes, rounding_mode='floor')
            anchor_inds = torch.gather(sel, 1, sel_inds)
            all_labels.append(top - sel_inds * num_classes)
            all_scores.append(torch.gather(flat, 1, top))
            all_valid.append(torch.gather(valid, 1, top))
            deltas = bbox_pred.permute(0, 2, 3, 1).reshape(num_imgs, -1, 4)
            all_boxes.append((torch.gather(deltas, 1, anchor_inds[..., None].expand(-1, -1, 4)),
                              anchors.index_select(0, anchor_inds.reshape(-1))
                              .reshape(num_imgs, k, 4)))
        deltas = torch.cat([d for d, _ in all_boxes], dim=1)
        anchors = torch.cat([a for _, a in all_boxes], dim=1)
        # One decode per image (stock clips each image to its own img_shape).
        boxes = torch.stack([
            self.bbox_coder.decode(anchors[i], deltas[i], max_shape=meta['img_shape'])
            for i, meta in enumerate(img_metas)
        ])
        if rescale:
            factors = np.array([meta['scale_factor'] for meta in img_metas], dtype=np.float32)
            boxes = boxes / torch.from_numpy(factors.reshape(num_imgs, 1, -1)).to(boxes.device)
        return (boxes, torch.cat(all_scores, dim=1), torch.cat(all_labels, dim=1),
                torch.cat(all_valid, dim=1))

    def get_bboxes_static(self, cls_scores, bbox_preds, img_metas, cfg=None, rescale=False
                          ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fixed-size detections of a whole batch, with one NMS call.

        Equal to stock ``get_bboxes`` (same boxes, scores and labels, up to the order of equal
        scores) when ``nms_pre > 0`` and, per level, no two (anchor, class) pairs tie in score
        at the ``nms_pre``-th place among those passing ``score_thr`` and no two anchors tie in
        best-class score at the ``nms_pre``-th place, nor two detections at the
        ``max_per_img``-th place after NMS; NMS itself may differ only for IoUs within
        ~1e-3 of the threshold (float32 rounding of the group offsets, as in stock; see
        :func:`~mmdet_hpu.models.utils.static_postprocess.nms_input`). With ``nms_pre <= 0``
        every pair is a candidate (stock then drops the last one, a quirk of its slicing).

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
        cfg = self.test_cfg if cfg is None else cfg
        iou_threshold, class_agnostic = parse_nms_cfg(cfg['nms'], type(self).__name__)
        boxes, scores, labels, valid = self.get_bboxes_pre_nms(
            [s.float() for s in cls_scores], [b.float() for b in bbox_preds], img_metas,
            float(cfg['score_thr']), int(cfg.get('nms_pre', -1)), rescale)
        return batched_nms_fixed(boxes, scores, labels, valid, self.num_classes, iou_threshold,
                                 int(cfg['max_per_img']), class_agnostic=class_agnostic)

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
        dets, labels, num_dets = self.get_bboxes_static(cls_scores, bbox_preds, img_metas,
                                                        cfg=cfg, rescale=rescale)
        # Removing the padding needs the counts on the host: one D2H copy, at the very end.
        counts = num_dets.tolist()
        return [(dets[i, :n], labels[i, :n]) for i, n in enumerate(counts)]


def parse_nms_cfg(nms_cfg, head_name: str) -> Tuple[float, bool]:
    """IoU threshold and class-agnosticism of an mmcv ``nms`` config dict.

    Raises:
        ConfigError: For NMS types other than ``'nms'`` (soft-NMS etc.) or no threshold.
    """
    nms_type = nms_cfg.get('type', 'nms')
    if nms_type != 'nms':
        raise ConfigError(f"{head_name} supports test_cfg.nms.type='nms' only, got "
                          f'{nms_type!r}; use the stock head for it')
    iou_threshold = nms_cfg.get('iou_threshold', nms_cfg.get('iou_thr'))
    if iou_threshold is None:
        raise ConfigError('test_cfg.nms needs iou_threshold')
    return float(iou_threshold), bool(nms_cfg.get('class_agnostic', False))


def split_levels(tensor: torch.Tensor, num_level_anchors: List[int]) -> List[torch.Tensor]:
    """Split (B, A, ...) into per-level (B, A_l, ...) views (stock ``images_to_levels``)."""
    return list(tensor.split(num_level_anchors, dim=1))

