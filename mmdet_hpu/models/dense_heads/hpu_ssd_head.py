"""SSD head with fixed-shape training targets, rank-mask hard negative mining, static inference."""
import torch
import torch.nn.functional as F
from mmcv.runner import force_fp32
from mmdet.models.builder import HEADS
from mmdet.models.dense_heads import SSDHead
from mmdet.models.losses import smooth_l1_loss

from .static_anchor_head import StaticAnchorHeadMixin


@HEADS.register_module()
class HPUSSDHead(StaticAnchorHeadMixin, SSDHead):
    """Drop-in ``SSDHead`` whose loss and inference have static shapes.

    ``forward`` and the parameters are those of :class:`mmdet.models.dense_heads.SSDHead`, so
    stock checkpoints load with ``strict=True``. Targets come from the batched static
    ``MaxIoUAssigner`` (SSD configs use ``gt_max_assign_all=False``), with padded ground truth
    (see :class:`StaticAnchorHeadMixin`). Hard negative mining keeps, per image, the
    ``k = min(neg_pos_ratio * num_pos, num_neg)`` negatives of largest loss, as stock's
    ``topk(k)``, but with fixed shapes: the negative losses are sorted once (positives and
    ignored anchors rank last) and a rank mask ``rank < k`` selects them. The summed loss is
    stock's; only which of several negatives *tied* at the k-th loss gets the gradient may
    differ (stock ``topk`` leaves that unspecified too). ``num_total_pos`` stays a device
    tensor.

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

    def hard_negative_cls_loss(self, cls_score: torch.Tensor, labels: torch.Tensor,
                               label_weights: torch.Tensor, num_total_pos: torch.Tensor
                               ) -> torch.Tensor:
        """Classification loss of every image: positives plus the hardest negatives.

        Args:
            cls_score (Tensor): (B, A, C + 1) logits.
            labels (Tensor): (B, A) long, C = background.
            label_weights (Tensor): (B, A).
            num_total_pos (Tensor): 0-dim normaliser.

        Returns:
            Tensor: (B,) per-image loss (stock returns each as a (1,) tensor).
        """
        num_imgs, num_anchors = labels.shape
        loss_all = F.cross_entropy(cls_score.reshape(num_imgs * num_anchors, -1),
                                   labels.reshape(-1), reduction='none')
        loss_all = loss_all.reshape(num_imgs, num_anchors) * label_weights
        positive = labels < self.num_classes
        negative = labels == self.num_classes
        num_neg = torch.minimum(positive.sum(dim=1) * self._neg_pos_ratio, negative.sum(dim=1))
        # Cross-entropy is >= 0: -1 ranks every non-negative anchor after every negative one.
        neg_loss = torch.where(negative, loss_all, torch.full_like(loss_all, -1.0))
        ranked, _ = neg_loss.sort(dim=1, descending=True)
        ranks = torch.arange(num_anchors, device=labels.device)
        hardest = torch.where(ranks < num_neg[:, None], ranked, torch.zeros_like(ranked))
        loss_pos = torch.where(positive, loss_all, torch.zeros_like(loss_all)).sum(dim=1)
        return (loss_pos + hardest.sum(dim=1)) / num_total_pos

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
        num_imgs = labels.shape[0]
        all_cls_scores = torch.cat([
            s.permute(0, 2, 3, 1).reshape(num_imgs, -1, self.cls_out_channels)
            for s in cls_scores
        ], 1)
        all_bbox_preds = torch.cat([
            b.permute(0, 2, 3, 1).reshape(num_imgs, -1, 4) for b in bbox_preds
        ], -2)
        losses_cls = self.hard_negative_cls_loss(all_cls_scores, labels, label_weights,
                                                 num_total_pos)
        if self.reg_decoded_bbox:
            all_bbox_preds = self.bbox_coder.decode(
                priors['anchors'].expand(num_imgs, -1, 4).reshape(-1, 4),
                all_bbox_preds.reshape(-1, 4)).reshape(num_imgs, -1, 4)
        # Stock's per-image mean with avg_factor: sum(loss * weight) / (avg_factor + eps).
        elementwise = smooth_l1_loss(all_bbox_preds, bbox_targets, beta=self._smoothl1_beta,
                                     reduction='none')
        eps = torch.finfo(torch.float32).eps
        losses_bbox = (elementwise * bbox_weights).sum(dim=(1, 2)) / (num_total_pos + eps)
        return dict(loss_cls=list(losses_cls[:, None].unbind(0)),
                    loss_bbox=list(losses_bbox.unbind(0)))
