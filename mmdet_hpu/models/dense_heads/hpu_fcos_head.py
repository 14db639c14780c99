"""FCOS head with fixed-shape (static) training targets and batched static inference."""
from typing import Dict, List, Sequence, Tuple

import torch
from mmcv.runner import force_fp32
from mmdet.core import reduce_mean
from mmdet.core.bbox.coder import DistancePointBBoxCoder
from mmdet.models.builder import HEADS
from mmdet.models.dense_heads import FCOSHead

from ..utils.batch_gt import batch_gt
from ..utils.dense_loss_terms import image_major
from ..utils.dense_static_inference import StaticDenseInferenceMixin
from ..utils.label_focal_loss import label_focal_loss_sum
from ..utils.point_box_coder import distance_to_boxes
from ..utils.static_losses import (
    check_static_losses,
    static_centerness_loss,
    static_iou_loss,
)
from ..utils.static_point_targets import (
    fcos_centerness_target,
    fcos_point_targets,
    point_grids,
)
from .padded_gt_forward import PaddedGTForwardMixin


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


@HEADS.register_module()
class HPUFCOSHead(PaddedGTForwardMixin, StaticDenseInferenceMixin, FCOSHead):
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
            dict: ``mlvl_points`` (per level (A_l, 2)), ``points`` (A, 2), ``grids`` (per
            level :class:`~mmdet_hpu.models.utils.static_point_targets.PointGrid`: the grid's
            xs and ys, regress range and ``stride * center_sample_radius``), ``strides`` (A,),
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

        strides = [float(s if isinstance(s, (int, float)) else s[0]) for s in self.strides]
        ranges = torch.tensor([[float(low), float(high)] for low, high in self.regress_ranges],
                              dtype=torch.float32, device=device)
        radii = torch.tensor([s * self.center_sample_radius for s in strides],
                             dtype=torch.float32, device=device)
        level_strides = torch.tensor(strides, dtype=torch.float32, device=device)
        cached = dict(mlvl_points=mlvl_points, points=torch.cat(mlvl_points),
                      grids=point_grids(mlvl_points, sizes, ranges, radii),
                      strides=torch.cat([stride.expand(num) for stride, num
                                         in zip(level_strides, num_level_points)]),
                      num_level_points=num_level_points)
        if not compiling:
            self._point_cache[key] = cached
        return cached

    # ---------------------------------------------------------------- training
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
            points['grids'], points['points'], gt_bboxes, gt_labels,
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
        # Image-major (B, A) order throughout: the sums equal stock's level-major ones up to
        # float summation order, and the (B, C, h, w) class maps are never flattened.
        positive = point_labels < self.num_classes  # labels are in [0, num_classes]
        num_pos = reduce_mean(positive.sum().float()).clamp(min=1.0)
        loss_cls = self._focal_loss(cls_scores, point_labels, points['num_level_points'],
                                    num_pos)

        flat_bbox_preds = image_major(bbox_preds, 4)  # (B, A, 4)
        flat_centerness = image_major(centernesses, 1).squeeze(-1)  # (B, A)
        with torch.no_grad():
            centerness_targets = fcos_centerness_target(bbox_targets, positive)
        centerness_denorm = reduce_mean(centerness_targets.sum()).clamp(min=1e-6)
        pred_boxes, target_boxes = self._decoded_pairs(points['points'], flat_bbox_preds,
                                                       bbox_targets, positive)
        loss_bbox = static_iou_loss(self.loss_bbox, pred_boxes.reshape(-1, 4),
                                    target_boxes.reshape(-1, 4),
                                    weight=centerness_targets.reshape(-1),
                                    avg_factor=centerness_denorm)
        loss_centerness = static_centerness_loss(self.loss_centerness,
                                                 flat_centerness.reshape(-1),
                                                 centerness_targets.reshape(-1),
                                                 weight=positive.reshape(-1).to(
                                                     flat_centerness.dtype),
                                                 avg_factor=num_pos)
        return dict(loss_cls=loss_cls, loss_bbox=loss_bbox, loss_centerness=loss_centerness)

    def _focal_loss(self, cls_scores: Sequence[torch.Tensor], labels: torch.Tensor,
                    num_level_points: Sequence[int], avg_factor: torch.Tensor) -> torch.Tensor:
        """``FocalLoss`` of the (B, C, h, w) maps against (B, A) labels, as stock's mean.

        Stock: ``loss_weight * sum / (avg_factor + eps)`` (mmdet's ``weight_reduce_loss``).
        """
        focal = self.loss_cls
        total = sum(label_focal_loss_sum(score, level_labels, None, focal.gamma, focal.alpha)
                    for score, level_labels in zip(cls_scores,
                                                   labels.split(list(num_level_points), 1)))
        return focal.loss_weight * (total / (avg_factor + torch.finfo(torch.float32).eps))

    @staticmethod
    def _decoded_pairs(points: torch.Tensor, bbox_preds: torch.Tensor,
                       bbox_targets: torch.Tensor, positive: torch.Tensor
                       ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Decoded (pred, target) boxes of every point; a fixed 2x2 box at non-positives.

        Non-positive rows get the same well-formed box on both sides (loss 0, finite, and no
        gradient flows through ``where``'s unselected branch), whatever the prediction.

        Args:
            points (Tensor): (A, 2) (or (..., A, 2), broadcast against the rest).
            bbox_preds (Tensor): (B, A, 4) predicted distances.
            bbox_targets (Tensor): (B, A, 4) target distances.
            positive (Tensor): (B, A) bool.

        Returns:
            tuple[Tensor, Tensor]: (B, A, 4) predicted and target boxes.
        """
        safe = distance_to_boxes(points, torch.ones_like(bbox_targets))
        positive = positive[..., None]
        pred_boxes = torch.where(positive, distance_to_boxes(points, bbox_preds), safe)
        target_boxes = torch.where(positive, distance_to_boxes(points, bbox_targets), safe)
        return pred_boxes, target_boxes

    # --------------------------------------------------------------- inference
    def _decode_candidates(self, priors: torch.Tensor, bbox_preds: torch.Tensor
                           ) -> torch.Tensor:
        """(B, N, 4) boxes from (B, N, 2) points and (B, N, 4) distances (unclipped; the
        distances are already scaled by the stride in eval mode, so levels decode alike)."""
        return distance_to_boxes(priors, bbox_preds)

    def _level_priors(self, featmap_sizes, device) -> List[torch.Tensor]:
        """Per-level (A_l, 2) points."""
        return self._points(featmap_sizes, device)['mlvl_points']
