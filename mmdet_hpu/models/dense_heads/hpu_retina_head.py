"""RetinaNet head with fixed-shape training targets and batched static inference."""
import torch
from mmcv.runner import force_fp32
from mmdet.core import multi_apply
from mmdet.models.builder import HEADS
from mmdet.models.dense_heads import RetinaHead
from mmdet.models.losses import FocalLoss, L1Loss, SmoothL1Loss
from mmdet.models.losses.focal_loss import py_sigmoid_focal_loss

from mmdet_hpu.errors import ConfigError

from ..utils.fused_box_loss import smooth_l1_sum
from ..utils.label_focal_loss import label_focal_loss_sum
from .static_anchor_head import StaticAnchorHeadMixin, split_levels

SUPPORTED_BBOX_LOSSES = (L1Loss, SmoothL1Loss)


@HEADS.register_module()
class HPURetinaHead(StaticAnchorHeadMixin, RetinaHead):
    """Drop-in ``RetinaHead`` whose loss and inference have static shapes.

    ``forward`` and the parameters are those of :class:`mmdet.models.dense_heads.RetinaHead`, so
    stock checkpoints load with ``strict=True``. Training targets come from the batched
    :class:`~mmdet_hpu.models.utils.static_max_iou_assigner.StaticMaxIoUAssigner` (equal to
    ``MaxIoUAssigner`` + ``PseudoSampler``, see there), with ground truth padded to a bucket
    (see :class:`StaticAnchorHeadMixin`); ``num_total_pos`` stays a device tensor. The losses
    equal stock's: the focal loss is that of mmdet's ``py_sigmoid_focal_loss`` (what stock runs
    on every device but CUDA). With ``reduction='mean'`` (and boxes not decoded) each level's
    losses are computed on the maps viewed channel-first (B, n, C, h * w), without permuted
    copies, by :func:`~mmdet_hpu.models.utils.label_focal_loss.label_focal_loss_sum` (labels
    as indices, no one-hot, analytic gradient) and
    :func:`~mmdet_hpu.models.utils.fused_box_loss.smooth_l1_sum`; otherwise the stock
    ``loss_single`` layout (the focal loss still from the maps when its reduction is
    ``'mean'``, else with a one-hot built by comparison: ``F.one_hot`` reads the labels' range
    on the host).

    Refused at build time (``ConfigError``, naming the option and the alternative): a sampler
    other than ``PseudoSampler``, an assigner other than ``MaxIoUAssigner`` or with
    ``ignore_iof_thr > 0``, a ``loss_cls`` other than sigmoid ``FocalLoss``, a ``loss_bbox``
    other than ``L1Loss``/``SmoothL1Loss`` (``GIoULoss`` etc. read the weights on the host).

    Inference: see :meth:`StaticAnchorHeadMixin.get_bboxes_static` (one NMS call per batch and
    the exact condition under which detections equal stock).

    Args:
        *args: Positional arguments of ``RetinaHead``.
        max_num_gt (int): Most ground-truth boxes per image, and the largest bucket, for
            list-form ground truth. Default: 128.
        **kwargs: Keyword arguments of ``RetinaHead``.
    """

    def __init__(self, *args, max_num_gt: int = 128, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_static(max_num_gt, 'HPURetinaHead')
        loss_cls = self.loss_cls
        if type(loss_cls) is not FocalLoss or not loss_cls.use_sigmoid or loss_cls.activated:
            raise ConfigError('HPURetinaHead needs model.bbox_head.loss_cls=dict(type='
                              "'FocalLoss', use_sigmoid=True) (not activated), got "
                              f'{type(loss_cls).__name__}; use the stock RetinaHead for it')
        if not isinstance(self.loss_bbox, SUPPORTED_BBOX_LOSSES):
            raise ConfigError('HPURetinaHead supports model.bbox_head.loss_bbox L1Loss or '
                              f'SmoothL1Loss, got {type(self.loss_bbox).__name__}; use the '
                              'stock RetinaHead for it')
        self._focal = dict(gamma=float(loss_cls.gamma), alpha=float(loss_cls.alpha),
                           reduction=loss_cls.reduction, loss_weight=float(loss_cls.loss_weight))

    def _focal_loss(self, cls_score, labels, label_weights, avg_factor) -> torch.Tensor:
        """Stock ``FocalLoss`` (non-CUDA path) without ``F.one_hot``'s host read.

        Args:
            cls_score (Tensor): (B, n * C, h, w) logits of one level.
            labels (Tensor): (B, A_l) long, C = background.
            label_weights (Tensor): (B, A_l).
            avg_factor (Tensor): 0-dim normaliser.
        """
        focal = self._focal
        if focal['reduction'] == 'mean':
            # mmdet's weight_reduce_loss: sum / (avg_factor + eps).
            eps = torch.finfo(torch.float32).eps
            total = label_focal_loss_sum(cls_score, labels, label_weights, focal['gamma'],
                                         focal['alpha'])
            return focal['loss_weight'] * (total / (avg_factor + eps))
        flat = cls_score.permute(0, 2, 3, 1).reshape(-1, self.cls_out_channels)
        classes = torch.arange(self.cls_out_channels, device=labels.device)
        one_hot = labels.reshape(-1)[:, None] == classes
        return focal['loss_weight'] * py_sigmoid_focal_loss(
            flat, one_hot, label_weights.reshape(-1), gamma=focal['gamma'],
            alpha=focal['alpha'], reduction=focal['reduction'], avg_factor=avg_factor)

    def loss_single(self, cls_score, bbox_pred, anchors, labels, label_weights, bbox_targets,
                    bbox_weights, num_total_samples):
        """``AnchorHead.loss_single`` with the sync-free focal loss; same arguments."""
        loss_cls = self._focal_loss(cls_score, labels, label_weights, num_total_samples)
        bbox_targets = bbox_targets.reshape(-1, 4)
        bbox_weights = bbox_weights.reshape(-1, 4)
        bbox_pred = bbox_pred.permute(0, 2, 3, 1).reshape(-1, 4)
        if self.reg_decoded_bbox:
            bbox_pred = self.bbox_coder.decode(anchors.reshape(-1, 4), bbox_pred)
        loss_bbox = self.loss_bbox(bbox_pred, bbox_targets, bbox_weights,
                                   avg_factor=num_total_samples)
        return loss_cls, loss_bbox

    def _level_losses(self, cls_score, bbox_pred, labels, label_weights, bbox_targets,
                      bbox_weights, num_total_samples):
        """``loss_single`` computed on the channel-first maps (no permuted copies).

        The maps (B, n * C, h, w) are viewed as (B, n, C, h * w); the (small) targets of the
        level, in anchor order ``cell * n + base``, are viewed to match. Same values as
        :meth:`loss_single` up to the order of the sums; the gradients come back in the
        maps' own layout.

        Args:
            cls_score (Tensor): (B, n * C, h, w).
            bbox_pred (Tensor): (B, n * 4, h, w).
            labels, label_weights (Tensor): (B, A_l), A_l = h * w * n.
            bbox_targets, bbox_weights (Tensor): (B, A_l, 4).
            num_total_samples (Tensor): 0-dim normaliser.

        Returns:
            tuple[Tensor, Tensor]: loss_cls and loss_bbox of the level.
        """
        num_imgs, _, feat_h, feat_w = cls_score.shape
        cells = feat_h * feat_w
        num_base = cls_score.shape[1] // self.cls_out_channels

        def channel_first(target):  # (B, A_l, ...) -> (B, n, ..., h * w)
            target = target.reshape(num_imgs, cells, num_base, -1)
            return target.permute(0, 2, 3, 1)

        eps = torch.finfo(torch.float32).eps
        loss_cls = self._focal_loss(cls_score, labels, label_weights, num_total_samples)
        deltas = bbox_pred.reshape(num_imgs, num_base, 4, cells)
        if self.loss_bbox.reduction == 'mean':
            box = self.loss_bbox
            total = smooth_l1_sum(deltas, channel_first(bbox_targets), channel_first(bbox_weights),
                                  getattr(box, 'beta', 0.0), dims=(0, 1, 2, 3))
            loss_bbox = box.loss_weight * (total / (num_total_samples + eps))
        else:
            loss_bbox = self.loss_bbox(deltas, channel_first(bbox_targets),
                                       channel_first(bbox_weights), avg_factor=num_total_samples)
        return loss_cls, loss_bbox

    @force_fp32(apply_to=('cls_scores', 'bbox_preds'))
    def loss(self, cls_scores, bbox_preds, gt_bboxes, gt_labels, img_metas,
             gt_bboxes_ignore=None, gt_valid=None):
        """Losses equal to ``AnchorHead.loss``, with fixed shapes.

        Args:
            cls_scores (list[Tensor]): per level, (B, num_anchors * C, h, w).
            bbox_preds (list[Tensor]): per level, (B, num_anchors * 4, h, w).
            gt_bboxes (list[Tensor] | Tensor): per-image (n_i, 4) or padded (B, G, 4).
            gt_labels (list[Tensor] | Tensor): per-image (n_i,) or padded (B, G).
            img_metas (list[dict]): Image meta information.
            gt_bboxes_ignore (None): Must be None (ignored boxes are not supported).
            gt_valid (Tensor | list[Tensor] | None): validity mask of padded ground truth.

        Returns:
            dict[str, list[Tensor]]: ``loss_cls`` and ``loss_bbox``, one scalar per level.
        """
        if gt_bboxes_ignore is not None:
            raise ValueError('HPURetinaHead does not support gt_bboxes_ignore')
        featmap_sizes = [tuple(score.shape[-2:]) for score in cls_scores]
        priors, targets = self.get_static_targets(featmap_sizes, img_metas, gt_bboxes,
                                                  gt_labels, gt_valid, cls_scores[0].device)
        labels, label_weights, bbox_targets, bbox_weights, num_total_pos = targets
        split = priors['num_level_anchors']
        num_imgs = labels.shape[0]
        per_level = (split_levels(labels, split), split_levels(label_weights, split),
                     split_levels(bbox_targets, split), split_levels(bbox_weights, split))
        if self._focal['reduction'] == 'mean' and not self.reg_decoded_bbox:
            losses_cls, losses_bbox = multi_apply(self._level_losses, cls_scores, bbox_preds,
                                                  *per_level, num_total_samples=num_total_pos)
        else:
            level_anchors = [a.expand(num_imgs, *a.shape) for a in priors['mlvl_anchors']]
            losses_cls, losses_bbox = multi_apply(self.loss_single, cls_scores, bbox_preds,
                                                  level_anchors, *per_level,
                                                  num_total_samples=num_total_pos)
        return dict(loss_cls=losses_cls, loss_bbox=losses_bbox)
