"""HPURetinaNet / HPUSingleStageDetector built from mmdet's shipped RetinaNet config."""
import os.path as osp

import mmcv
import mmdet
import numpy as np
import pytest
import torch
from mmdet.models import build_detector

import mmdet_hpu  # noqa: F401  (registers the HPU detectors and heads)
from mmdet_hpu.models.detectors.static_losses import StaticLossesMixin
from mmdet_hpu.models.utils import bucket_gt_list
from mmdet_hpu.runner.host_reads import HostReadCounter

CONFIG = osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', 'retinanet',
                  'retinanet_r18_fpn_1x_coco.py')
IMG = 128
NUM_CLASSES = 3


def model_cfg(detector='RetinaNet', head='RetinaHead'):
    """The shipped config's model, scaled down (narrow ResNet-18, 3 classes, no download)."""
    model = mmcv.Config.fromfile(CONFIG).model
    model.type = detector
    # Three narrow stages (strides 4-16; FPN adds 32-128): small graphs to compile.
    model.backbone.update(base_channels=8, num_stages=3, out_indices=(0, 1, 2), strides=(1, 2, 2),
                          dilations=(1, 1, 1), init_cfg=None, frozen_stages=-1)
    model.neck.update(in_channels=[8, 16, 32], out_channels=8)
    model.bbox_head.update(type=head, num_classes=NUM_CLASSES, in_channels=8,
                           feat_channels=8, stacked_convs=1)
    return model


def build_pair(detector='HPURetinaNet'):
    torch.manual_seed(0)
    stock = build_detector(model_cfg())
    hpu = build_detector(model_cfg(detector, 'HPURetinaHead'))
    hpu.load_state_dict(stock.state_dict(), strict=True)
    return stock, hpu


def random_boxes(num, gen):
    wh = torch.rand(num, 2, generator=gen) * 60 + 2
    xy = torch.rand(num, 2, generator=gen) * (IMG - wh)
    return torch.cat([xy, xy + wh], dim=1)


def batch(seed=0, counts=(3, 0)):
    gen = torch.Generator().manual_seed(seed)
    img = torch.randn(len(counts), 3, IMG, IMG, generator=gen)
    shape = (IMG, IMG, 3)
    metas = [dict(img_shape=shape, pad_shape=shape, ori_shape=(2 * IMG, 2 * IMG, 3),
                  scale_factor=np.array([0.5] * 4, dtype=np.float32), flip=False)
             for _ in counts]
    boxes = [random_boxes(n, gen) for n in counts]
    labels = [torch.randint(0, NUM_CLASSES, (n,), generator=gen) for n in counts]
    return dict(img=img, img_metas=metas, gt_bboxes=boxes, gt_labels=labels)


def loss_and_log(model, data):
    model.train()
    loss, log_vars = model._parse_losses(model.forward_train(**data))
    return loss, log_vars


@pytest.mark.parametrize('detector', ['HPURetinaNet', 'HPUSingleStageDetector'])
def test_train_step_equals_stock_with_device_log_vars(detector):
    stock, hpu = build_pair(detector)
    assert isinstance(hpu, StaticLossesMixin)
    data = batch(counts=(5, 0, 17))
    expected_loss, expected_log = loss_and_log(stock, data)
    loss, log_vars = loss_and_log(hpu, batch(counts=(5, 0, 17)))
    assert list(log_vars) == list(expected_log)
    for key, value in log_vars.items():
        assert torch.is_tensor(value) and value.dim() == 0 and not value.requires_grad
        assert value.item() == pytest.approx(expected_log[key], rel=1e-5)
    expected_loss.backward()
    loss.backward()
    for (name, p_stock), p_hpu in zip(stock.named_parameters(), hpu.parameters()):
        torch.testing.assert_close(p_hpu.grad, p_stock.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_padded_gt_goes_to_the_head():
    _, hpu = build_pair()
    data = batch(counts=(4, 9))
    expected, _ = loss_and_log(hpu, data)
    boxes, labels, valid = bucket_gt_list(data['gt_bboxes'], data['gt_labels'], 128)
    padded = dict(data, gt_bboxes=boxes, gt_labels=labels, gt_valid=valid[:, None, :])
    actual, _ = loss_and_log(hpu, padded)
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=0)


def test_padded_gt_needs_an_hpu_head():
    stock_cfg = model_cfg('HPURetinaNet', 'RetinaHead')
    model = build_detector(stock_cfg)
    data = batch(counts=(2, 1))
    boxes, labels, valid = bucket_gt_list(data['gt_bboxes'], data['gt_labels'], 128)
    with pytest.raises(TypeError, match='HPU bbox_head'):
        model.forward_train(**dict(data, gt_bboxes=boxes, gt_labels=labels, gt_valid=valid))


def test_training_step_has_no_host_sync_or_dynamic_op():
    _, hpu = build_pair()
    data = batch(counts=(6, 0))
    boxes, labels, valid = bucket_gt_list(data['gt_bboxes'], data['gt_labels'], 128)
    padded = dict(data, gt_bboxes=boxes, gt_labels=labels, gt_valid=valid)
    loss_and_log(hpu, padded)[0].backward()  # warm the anchor caches
    with HostReadCounter() as reads:
        loss, _ = loss_and_log(hpu, padded)
        loss.backward()
    assert reads.snapshot() == dict(scalar=0, bulk=0, dynamic=0)


def test_simple_test_equals_stock():
    stock, hpu = build_pair()
    stock.eval()
    hpu.eval()
    data = batch(seed=3, counts=(0, 0))
    with torch.no_grad():
        expected = stock.simple_test(data['img'], data['img_metas'], rescale=True)
        actual = hpu.simple_test(data['img'], data['img_metas'], rescale=True)
    for exp, act in zip(expected, actual):
        for exp_cls, act_cls in zip(exp, act):
            assert exp_cls.shape == act_cls.shape
            exp_rows = sorted(map(tuple, exp_cls.tolist()), reverse=True)
            act_rows = sorted(map(tuple, act_cls.tolist()), reverse=True)
            np.testing.assert_allclose(act_rows, exp_rows, rtol=1e-4, atol=1e-4)
