"""Whole training steps of FCOS / ATSS (mmdet's shipped configs, scaled down) with the HPU heads.

The detector is the package's ``HPUSingleStageDetector`` (``gt_valid`` to the head, logged
losses kept on the device), as in ``configs/fcos`` and ``configs/atss``.
"""
import os.path as osp

import mmcv
import mmdet
import numpy as np
import pytest
import torch
from mmdet.models import build_detector

import mmdet_hpu  # noqa: F401  (registers the HPU heads)
from mmdet_hpu.models.utils import gt_bucket, pad_gt_list
from mmdet_hpu.runner.host_reads import HostReadCounter

CONFIGS = {
    'fcos': 'fcos/fcos_center-normbbox-centeronreg-giou_r50_caffe_fpn_gn-head_1x_coco.py',
    'atss': 'atss/atss_r50_fpn_1x_coco.py',
}
HPU_HEADS = {'fcos': 'HPUFCOSHead', 'atss': 'HPUATSSHead'}
IMG = 64
MAX_NUM_GT = 128


def model_cfg(name):
    """The shipped config's model, scaled down (ResNet-18 at 8 base channels, 3 classes)."""
    cfg = mmcv.Config.fromfile(osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs',
                                        CONFIGS[name])).model
    cfg.backbone.update(depth=18, base_channels=8, init_cfg=None)
    cfg.neck.update(in_channels=[8, 16, 32, 64], out_channels=16)
    cfg.bbox_head.update(num_classes=3, in_channels=16, feat_channels=16, stacked_convs=1)
    cfg.bbox_head.norm_cfg = dict(type='GN', num_groups=4, requires_grad=True)
    return cfg


def build_pair(name):
    """Stock detector and the static one (HPU head type), same weights."""
    torch.manual_seed(0)
    stock = build_detector(model_cfg(name))
    cfg = model_cfg(name)
    cfg.bbox_head.type = HPU_HEADS[name]
    cfg.type = 'HPUSingleStageDetector'
    static = build_detector(cfg)
    static.load_state_dict(stock.state_dict(), strict=True)
    return stock, static


def metas(num_imgs):
    shape = (IMG, IMG, 3)
    return [dict(img_shape=shape, pad_shape=shape, ori_shape=shape, flip=False,
                 scale_factor=np.ones(4, dtype=np.float32)) for _ in range(num_imgs)]


def random_gt(counts, gen):
    boxes, labels = [], []
    for n in counts:
        xy = torch.rand(n, 2, generator=gen) * (IMG - 8)
        wh = torch.rand(n, 2, generator=gen) * (IMG - xy).clamp(min=4) + 2
        boxes.append(torch.cat([xy, (xy + wh).clamp(max=IMG)], 1))
        labels.append(torch.randint(0, 3, (n, ), generator=gen))
    return boxes, labels


def padded_batch(counts, seed):
    """Images, HPUPadGT-style padded ground truth (the batch's bucket) and the lists."""
    gen = torch.Generator().manual_seed(seed)
    img = torch.randn(len(counts), 3, IMG, IMG, generator=gen)
    boxes, labels = random_gt(counts, gen)
    rows = gt_bucket(max(counts), MAX_NUM_GT)
    padded = pad_gt_list(boxes, labels, MAX_NUM_GT, num_rows=rows)
    return img, padded, (boxes, labels)


@pytest.mark.parametrize('name', list(CONFIGS))
def test_training_step_equals_stock_and_never_reads_the_host(name):
    stock, static = build_pair(name)
    stock.train(), static.train()
    img, (boxes, labels, valid), (box_list, label_list) = padded_batch([3, 0], seed=1)
    expected, _ = stock._parse_losses(stock.forward_train(img, metas(2), box_list, label_list))
    static.forward_train(img, metas(2), boxes, labels, gt_valid=valid)  # warm the caches
    with HostReadCounter() as reads:
        loss, log_vars = static._parse_losses(
            static.forward_train(img, metas(2), boxes, labels, gt_valid=valid))
        loss.backward()
    assert reads.snapshot() == dict(scalar=0, bulk=0, dynamic=0)
    torch.testing.assert_close(loss.detach(), expected.detach(), rtol=1e-5, atol=1e-6)
    with HostReadCounter() as reads:
        stock._parse_losses(stock.forward_train(img, metas(2), box_list, label_list))
    assert reads.snapshot()['scalar'] > 0


@pytest.mark.parametrize('name', list(CONFIGS))
def test_simple_test_equals_stock(name):
    stock, static = build_pair(name)
    for model in (stock, static):
        model.eval()
        model.bbox_head.test_cfg.score_thr = 0.005  # a fresh head scores ~0.01
    img = torch.randn(2, 3, IMG, IMG, generator=torch.Generator().manual_seed(3))
    img_metas = metas(2)
    img_metas[1]['scale_factor'] = np.array([0.5, 0.5, 0.5, 0.5], dtype=np.float32)
    with torch.no_grad():
        expected = stock.simple_test(img, img_metas, rescale=True)
        actual = static.simple_test(img, img_metas, rescale=True)
    num_dets = 0
    for exp_img, act_img in zip(expected, actual):
        for exp, act in zip(exp_img, act_img):
            np.testing.assert_allclose(act, exp, rtol=1e-4, atol=1e-4)
            num_dets += len(exp)
    assert num_dets > 0
