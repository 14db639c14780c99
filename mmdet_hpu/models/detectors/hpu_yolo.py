"""YOLOv3 detector whose training step never syncs the host and compiles once per GT bucket."""
from typing import Callable, Optional, Tuple

import torch
from mmdet.core import bbox2result
from mmdet.models.builder import DETECTORS
from mmdet.models.detectors import YOLOV3
from mmdet.models.detectors.base import BaseDetector

from ..dense_heads import HPUYOLOV3Head
from ..utils.host_results import detections_to_host
from .static_losses import StaticLossesMixin


@DETECTORS.register_module()
class HPUYOLOV3(StaticLossesMixin, YOLOV3):
    """Drop-in ``YOLOV3`` for HPU training and inference.

    Differences from stock:

    * :meth:`_parse_losses` returns ``log_vars`` as **detached device tensors**. Stock calls
      ``.item()`` on each (one D2H sync per loss) and, when distributed, all-reduces the number
      of log variables and every value on every iteration. Here nothing is reduced and nothing
      leaves the device: the runner's log buffer is expected to reduce (and ``.item()``) the
      values at the logging interval only. The keys are those of stock (``loss_cls``,
      ``loss_conf``, ``loss_xy``, ``loss_wh``, ``loss``); the length check across ranks is
      dropped (YOLOv3 always returns the same keys). ``train_step`` is inherited, so
      ``num_samples`` is still ``len(img_metas)``.
    * :meth:`forward_train` accepts ``gt_valid`` (from the ``HPUPadGT`` pipeline transform) and
      batched ground truth (B, G, 4) / (B, G) / (B, G) (what the plugin's wrappers hand over,
      see :func:`mmdet_hpu.parallel.scatter.batch_gt`).
    * With an ``HPUYOLOV3Head`` in device target mode, the device work of a step is two
      functions of tensors and static values only: :meth:`train_graph` (backbone, neck, head,
      targets, losses) and :meth:`test_graph` (backbone, neck, head, post-processing to the
      fixed-size detections). Image metadata (file names, the ``batch_input_shape`` that
      ``BaseDetector.forward_train`` writes) never reaches them, so a graph compiler sees one
      input signature per (batch size, GT bucket); :meth:`compile_graphs` compiles exactly
      these two (``--compile``).
    * :meth:`simple_test` copies the detections of a batch to the host once.

    Args:
        Same as :class:`mmdet.models.detectors.YOLOV3`.
    """

    @property
    def padded_gt_max_num_gt(self) -> Optional[int]:
        """Largest GT bucket when the head takes batched, padded ground truth, else None.

        The wrappers' batch move pads stock per-image lists on the host when this is set.
        """
        head = self.bbox_head
        return head.max_num_gt if isinstance(head, HPUYOLOV3Head) else None

    def _static_head(self) -> bool:
        return isinstance(self.bbox_head, HPUYOLOV3Head) and self.bbox_head.target_mode == 'device'

    def compile_graphs(self, compiler: Callable[[Callable], Callable]) -> None:
        """Replace :meth:`train_graph` and :meth:`test_graph` by ``compiler(method)``.

        Args:
            compiler (callable): e.g. ``functools.partial(torch.compile, dynamic=False)``.
        """
        self.train_graph = compiler(self.train_graph)
        self.test_graph = compiler(self.test_graph)

    def forward_train(self, img, img_metas, gt_bboxes, gt_labels, gt_bboxes_ignore=None,
                      gt_valid=None):
        """Backbone, neck, head and loss.

        Args:
            img (Tensor): (B, 3, H, W) images.
            img_metas (list[dict]): Image meta information.
            gt_bboxes (list[Tensor] | Tensor): per-image (n_i, 4) boxes, or padded (B, G, 4).
            gt_labels (list[Tensor] | Tensor): per-image (n_i,) labels, or padded (B, G).
            gt_bboxes_ignore (None): Unused by YOLOv3.
            gt_valid (Tensor | list[Tensor] | None): (B, G) or (B, 1, G) validity mask of
                padded GT.

        Returns:
            dict[str, list[Tensor]]: Loss components, per level.
        """
        # What SingleStageDetector.forward_train does first: record batch_input_shape.
        BaseDetector.forward_train(self, img, img_metas)
        if gt_valid is not None and not isinstance(self.bbox_head, HPUYOLOV3Head):
            raise TypeError('gt_valid (padded ground truth from HPUPadGT) needs '
                            "bbox_head type='HPUYOLOV3Head', got "
                            f'{type(self.bbox_head).__name__}')
        if self._static_head():
            # Host-side shape logic only (lists are padded to their bucket), outside the graph.
            boxes, labels, valid = self.bbox_head.padded_gt(gt_bboxes, gt_labels, gt_valid,
                                                            img.device)
            return self.train_graph(img, boxes, labels, valid)
        kwargs = {} if gt_valid is None else dict(gt_valid=gt_valid)
        return self.bbox_head.forward_train(self.extract_feat(img), img_metas, gt_bboxes,
                                            gt_labels, gt_bboxes_ignore, **kwargs)

    def train_graph(self, img: torch.Tensor, gt_bboxes: torch.Tensor, gt_labels: torch.Tensor,
                    gt_valid: torch.Tensor) -> dict:
        """The device work of a training step: tensors in, loss tensors out.

        Args:
            img (Tensor): (B, 3, H, W).
            gt_bboxes (Tensor): (B, G, 4) padded boxes.
            gt_labels (Tensor): (B, G) long labels.
            gt_valid (Tensor): (B, G) bool.

        Returns:
            dict[str, list[Tensor]]: Loss components, per level.
        """
        pred_maps = self.bbox_head(self.extract_feat(img))[0]
        return self.bbox_head.loss_padded(pred_maps, gt_bboxes, gt_labels, gt_valid)

    def test_graph(self, img: torch.Tensor, scale_factors: Optional[torch.Tensor], params
                   ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The device work of inference: fixed-size detections of a batch.

        Args:
            img (Tensor): (B, 3, H, W).
            scale_factors (Tensor | None): (B, 1, 4) to map boxes to the original images.
            params (StaticTestParams): The test config as plain Python values.

        Returns:
            tuple[Tensor, Tensor, Tensor]: dets (B, M, 5), labels (B, M), num_dets (B,).
        """
        pred_maps = self.bbox_head(self.extract_feat(img))[0]
        return self.bbox_head.static_detections(pred_maps, scale_factors, params)

    def simple_test(self, img, img_metas, rescale=False):
        """Test without augmentation; one device-to-host copy for the whole batch.

        Args:
            img (Tensor): (B, 3, H, W).
            img_metas (list[dict]): Image meta information.
            rescale (bool): Map boxes back to the original image size.

        Returns:
            list[list[ndarray]]: per image, per class, (n, 5) boxes and scores, as stock.
        """
        if not isinstance(self.bbox_head, HPUYOLOV3Head):
            return super().simple_test(img, img_metas, rescale=rescale)
        head = self.bbox_head
        scale_factors = head._scale_factors(img_metas, img.device) if rescale else None
        return self._host_results(*self.test_graph(img, scale_factors, head.static_test_params()))

    def _host_results(self, dets, labels, num_dets):
        """mmdet's per-class numpy results, from one device-to-host copy of the batch."""
        return [bbox2result(boxes, lbls, self.bbox_head.num_classes)
                for boxes, lbls in detections_to_host(dets, labels, num_dets)]
