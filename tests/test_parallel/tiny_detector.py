"""A scaled-down YOLOv3 (MobileNetV2 x0.25, 16-channel neck) and 64 px batches for tests."""
import logging

import numpy as np
import torch
from mmcv import ConfigDict
from mmcv.parallel import DataContainer as DC
from mmcv.parallel import collate

NUM_CLASSES = 3
IMG_SIZE = 64


def tiny_yolov3_cfg(num_classes=NUM_CLASSES):
    """Model config of mmdet's ``yolov3_mobilenetv2`` shrunk to ~0.3 M parameters."""
    return ConfigDict(
        type='YOLOV3',
        backbone=dict(type='MobileNetV2', widen_factor=0.25, out_indices=(2, 4, 6),
                      act_cfg=dict(type='LeakyReLU', negative_slope=0.1)),
        neck=dict(type='YOLOV3Neck', num_scales=3, in_channels=[80, 24, 8],
                  out_channels=[16, 16, 16]),
        bbox_head=dict(
            type='YOLOV3Head', num_classes=num_classes, in_channels=[16, 16, 16],
            out_channels=[16, 16, 16],
            anchor_generator=dict(type='YOLOAnchorGenerator',
                                  base_sizes=[[(40, 40), (50, 30), (30, 50)],
                                              [(20, 20), (24, 14), (14, 24)],
                                              [(8, 8), (10, 6), (6, 10)]],
                                  strides=[32, 16, 8]),
            bbox_coder=dict(type='YOLOBBoxCoder'), featmap_strides=[32, 16, 8],
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, reduction='sum'),
            loss_conf=dict(type='CrossEntropyLoss', use_sigmoid=True, reduction='sum'),
            loss_xy=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=2.0,
                         reduction='sum'),
            loss_wh=dict(type='MSELoss', loss_weight=2.0, reduction='sum')),
        train_cfg=dict(assigner=dict(type='GridAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5,
                                     min_pos_iou=0)),
        test_cfg=dict(nms_pre=100, min_bbox_size=0, score_thr=0.05, conf_thr=0.005,
                      nms=dict(type='nms', iou_threshold=0.45), max_per_img=10))


def build_tiny_detector(seed=0):
    from mmdet.models import build_detector

    torch.manual_seed(seed)
    model = build_detector(tiny_yolov3_cfg())
    mmcv_logger = logging.getLogger('mmcv')
    level = mmcv_logger.level
    mmcv_logger.setLevel(logging.WARNING)  # init_weights logs every parameter
    try:
        model.init_weights()
    finally:
        mmcv_logger.setLevel(level)
    return model


def _img_meta():
    shape = (IMG_SIZE, IMG_SIZE, 3)
    return dict(filename='synthetic.png', ori_shape=shape, img_shape=shape, pad_shape=shape,
                scale_factor=np.ones(4, dtype=np.float32), flip=False,
                img_norm_cfg=dict(mean=np.zeros(3), std=np.ones(3), to_rgb=False))


def train_batch(batch_size=2, seed=0):
    """A collated batch as the mmdet train pipeline + DataLoader produce it.

    Returns:
        dict: ``img`` DC of (B, 3, 64, 64), ``img_metas`` cpu-only DC, ``gt_bboxes``
        DC of list[(n_i, 4)], ``gt_labels`` DC of list[(n_i,)].
    """
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(batch_size):
        n = i + 1
        xy = torch.rand(n, 2, generator=gen) * 30
        wh = 8 + torch.rand(n, 2, generator=gen) * 25
        samples.append(dict(
            img=DC(torch.randn(3, IMG_SIZE, IMG_SIZE, generator=gen), stack=True),
            img_metas=DC(_img_meta(), cpu_only=True),
            gt_bboxes=DC(torch.cat([xy, xy + wh], dim=1)),
            gt_labels=DC(torch.randint(0, NUM_CLASSES, (n, ), generator=gen))))
    return collate(samples, samples_per_gpu=batch_size)


def eval_batch(seed=0):
    """A collated single-image test batch (``img``/``img_metas`` are lists over augmentations)."""
    gen = torch.Generator().manual_seed(seed)
    sample = dict(img=[torch.randn(3, IMG_SIZE, IMG_SIZE, generator=gen)],
                  img_metas=[DC(_img_meta(), cpu_only=True)])
    return collate([sample], samples_per_gpu=1)
