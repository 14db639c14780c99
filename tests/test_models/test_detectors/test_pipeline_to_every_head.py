"""End to end for every static detector: ``HPUPadGT`` → collate → the wrapper's batch move → loss.

The wrapper hands the detector batch-shaped ground truth ((B, G, 4), (B, G), (B, G) bool); each
HPU head must take it and give the losses of its stock parent on the unpadded boxes.
"""
import mmcv
import numpy as np
import pytest
import torch
from mmcv.parallel import DataContainer, collate
from mmcv.utils import build_from_cfg
from mmdet.datasets.builder import PIPELINES
from mmdet.models import build_detector
from test_static_fcos_atss_step import model_cfg as fcos_atss_cfg
from test_static_losses import model_cfg as retina_cfg

from mmdet_hpu.parallel import HPUDataParallel

IMG = 128


def _ssd_cfg(detector, head):
    cfg = retina_cfg(detector, 'RetinaHead')
    cfg.bbox_head = mmcv.ConfigDict(
        type=head, num_classes=3, in_channels=(8,) * 5, stacked_convs=0, feat_channels=8,
        anchor_generator=dict(type='SSDAnchorGenerator', scale_major=False, input_size=IMG,
                              min_sizes=[10, 24, 40, 64, 96], max_sizes=[24, 40, 64, 96, 128],
                              strides=[4, 8, 16, 32, 64], ratios=[[2], [2, 3], [2, 3], [2], [2]]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0],
                        target_stds=[0.1, 0.1, 0.2, 0.2]))
    cfg.train_cfg = mmcv.ConfigDict(
        assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.,
                      ignore_iof_thr=-1, gt_max_assign_all=False),
        smoothl1_beta=1., allowed_border=-1, pos_weight=-1, neg_pos_ratio=3, debug=False)
    return cfg


def _fcos_atss(name):
    def build(detector, head):
        cfg = fcos_atss_cfg(name)
        cfg.type, cfg.bbox_head.type = detector, head
        return cfg
    return build


CASES = {
    'retinanet': (retina_cfg, 'RetinaNet', 'HPURetinaNet', 'RetinaHead', 'HPURetinaHead'),
    'ssd': (_ssd_cfg, 'SingleStageDetector', 'HPUSingleStageDetector', 'SSDHead',
            'HPUSSDHead'),
    'fcos': (_fcos_atss('fcos'), 'FCOS', 'HPUSingleStageDetector', 'FCOSHead', 'HPUFCOSHead'),
    'atss': (_fcos_atss('atss'), 'ATSS', 'HPUSingleStageDetector', 'ATSSHead', 'HPUATSSHead'),
}


def _samples(counts, rng):
    steps = [build_from_cfg(step, PIPELINES) for step in (
        dict(type='HPUPadGT', max_num_gt=128), dict(type='DefaultFormatBundle'),
        dict(type='Collect', keys=['img', 'gt_bboxes', 'gt_labels', 'gt_valid']))]
    samples = []
    for i, count in enumerate(counts):
        wh = rng.uniform(6, 60, (count, 2))
        xy = rng.uniform(0, 1, (count, 2)) * (IMG - wh)
        results = dict(img=rng.standard_normal((IMG, IMG, 3)).astype(np.float32),
                       img_shape=(IMG, IMG, 3), ori_shape=(IMG, IMG, 3),
                       pad_shape=(IMG, IMG, 3), scale_factor=np.ones(4, np.float32),
                       flip=False, flip_direction=None, filename=f'{i}.jpg',
                       ori_filename=f'{i}.jpg', batch_input_shape=(IMG, IMG),
                       img_norm_cfg=dict(mean=np.zeros(3), std=np.ones(3), to_rgb=False),
                       gt_bboxes=np.concatenate([xy, xy + wh], 1).astype(np.float32),
                       gt_labels=rng.integers(0, 3, count))
        for step in steps:
            results = step(results)
        samples.append(results)
    return samples


def _unpadded(samples):
    """The stock form of the same batch: per-image lists of the real boxes."""
    boxes, labels = [], []
    for sample in samples:
        num = int(sample['gt_valid'].data.sum())
        boxes.append(sample['gt_bboxes'].data[:num])
        labels.append(sample['gt_labels'].data[:num])
    img = torch.stack([sample['img'].data for sample in samples])
    metas = [sample['img_metas'].data for sample in samples]
    return dict(img=img, img_metas=metas, gt_bboxes=boxes, gt_labels=labels)


@pytest.mark.parametrize('name', list(CASES))
def test_wrapper_batched_gt_gives_stock_losses(name):
    build_cfg, stock_det, hpu_det, stock_head, hpu_head = CASES[name]
    torch.manual_seed(0)
    stock = build_detector(build_cfg(stock_det, stock_head))
    hpu = build_detector(build_cfg(hpu_det, hpu_head))
    hpu.load_state_dict(stock.state_dict(), strict=True)
    samples = _samples([5, 0, 17], np.random.default_rng(0))
    batch = collate(samples, samples_per_gpu=len(samples))
    assert isinstance(batch['gt_valid'], DataContainer)

    wrapped = HPUDataParallel(hpu, device='cpu')
    received = {}
    hook = hpu.register_forward_pre_hook(
        lambda module, args, kwargs: received.update(kwargs), with_kwargs=True)
    outputs = wrapped.train_step(batch, None)
    hook.remove()
    assert received['gt_bboxes'].shape == (3, 32, 4) and received['gt_valid'].shape == (3, 32)

    expected = stock.train_step(_unpadded(samples), None)
    for key, value in expected['log_vars'].items():
        np.testing.assert_allclose(float(outputs['log_vars'][key]), value, rtol=1e-5,
                                   atol=1e-7, err_msg=f'{name}: {key}')
