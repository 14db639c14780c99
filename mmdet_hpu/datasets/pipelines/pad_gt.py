"""Pipeline transform that pads ground truth to a power-of-two bucket of boxes."""
import numpy as np
import torch
from mmcv.parallel import DataContainer
from mmdet.datasets.builder import PIPELINES

from mmdet_hpu.models.utils.gt_padding import gt_bucket


@PIPELINES.register_module()
class HPUPadGT:
    """Pad ``gt_bboxes``/``gt_labels`` to a power-of-two bucket of rows and add a ``gt_valid`` mask.

    Each image is padded to ``gt_bucket(n, max_num_gt)`` rows: the next power of two >= 8 holding
    its n boxes, capped at ``max_num_gt`` (8, 16, 32, 64 or 128 with the default). ``gt_valid`` is
    a ``DataContainer(stack=True, pad_dims=1)`` holding a (1, G_i) bool tensor (mmcv's collate
    pads only tensors with more dimensions than ``pad_dims``), so collate pads it with False to
    the batch's largest bucket G and stacks it into (B, 1, G). The plugin's wrappers
    (``HPUDataParallel`` / ``HPUDistributedDataParallel``) then stack the batch on the host, before
    moving it (:func:`mmdet_hpu.parallel.scatter.batch_gt`: G from that shape, no read of the
    data): the detector receives ``gt_bboxes`` (B, G, 4), ``gt_labels`` (B, G) and ``gt_valid``
    (B, G). A batch thus has one of at most 5 ground-truth shapes and the target cost follows its
    most crowded image instead of always paying for ``max_num_gt`` rows. Padding rows are zero
    boxes with label 0 and ``gt_valid`` False; real boxes keep their order and come first.

    Place it **last before** ``DefaultFormatBundle``, after every transform that moves, adds or
    drops boxes (flip, affine, crop, ``FilterAnnotations`` ...). ``DefaultFormatBundle`` then turns
    the padded ``gt_bboxes`` (G_i, 4) and ``gt_labels`` (G_i,) into tensors as usual (collated into
    lists of B tensors). ``gt_valid`` must be listed in ``Collect`` so that it reaches
    ``HPUYOLOV3.forward_train``::

        train_pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(type='Resize', img_scale=(416, 416), keep_ratio=True),
            dict(type='RandomFlip', flip_ratio=0.5),
            dict(type='Normalize', **img_norm_cfg),
            dict(type='Pad', size=(416, 416)),
            dict(type='HPUPadGT', max_num_gt=128),
            dict(type='DefaultFormatBundle'),
            dict(type='Collect', keys=['img', 'gt_bboxes', 'gt_labels', 'gt_valid']),
        ]

    Images with more than ``max_num_gt`` boxes raise a ``ValueError`` (nothing is dropped
    silently): raise ``max_num_gt`` of this transform.

    Args:
        max_num_gt (int): The most boxes an image may have, and the largest bucket.
            Default: 128.
    """

    def __init__(self, max_num_gt: int = 128):
        if not isinstance(max_num_gt, int) or isinstance(max_num_gt, bool) or max_num_gt < 1:
            raise ValueError(f'max_num_gt must be a positive int, got {max_num_gt!r}')
        self.max_num_gt = max_num_gt

    def __call__(self, results: dict) -> dict:
        """Pad the ground truth of one sample.

        Args:
            results (dict): Pipeline results with ``gt_bboxes`` (n, 4) and ``gt_labels`` (n,)
                numpy arrays.

        Returns:
            dict: ``results`` with ``gt_bboxes`` (G, 4) float32, ``gt_labels`` (G,) int64 and
            ``gt_valid`` (a ``DataContainer`` holding a (1, G) bool tensor), G =
            ``gt_bucket(n, max_num_gt)``.

        Raises:
            KeyError: If ``gt_bboxes`` or ``gt_labels`` is missing.
            ValueError: If the image has more than ``max_num_gt`` boxes.
        """
        bboxes = np.asarray(results['gt_bboxes'], dtype=np.float32).reshape(-1, 4)
        labels = np.asarray(results['gt_labels'], dtype=np.int64).reshape(-1)
        num_gt = bboxes.shape[0]
        if labels.shape[0] != num_gt:
            raise ValueError(f'{num_gt} gt_bboxes but {labels.shape[0]} gt_labels')
        if num_gt > self.max_num_gt:
            raise ValueError(
                f'an image has {num_gt} ground-truth boxes but max_num_gt={self.max_num_gt}; '
                f'raise max_num_gt of the HPUPadGT transform in the train pipeline to at least '
                f'{num_gt} (boxes are never silently dropped)')
        num_rows = gt_bucket(num_gt, self.max_num_gt)
        padded_bboxes = np.zeros((num_rows, 4), dtype=np.float32)
        padded_bboxes[:num_gt] = bboxes
        padded_labels = np.zeros((num_rows, ), dtype=np.int64)
        padded_labels[:num_gt] = labels
        valid = (torch.arange(num_rows) < num_gt)[None]
        results['gt_bboxes'] = padded_bboxes
        results['gt_labels'] = padded_labels
        results['gt_valid'] = DataContainer(valid, stack=True, padding_value=0, pad_dims=1)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(max_num_gt={self.max_num_gt})'
