"""YOLOv3 detector whose training step never syncs the host."""
from mmdet.models.builder import DETECTORS
from mmdet.models.detectors import YOLOV3
from mmdet.models.detectors.base import BaseDetector

from ..dense_heads import HPUYOLOV3Head
from .static_losses import StaticLossesMixin


@DETECTORS.register_module()
class HPUYOLOV3(StaticLossesMixin, YOLOV3):
    """Drop-in ``YOLOV3`` for HPU training.

    Two differences from stock, both needed for a sync-free training iteration:

    * :meth:`_parse_losses` returns ``log_vars`` as **detached device tensors**. Stock calls
      ``.item()`` on each (one D2H sync per loss) and, when distributed, all-reduces the number
      of log variables and every value on every iteration. Here nothing is reduced and nothing
      leaves the device: the runner's log buffer is expected to reduce (and ``.item()``) the
      values at the logging interval only. The keys are those of stock (``loss_cls``,
      ``loss_conf``, ``loss_xy``, ``loss_wh``, ``loss``); the length check across ranks is
      dropped (YOLOv3 always returns the same keys). ``train_step`` is inherited, so
      ``num_samples`` is still ``len(img_metas)``.
    * :meth:`forward_train` accepts ``gt_valid`` (from the ``HPUPadGT`` pipeline transform) and
      passes it to the head, which then treats ``gt_bboxes``/``gt_labels`` as padded.

    Args:
        Same as :class:`mmdet.models.detectors.YOLOV3`.
    """

    def forward_train(self, img, img_metas, gt_bboxes, gt_labels, gt_bboxes_ignore=None,
                      gt_valid=None):
        """Backbone, neck, head and loss.

        Args:
            img (Tensor): (B, 3, H, W) images.
            img_metas (list[dict]): Image meta information.
            gt_bboxes (list[Tensor] | Tensor): per-image (n_i, 4) boxes, or padded (B, G, 4).
            gt_labels (list[Tensor] | Tensor): per-image (n_i,) labels, or padded (B, G).
            gt_bboxes_ignore (None): Unused by YOLOv3.
            gt_valid (Tensor | list[Tensor] | None): (B, 1, G) (from HPUPadGT) or (B, G)
                validity mask of padded GT.

        Returns:
            dict[str, list[Tensor]]: Loss components, per level.
        """
        # What SingleStageDetector.forward_train does first: record batch_input_shape.
        BaseDetector.forward_train(self, img, img_metas)
        x = self.extract_feat(img)
        kwargs = {}
        if gt_valid is not None:
            if not isinstance(self.bbox_head, HPUYOLOV3Head):
                raise TypeError('gt_valid (padded ground truth from HPUPadGT) needs '
                                "bbox_head type='HPUYOLOV3Head', got "
                                f'{type(self.bbox_head).__name__}')
            kwargs['gt_valid'] = gt_valid
        return self.bbox_head.forward_train(x, img_metas, gt_bboxes, gt_labels,
                                            gt_bboxes_ignore, **kwargs)
