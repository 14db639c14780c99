"""``forward_train`` of the HPU heads: stock's, with the padded ground truth's mask passed on."""


class PaddedGTForwardMixin:
    """Head forward + loss that passes ``gt_valid`` (from ``HPUPadGT``) to ``loss``.

    Stock ``BaseDenseHead.forward_train`` calls ``loss`` without it. Put this mixin before the
    stock head class among the bases.
    """

    def forward_train(self, x, img_metas, gt_bboxes, gt_labels=None, gt_bboxes_ignore=None,
                      proposal_cfg=None, gt_valid=None, **kwargs):
        """Head forward + loss, passing ``gt_valid`` (padded ground truth) through.

        Args:
            x (tuple[Tensor]): Multi-level features.
            img_metas (list[dict]): Image meta information.
            gt_bboxes (list[Tensor] | Tensor): (n_i, 4) per image, or padded (B, G, 4).
            gt_labels (list[Tensor] | Tensor): (n_i,) per image, or padded (B, G).
            gt_bboxes_ignore (list[Tensor] | None): Passed on to ``loss``.
            proposal_cfg (mmcv.Config | None): If set, also return proposals.
            gt_valid (Tensor | list[Tensor] | None): Validity mask of padded ground truth.

        Returns:
            dict | tuple: losses, plus the proposal list if ``proposal_cfg`` is given.
        """
        outs = self(x)
        self._before_loss()
        losses = self.loss(*outs, gt_bboxes, gt_labels, img_metas,
                           gt_bboxes_ignore=gt_bboxes_ignore, gt_valid=gt_valid)
        if proposal_cfg is None:
            return losses
        return losses, self.get_bboxes(*outs, img_metas=img_metas, cfg=proposal_cfg)

    def _before_loss(self) -> None:
        """Runs between the forward and the loss; nothing unless a head overrides it."""
