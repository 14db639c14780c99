"""HPUYOLOV3 built from a stock mmdet YOLOv3 config, against the stock detector."""
import os.path as osp

import mmcv
import mmdet
import numpy as np
import pytest
import torch
from mmdet.models import build_detector
from torch.utils._python_dispatch import TorchDispatchMode

import mmdet_hpu  # noqa: F401  (registers HPUYOLOV3 / HPUYOLOV3Head)
from mmdet_hpu.models import HPUYOLOV3, HPUYOLOV3Head
from mmdet_hpu.models.utils import pad_gt_list

CONFIG = osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', 'yolo',
                  'yolov3_mobilenetv2_320_300e_coco.py')
IMG_SIZE = 64
LOSS_KEYS = ['loss_cls', 'loss_conf', 'loss_xy', 'loss_wh', 'loss']


def stock_model_cfg():
    """The stock config's model dict, scaled down (narrow backbone, 3 classes, no download)."""
    model = mmcv.Config.fromfile(CONFIG).model
    model.backbone.widen_factor = 0.25
    model.backbone.init_cfg = None
    model.neck.in_channels = [80, 24, 8]
    model.neck.out_channels = [16, 16, 16]
    model.bbox_head.num_classes = 3
    model.bbox_head.in_channels = [16, 16, 16]
    model.bbox_head.out_channels = [16, 16, 16]
    return model


def build_pair(target_mode=None):
    """Stock YOLOV3 and HPUYOLOV3 (only the two type names changed) with the same weights."""
    torch.manual_seed(0)
    stock = build_detector(stock_model_cfg())
    hpu_cfg = stock_model_cfg()
    hpu_cfg.type = 'HPUYOLOV3'
    hpu_cfg.bbox_head.type = 'HPUYOLOV3Head'
    if target_mode is not None:
        hpu_cfg.bbox_head.target_mode = target_mode
    hpu = build_detector(hpu_cfg)
    hpu.load_state_dict(stock.state_dict(), strict=True)
    return stock, hpu


def batch(seed=0, num_imgs=2):
    gen = torch.Generator().manual_seed(seed)
    img = torch.randn(num_imgs, 3, IMG_SIZE, IMG_SIZE, generator=gen)
    shape = (IMG_SIZE, IMG_SIZE, 3)
    metas = [dict(img_shape=shape, pad_shape=shape, ori_shape=(96, 96, 3),
                  scale_factor=np.array([2 / 3] * 4, dtype=np.float32), flip=False)
             for _ in range(num_imgs)]
    gt_bboxes = [torch.tensor([[4.0, 6.0, 40.0, 50.0], [30.0, 20.0, 62.0, 36.0]]),
                 torch.zeros(0, 4), torch.tensor([[0.0, 0.0, 64.0, 64.0]])][:num_imgs]
    gt_labels = [torch.tensor([0, 2]), torch.zeros(0, dtype=torch.long),
                 torch.tensor([1])][:num_imgs]
    return dict(img=img, img_metas=metas, gt_bboxes=gt_bboxes, gt_labels=gt_labels)


def test_stock_config_builds_hpu_modules_and_loads_stock_weights():
    stock, hpu = build_pair()
    assert type(hpu) is HPUYOLOV3 and type(hpu.bbox_head) is HPUYOLOV3Head
    assert hpu.bbox_head.target_mode == 'device'
    assert list(hpu.state_dict()) == list(stock.state_dict())
    stock.load_state_dict(hpu.state_dict(), strict=True)


@pytest.mark.parametrize('target_mode', ['device', 'host'])
def test_train_step_equals_stock_with_device_log_vars(target_mode):
    stock, hpu = build_pair(target_mode)
    data = batch(num_imgs=3)
    expected = stock.train_step(data, None)
    actual = hpu.train_step(data, None)
    assert actual['num_samples'] == expected['num_samples'] == 3
    assert list(actual['log_vars']) == list(expected['log_vars']) == LOSS_KEYS
    for key, value in actual['log_vars'].items():
        assert isinstance(value, torch.Tensor) and value.dim() == 0
        assert not value.requires_grad
        assert value.item() == pytest.approx(expected['log_vars'][key], rel=1e-5)
    assert actual['loss'].requires_grad
    torch.testing.assert_close(actual['loss'], expected['loss'], rtol=1e-5, atol=1e-6)
    actual['loss'].backward()
    expected['loss'].backward()
    for (name, p_hpu), p_stock in zip(hpu.named_parameters(), stock.parameters()):
        torch.testing.assert_close(p_hpu.grad, p_stock.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_forward_train_passes_padded_gt_through():
    _, hpu = build_pair()
    data = batch(num_imgs=3)
    expected = hpu.forward_train(**data)
    boxes, labels, valid = pad_gt_list(data['gt_bboxes'], data['gt_labels'], 8)
    padded = dict(data, gt_bboxes=list(boxes), gt_labels=list(labels), gt_valid=valid)
    actual = hpu(return_loss=True, **padded)
    for key in expected:
        for exp, act in zip(expected[key], actual[key]):
            torch.testing.assert_close(act, exp, rtol=1e-5, atol=1e-6)


def test_padded_gt_needs_the_hpu_head():
    stock_head_cfg = stock_model_cfg()
    stock_head_cfg.type = 'HPUYOLOV3'
    model = build_detector(stock_head_cfg)
    data = batch()
    boxes, labels, valid = pad_gt_list(data['gt_bboxes'], data['gt_labels'], 4)
    with pytest.raises(TypeError, match='HPUYOLOV3Head'):
        model.forward_train(data['img'], data['img_metas'], boxes, labels, gt_valid=valid)


class ScalarSyncCounter(TorchDispatchMode):

    def __init__(self):
        super().__init__()
        self.syncs = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ in ('_local_scalar_dense', 'item', 'is_nonzero'):
            self.syncs += 1
        return func(*args, **(kwargs or {}))


def test_parse_losses_does_not_sync():
    stock, hpu = build_pair()
    losses = hpu.forward_train(**batch())
    counter = ScalarSyncCounter()
    with counter:
        hpu._parse_losses(losses)
    assert counter.syncs == 0
    with counter:  # the counter does see stock's .item() calls
        stock._parse_losses(losses)
    assert counter.syncs == len(LOSS_KEYS)


def test_parse_losses_rejects_non_tensors():
    _, hpu = build_pair()
    with pytest.raises(TypeError, match='loss_x'):
        hpu._parse_losses(dict(loss_x='oops'))


def calibrate_batch_norm(model, img):
    """Set BN running stats from one batch, so that untrained eval features do not vanish.

    Otherwise every prediction is (nearly) the bias, and equal scores make the order of tied
    detections (unspecified in both stock mmcv NMS and torchvision NMS) decide the comparison.
    """
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = 1.0
    model.train()
    with torch.no_grad():
        model.extract_feat(img)
    model.eval()


def test_simple_test_equals_stock():
    stock, hpu = build_pair()
    data = batch(seed=3)
    calibrate_batch_norm(stock, data['img'])
    hpu.load_state_dict(stock.state_dict(), strict=True)
    hpu.eval()
    with torch.no_grad():
        expected = stock.simple_test(data['img'], data['img_metas'], rescale=True)
        actual = hpu.simple_test(data['img'], data['img_metas'], rescale=True)
    assert len(actual) == len(expected) == 2
    num_dets = 0
    for exp_img, act_img in zip(expected, actual):
        assert len(act_img) == len(exp_img) == 3
        for exp_cls, act_cls in zip(exp_img, act_img):
            assert act_cls.shape == exp_cls.shape
            np.testing.assert_allclose(act_cls, exp_cls, rtol=1e-4, atol=1e-4)
            num_dets += len(act_cls)
    assert num_dets > 0
