"""FCOS head with fixed-shape (static) training targets and batched static inference."""
from typing import Dict, List, Sequence, Tuple

import torch
from mmcv.runner import force_fp32
from mmdet.core import reduce_mean
from mmdet.core.bbox.coder import DistancePointBBoxCoder
from mmdet.core.bbox.transforms import distance2bbox
from mmdet.models.builder import HEADS
from mmdet.models.dense_heads import FCOSHead

from ..utils.batch_gt import batch_gt
from ..utils.dense_static_inference import StaticDenseInferenceMixin
from ..utils.static_losses import (
    check_static_losses,
    static_centerness_loss,
    static_focal_loss,
    static_iou_loss,
)
from ..utils.static_point_targets import fcos_centerness_target, fcos_point_targets


def check_max_num_gt(max_num_gt) -> int:
    """Validate the ``max_num_gt`` head option; return it."""
    if not isinstance(max_num_gt, int) or isinstance(max_num_gt, bool) or max_num_gt < 1:
        raise ValueError(f'max_num_gt must be a positive int, got {max_num_gt!r}')
    return max_num_gt


def level_major(tensor: torch.Tensor, num_level_points: Sequence[int]) -> torch.Tensor:
    """(B, A, ...) image-major to (B * A, ...) in stock's order: level, then image, then point."""
    num_imgs = tensor.shape[0]
    return torch.cat([part.reshape((num_imgs * part.shape[1], ) + tuple(part.shape[2:]))
                      for part in tensor.split(list(num_level_points), dim=1)])


def flatten_level_major(maps: Sequence[torch.Tensor], channels: int) -> torch.Tensor:
    """Per-level (B, channels, h, w) maps to (sum B * h * w, channels), as stock flattens them."""
    return torch.cat([m.permute(0, 2, 3, 1).reshape(-1, channels) for m in maps])


@HEADS.register_module()
class HPUFCOSHead(StaticDenseInferenceMixin, FCOSHead):
    """Drop-in ``FCOSHead`` whose training loss and inference have static shapes.

    ``forward`` and the parameters are those of :class:`mmdet.models.dense_heads.FCOSHead`, so
    stock checkpoints load with ``strict=True``. The targets of the whole batch are built on the
    device at once (:func:`~mmdet_hpu.models.utils.static_point_targets.fcos_point_targets`:
    inside-box or centre sampling, regress ranges, smallest area wins with the first index on
    ties, ``norm_on_bbox``), and every loss runs over all points with the positives selected by
    weights: no ``nonzero``, boolean indexing, ``.item()`` or data-dependent branch. The
    normalisers (``num_pos``, the centerness sum) stay device tensors, all-reduced with mmdet's
    ``reduce_mean`` when distributed. Losses equal stock ``FCOSHead.loss`` (up to float summation
    order).

    Ground truth: stock per-image lists (padded here to the bucket of the largest image, see
    :func:`~mmdet_hpu.models.utils.gt_padding.gt_bucket`) or padded ground truth with
    ``gt_valid`` (the ``HPUPadGT`` pipeline transform; G from ``gt_valid``'s shape). Padding rows
    never become positives.

    Refused at build time (use the stock ``FCOSHead`` for them): a classification loss other than
    sigmoid ``FocalLoss``, a box loss other than ``IoULoss``/``GIoULoss``, a centerness loss
    other than sigmoid ``CrossEntropyLoss``, non-``'mean'`` reductions, a bbox coder other than
    ``DistancePointBBoxCoder``.

    Inference: see :class:`~mmdet_hpu.models.utils.dense_static_inference.
    StaticDenseInferenceMixin` (scores are multiplied by the sigmoid centerness, as stock).

    Args:
        *args: Positional arguments of ``FCOSHead``.
        max_num_gt (int): Most boxes per image (and largest bucket) for list ground truth.
            Default: 128.
        **kwargs: Keyword arguments of ``FCOSHead``.
    """

    def __init__(self, *args, max_num_gt: int = 128, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_num_gt = check_max_num_gt(max_num_gt)
        check_static_losses(type(self).__name__, self.loss_cls, self.loss_bbox,
                            self.loss_centerness)
        if type(self.bbox_coder) is not DistancePointBBoxCoder:
            raise TypeError("HPUFCOSHead: bbox_coder must be 'DistancePointBBoxCoder', got "
                            f'{type(self.bbox_coder).__name__}; use the stock FCOSHead')
        self._point_cache: Dict[tuple, dict] = {}
        self._check_test_cfg()

    def _points(self, featmap_sizes: Sequence[Tuple[int, int]], device) -> dict:
        """Points and per-point level constants, cached per (sizes, device) in eager mode.

        Returns:
            dict: ``mlvl_points`` (per level (A_l, 2)), ``points`` (A, 2), ``regress_ranges``
            (A, 2), ``radii`` (A,) = stride * ``center_sample_radius``, ``strides`` (A,),
            ``num_level_points`` (list[int]).
        """
        sizes = tuple((int(h), int(w)) for h, w in featmap_sizes)
        key = (sizes, str(device))
        # Under torch.compile the constants are traced instead: a cache filled inside the
        # traced code would change the guards and cost a second compilation.
        compiling = torch.compiler.is_compiling()
        cached = None if compiling else self._point_cache.get(key)
        if cached is not None:
            return cached
        mlvl_points = self.prior_generator.grid_priors(sizes, dtype=torch.float32, device=device)
        num_level_points = [points.shape[0] for points in mlvl_points]

        def per_point(values):
            table = torch.tensor(values, dtype=torch.float32, device=device)
            return torch.cat([row.expand(num, *row.shape)
                              for row, num in zip(table, num_level_points)])

        strides = [float(s if isinstance(s, (int, float)) else s[0]) for s in self.strides]
        ranges = [[float(low), float(high)] for low, high in self.regress_ranges]
        cached = dict(mlvl_points=mlvl_points, points=torch.cat(mlvl_points),
                      regress_ranges=per_point(ranges),
                      radii=per_point([s * self.center_sample_radius for s in strides]),
                      strides=per_point(strides), num_level_points=num_level_points)
        if not compiling:
            self._point_cache[key] = cached
        return cached

    # ---------------------------------------------------------------- training
    def forward_train(self, x, img_metas, gt_bboxes, gt_labels=None, gt_bboxes_ignore=None,
                      proposal_cfg=None, gt_valid=None, **kwargs):
        """Head forward + loss, passing ``gt_valid`` (padded ground truth) through.

        Args:
            x (tuple[Tensor]): Multi-level features.
            img_metas (list[dict]): Image meta information.
            gt_bboxes (list[Tensor] | Tensor): (n_i, 4) per image, or padded (B, G, 4).
            gt_labels (list[Tensor] | Tensor): (n_i,) per image, or padded (B, G).
            gt_bboxes_ignore (None): Unused, as in stock.
            proposal_cfg (mmcv.Config | None): If set, also return proposals.
            gt_valid (Tensor | list[Tensor] | None): Validity mask of padded ground truth.

        Returns:
            dict[str, Tensor] | tuple: losses, plus the proposal list if requested.
        """
        outs = self(x)
        losses = self.loss(*outs, gt_bboxes, gt_labels, img_metas,
                           gt_bboxes_ignore=gt_bboxes_ignore, gt_valid=gt_valid)
        if proposal_cfg is None:
            return losses
        return losses, self.get_bboxes(*outs, img_metas=img_metas, cfg=proposal_cfg)

    def get_static_targets(self, featmap_sizes: Sequence[Tuple[int, int]],
                           gt_bboxes: torch.Tensor, gt_labels: torch.Tensor,
                           gt_valid: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Labels and box targets of every point of the batch (fixed shapes).

        Args:
            featmap_sizes (Sequence[tuple[int, int]]): per level, (h, w).
            gt_bboxes (Tensor): (B, G, 4) padded boxes.
            gt_labels (Tensor): (B, G) long labels.
            gt_valid (Tensor): (B, G) bool.

        Returns:
            tuple[Tensor, Tensor]: labels (B, A) (``num_classes`` = background) and bbox targets
            (B, A, 4), divided by the level stride when ``norm_on_bbox`` (as stock).
        """
        points = self._points(featmap_sizes, gt_bboxes.device)
        labels, bbox_targets = fcos_point_targets(
            points['points'], points['regress_ranges'], points['radii'], gt_bboxes, gt_labels,
            gt_valid, self.num_classes, self.center_sampling)
        if self.norm_on_bbox:
            bbox_targets = bbox_targets / points['strides'][None, :, None]
        return labels, bbox_targets

    @force_fp32(apply_to=('cls_scores', 'bbox_preds', 'centernesses'))
    def loss(self, cls_scores, bbox_preds, centernesses, gt_bboxes, gt_labels, img_metas,
             gt_bboxes_ignore=None, gt_valid=None):
        """Losses equal to ``FCOSHead.loss``, with static shapes and no host read.

        Args:
            cls_scores (list[Tensor]): per level, (B, C, h, w).
            bbox_preds (list[Tensor]): per level, (B, 4, h, w).
            centernesses (list[Tensor]): per level, (B, 1, h, w).
            gt_bboxes (list[Tensor] | Tensor): see the class docstring.
            gt_labels (list[Tensor] | Tensor): see the class docstring.
            img_metas (list[dict]): Image meta information (unused, as in stock).
            gt_bboxes_ignore (None): Unused, as in stock.
            gt_valid (Tensor | list[Tensor] | None): Validity mask of padded ground truth.

        Returns:
            dict[str, Tensor]: ``loss_cls``, ``loss_bbox``, ``loss_centerness``.
        """
        featmap_sizes = [tuple(score.shape[-2:]) for score in cls_scores]
        device = cls_scores[0].device
        boxes, labels, valid = batch_gt(gt_bboxes, gt_labels, gt_valid, self.max_num_gt, device)
        point_labels, bbox_targets = self.get_static_targets(featmap_sizes, boxes, labels, valid)
        points = self._points(featmap_sizes, device)
        num_level_points = points['num_level_points']
        num_imgs = cls_scores[0].shape[0]

        flat_cls = flatten_level_major(cls_scores, self.cls_out_channels)
        flat_bbox_preds = flatten_level_major(bbox_preds, 4)
        flat_centerness = flatten_level_major(centernesses, 1).reshape(-1)
        flat_labels = level_major(point_labels, num_level_points)
        flat_targets = level_major(bbox_targets, num_level_points)
        flat_points = torch.cat([p.repeat(num_imgs, 1) for p in points['mlvl_points']])

        positive = flat_labels < self.num_classes  # labels are in [0, num_classes]
        num_pos = reduce_mean(positive.sum().float()).clamp(min=1.0)
        loss_cls = static_focal_loss(self.loss_cls, flat_cls, flat_labels, None, num_pos)

        centerness_targets = fcos_centerness_target(flat_targets, positive)
        centerness_denorm = reduce_mean(centerness_targets.sum().detach()).clamp(min=1e-6)
        pred_boxes, target_boxes = self._decoded_pairs(flat_points, flat_bbox_preds,
                                                       flat_targets, positive)
        loss_bbox = static_iou_loss(self.loss_bbox, pred_boxes, target_boxes,
                                    weight=centerness_targets, avg_factor=centerness_denorm)
        loss_centerness = static_centerness_loss(self.loss_centerness, flat_centerness,
                                                 centerness_targets,
                                                 weight=positive.to(flat_centerness.dtype),
                                                 avg_factor=num_pos)
        return dict(loss_cls=loss_cls, loss_bbox=loss_bbox, loss_centerness=loss_centerness)

    @staticmethod
    def _decoded_pairs(points: torch.Tensor, bbox_preds: torch.Tensor,
                       bbox_targets: torch.Tensor, positive: torch.Tensor
                       ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Decoded (pred, target) boxes of every point; a fixed 2x2 box at non-positives.

        Non-positive rows get the same well-formed box on both sides (loss 0, finite, and no
        gradient flows through ``where``'s unselected branch), whatever the prediction.

        Args:
            points (Tensor): (N, 2).
            bbox_preds (Tensor): (N, 4) predicted distances.
            bbox_targets (Tensor): (N, 4) target distances.
            positive (Tensor): (N,) bool.

        Returns:
            tuple[Tensor, Tensor]: (N, 4) predicted and target boxes.
        """
        safe = distance2bbox(points, torch.ones_like(bbox_targets))
        positive = positive[:, None]
        pred_boxes = torch.where(positive, distance2bbox(points, bbox_preds), safe)
        target_boxes = torch.where(positive, distance2bbox(points, bbox_targets), safe)
        return pred_boxes, target_boxes

    # --------------------------------------------------------------- inference
    def _decode_candidates(self, priors: torch.Tensor, bbox_preds: torch.Tensor
                           ) -> torch.Tensor:
        """(B, N, 4) boxes from (B, N, 2) points and (B, N, 4) distances (unclipped; the
        distances are already scaled by the stride in eval mode, so levels decode alike)."""
        return distance2bbox(priors, bbox_preds)

    def _level_priors(self, featmap_sizes, device) -> List[torch.Tensor]:
        """Per-level (A_l, 2) points."""
        return self._points(featmap_sizes, device)['mlvl_points']
