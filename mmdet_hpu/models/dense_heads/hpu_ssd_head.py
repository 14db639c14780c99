"""SSD head with fixed-shape training targets, rank-mask hard negative mining, static inference."""
import torch
from mmcv.runner import force_fp32
from mmdet.models.builder import HEADS
from mmdet.models.dense_heads import SSDHead
from mmdet.models.losses import smooth_l1_loss

from ..utils import cpu_speedups
from ..utils.fused_box_loss import smooth_l1_sum
from ..utils.fused_cross_entropy import cross_entropy_maps
from ..utils.radix_select import largest_k_mask
from .static_anchor_head import StaticAnchorHeadMixin


@HEADS.register_module()
class HPUSSDHead(StaticAnchorHeadMixin, SSDHead):
    """Drop-in ``SSDHead`` whose loss and inference have static shapes.

    ``forward`` and the parameters are those of :class:`mmdet.models.dense_heads.SSDHead`, so
    stock checkpoints load with ``strict=True``. Targets come from the batched static
    ``MaxIoUAssigner`` (SSD configs use ``gt_max_assign_all=False``), with padded ground truth
    (see :class:`StaticAnchorHeadMixin`). Hard negative mining keeps, per image, the
    ``k = min(neg_pos_ratio * num_pos, num_neg)`` negatives of largest loss, as stock's
    ``topk(k)``, but with fixed shapes: a mask of the k largest negative losses per image (a
    radix select on the CPU, a sort and rank mask ``rank < k`` elsewhere, see
    :meth:`_hardest_negatives`). The summed loss is stock's; only which of several negatives
    *tied* at the k-th loss gets the gradient may differ (stock ``topk`` leaves that
    unspecified too). ``num_total_pos`` stays a device tensor.

    Refused at build time (``ConfigError``, naming the option and the alternative): an assigner
    other than ``MaxIoUAssigner`` or with ``ignore_iof_thr > 0``, another IoU calculator.

    Inference: see :meth:`StaticAnchorHeadMixin.get_bboxes_static`.

    Args:
        *args: Positional arguments of ``SSDHead``.
        max_num_gt (int): Most ground-truth boxes per image, and the largest bucket, for
            list-form ground truth. Default: 128.
        **kwargs: Keyword arguments of ``SSDHead``.
    """

    def __init__(self, *args, max_num_gt: int = 128, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_static(max_num_gt, 'HPUSSDHead')
        if self.train_cfg:
            self._neg_pos_ratio = int(self.train_cfg.neg_pos_ratio)
            self._smoothl1_beta = float(self.train_cfg.smoothl1_beta)

    def anchor_cls_losses(self, cls_scores, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of every anchor, straight from the channel-first class maps.

        Each level's map (B, n * (C + 1), h, w) is viewed as (B * n, C + 1, h * w): softmax
        over the class axis in place, no permuted copy of the map, and the gradient comes
        back in the map's own layout. Only the (B, A) losses are reordered to anchor order.

        Args:
            cls_scores (list[Tensor]): per level, (B, n * (C + 1), h, w).
            labels (Tensor): (B, A) long, C = background, anchor order of ``grid_priors``.

        Returns:
            Tensor: (B, A) ``F.cross_entropy(..., reduction='none')`` of every anchor.
        """
        num_imgs = labels.shape[0]
        losses, start = [], 0
        for cls_score in cls_scores:
            cells = cls_score.shape[-2] * cls_score.shape[-1]
            logits = cls_score.reshape(-1, self.cls_out_channels, cells)
            num_base = logits.shape[0] // num_imgs
            level_labels = labels[:, start:start + cells * num_base]
            level_labels = level_labels.reshape(num_imgs, cells, num_base).transpose(1, 2)
            loss = cross_entropy_maps(logits, level_labels.reshape(-1, cells))
            losses.append(loss.reshape(num_imgs, num_base, cells).transpose(1, 2)
                          .reshape(num_imgs, -1))
            start += cells * num_base
        return torch.cat(losses, dim=1)

    def hard_negative_cls_loss(self, loss_all: torch.Tensor, labels: torch.Tensor,
                               label_weights: torch.Tensor, num_total_pos: torch.Tensor
                               ) -> torch.Tensor:
        """Classification loss of every image: positives plus the hardest negatives.

        Args:
            loss_all (Tensor): (B, A) cross-entropy of every anchor.
            labels (Tensor): (B, A) long, C = background.
            label_weights (Tensor): (B, A).
            num_total_pos (Tensor): 0-dim normaliser.

        Returns:
            Tensor: (B,) per-image loss (stock returns each as a (1,) tensor).
        """
        positive = labels < self.num_classes
        negative = labels == self.num_classes
        num_neg = torch.minimum(positive.sum(dim=1) * self._neg_pos_ratio, negative.sum(dim=1))
        weighted = loss_all * label_weights
        hardest = self._hardest_negatives(weighted, negative, num_neg)
        return torch.where(positive | hardest, weighted, 0.0).sum(dim=1) / num_total_pos

    @staticmethod
    def _hardest_negatives(loss_all: torch.Tensor, negative: torch.Tensor,
                           num_neg: torch.Tensor) -> torch.Tensor:
        """Mask of the ``num_neg`` negatives of largest loss in each image (no gradient).

        Cross-entropy is >= 0, and non-negative float32 values order as their int32 bit
        patterns: on the CPU a radix select over the bits picks them (about twice as fast as
        sorting, :func:`~mmdet_hpu.models.utils.radix_select.largest_k_mask`; a loss of -0.0
        counts as 0). Other devices sort the float losses, the other anchors at -inf, and
        scatter the ranks back (:mod:`~mmdet_hpu.models.utils.cpu_speedups`). Among negatives
        tied at the cut, which ones are chosen is unspecified (stock ``topk`` leaves it open
        too); the summed loss is the same.

        Args:
            loss_all (Tensor): (B, A) float32 losses, >= 0 where ``negative``.
            negative (Tensor): (B, A) bool.
            num_neg (Tensor): (B,) long, at most the negatives of each image.

        Returns:
            Tensor: (B, A) bool.
        """
        loss_all = loss_all.detach().float()
        if cpu_speedups.use_cpu_speedups(loss_all):
            keys = torch.where(negative, loss_all.view(torch.int32).clamp(min=0), -1)
            return largest_k_mask(keys, num_neg)
        keys = torch.where(negative, loss_all.clamp(min=0), float('-inf'))
        order = keys.sort(dim=1, descending=True).indices
        ranks = torch.arange(keys.shape[1], device=keys.device).expand_as(order)
        return torch.zeros_like(negative).scatter_(1, order, ranks < num_neg[:, None])

    def anchor_bbox_losses(self, bbox_preds, bbox_targets: torch.Tensor,
                           bbox_weights: torch.Tensor) -> torch.Tensor:
        """Per-image weighted smooth-L1 sums, straight from the channel-first box maps.

        Args:
            bbox_preds (list[Tensor]): per level, (B, n * 4, h, w).
            bbox_targets, bbox_weights (Tensor): (B, A, 4), anchor order of ``grid_priors``.

        Returns:
            Tensor: (B,) ``sum(smooth_l1(pred, target) * weight)`` of each image.
        """
        num_imgs = bbox_targets.shape[0]
        total, start = 0, 0
        for bbox_pred in bbox_preds:
            cells = bbox_pred.shape[-2] * bbox_pred.shape[-1]
            deltas = bbox_pred.reshape(num_imgs, -1, 4, cells)
            end = start + cells * deltas.shape[1]
            # (B, A_l, 4) -> (B, n, 4, h * w) views of the level's targets.
            targets, weights = (t[:, start:end].reshape(num_imgs, cells, -1, 4).permute(0, 2, 3, 1)
                                for t in (bbox_targets, bbox_weights))
            total = total + smooth_l1_sum(deltas, targets, weights, self._smoothl1_beta,
                                          dims=(1, 2, 3))
            start = end
        return total

    @force_fp32(apply_to=('cls_scores', 'bbox_preds'))
    def loss(self, cls_scores, bbox_preds, gt_bboxes, gt_labels, img_metas,
             gt_bboxes_ignore=None, gt_valid=None):
        """Losses equal to ``SSDHead.loss``, with fixed shapes.

        Args:
            cls_scores (list[Tensor]): per level, (B, num_anchors * (C + 1), h, w).
            bbox_preds (list[Tensor]): per level, (B, num_anchors * 4, h, w).
            gt_bboxes (list[Tensor] | Tensor): per-image (n_i, 4) or padded (B, G, 4).
            gt_labels (list[Tensor] | Tensor): per-image (n_i,) or padded (B, G).
            img_metas (list[dict]): Image meta information.
            gt_bboxes_ignore (None): Must be None (ignored boxes are not supported).
            gt_valid (Tensor | list[Tensor] | None): validity mask of padded ground truth.

        Returns:
            dict[str, list[Tensor]]: ``loss_cls`` (B tensors of shape (1,)) and ``loss_bbox``
            (B scalars), one per image as stock.
        """
        if gt_bboxes_ignore is not None:
            raise ValueError('HPUSSDHead does not support gt_bboxes_ignore')
        featmap_sizes = [tuple(score.shape[-2:]) for score in cls_scores]
        priors, targets = self.get_static_targets(featmap_sizes, img_metas, gt_bboxes,
                                                  gt_labels, gt_valid, cls_scores[0].device)
        labels, label_weights, bbox_targets, bbox_weights, num_total_pos = targets
        losses_cls = self.hard_negative_cls_loss(self.anchor_cls_losses(cls_scores, labels),
                                                 labels, label_weights, num_total_pos)
        if self.reg_decoded_bbox:
            num_imgs = labels.shape[0]
            all_bbox_preds = torch.cat([
                b.permute(0, 2, 3, 1).reshape(num_imgs, -1, 4) for b in bbox_preds
            ], -2)
            all_bbox_preds = self.bbox_coder.decode(
                priors['anchors'].expand(num_imgs, -1, 4).reshape(-1, 4),
                all_bbox_preds.reshape(-1, 4)).reshape(num_imgs, -1, 4)
            elementwise = smooth_l1_loss(all_bbox_preds, bbox_targets,
                                         beta=self._smoothl1_beta, reduction='none')
            bbox_sums = (elementwise * bbox_weights).sum(dim=(1, 2))
        else:
            bbox_sums = self.anchor_bbox_losses(bbox_preds, bbox_targets, bbox_weights)
        # Stock's per-image mean with avg_factor: sum(loss * weight) / (avg_factor + eps).
        eps = torch.finfo(torch.float32).eps
        losses_bbox = bbox_sums / (num_total_pos + eps)
        return dict(loss_cls=list(losses_cls[:, None].unbind(0)),
                    loss_bbox=list(losses_bbox.unbind(0)))
