"""Single-stage detectors whose training step never syncs the host."""
import inspect
from collections import OrderedDict
from typing import Dict, Tuple

import torch
from mmdet.models.builder import DETECTORS
from mmdet.models.detectors import RetinaNet, SingleStageDetector
from mmdet.models.detectors.base import BaseDetector


def parse_losses_on_device(losses: Dict) -> Tuple[torch.Tensor, 'OrderedDict[str, torch.Tensor]']:
    """Sum the losses like stock ``_parse_losses``; keep the logged values on the device.

    Stock calls ``.item()`` on each value (one D2H sync per loss) and, when distributed,
    all-reduces their number and every value on every iteration. Here nothing is reduced and
    nothing leaves the device: the runner's log buffer reduces (and reads) the values at the
    logging interval only.

    Args:
        losses (dict[str, Tensor | list[Tensor]]): Raw head outputs.

    Returns:
        tuple[Tensor, OrderedDict[str, Tensor]]: the total loss (with grad) and the detached
        0-dim device tensors to log, keyed like stock.

    Raises:
        TypeError: If a value is neither a tensor nor a list of tensors.
    """
    log_vars = OrderedDict()
    for name, value in losses.items():
        if isinstance(value, torch.Tensor):
            log_vars[name] = value.mean()
        elif isinstance(value, list):
            log_vars[name] = sum(item.mean() for item in value)
        else:
            raise TypeError(f'{name} is not a tensor or list of tensors')
    loss = sum(value for key, value in log_vars.items() if 'loss' in key)
    log_vars['loss'] = loss
    return loss, OrderedDict((key, value.detach()) for key, value in log_vars.items())


class StaticLossesMixin:
    """Sync-free ``_parse_losses`` and padded ground truth for any ``SingleStageDetector``.

    * :meth:`_parse_losses`: see :func:`parse_losses_on_device` (same keys as stock; the
      cross-rank length check is dropped: a head returns the same keys every iteration).
    * :meth:`forward_train` accepts ``gt_valid`` (from the ``HPUPadGT`` pipeline transform) and
      passes it to the head, which must accept it (the HPU heads do).
    """

    def forward_train(self, img, img_metas, gt_bboxes, gt_labels, gt_bboxes_ignore=None,
                      gt_valid=None):
        """Backbone, neck, head and loss.

        Args:
            img (Tensor): (B, 3, H, W) images.
            img_metas (list[dict]): Image meta information.
            gt_bboxes (list[Tensor] | Tensor): per-image (n_i, 4) boxes, or padded (B, G, 4).
            gt_labels (list[Tensor] | Tensor): per-image (n_i,) labels, or padded (B, G).
            gt_bboxes_ignore (list[Tensor] | None): passed to the head, as stock.
            gt_valid (Tensor | list[Tensor] | None): (B, 1, G) or (B, G) validity mask of
                padded ground truth.

        Returns:
            dict[str, Tensor | list[Tensor]]: Loss components.
        """
        # What SingleStageDetector.forward_train does first: record batch_input_shape.
        BaseDetector.forward_train(self, img, img_metas)
        x = self.extract_feat(img)
        kwargs = {}
        if gt_valid is not None:
            head = self.bbox_head
            if 'gt_valid' not in inspect.signature(head.forward_train).parameters:
                raise TypeError('gt_valid (padded ground truth from HPUPadGT) needs an HPU '
                                f'bbox_head (e.g. HPURetinaHead), got {type(head).__name__}')
            kwargs['gt_valid'] = gt_valid
        return self.bbox_head.forward_train(x, img_metas, gt_bboxes, gt_labels,
                                            gt_bboxes_ignore, **kwargs)

    def _parse_losses(self, losses: Dict) -> Tuple[torch.Tensor, 'OrderedDict[str, torch.Tensor]']:
        """See :func:`parse_losses_on_device`."""
        return parse_losses_on_device(losses)


@DETECTORS.register_module()
class HPUSingleStageDetector(StaticLossesMixin, SingleStageDetector):
    """Drop-in ``SingleStageDetector`` (e.g. SSD) with :class:`StaticLossesMixin`."""


@DETECTORS.register_module()
class HPURetinaNet(StaticLossesMixin, RetinaNet):
    """Drop-in ``RetinaNet`` with :class:`StaticLossesMixin`."""
