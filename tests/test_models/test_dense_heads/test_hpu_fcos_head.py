"""HPUFCOSHead against stock FCOSHead: targets, losses, gradients, detections, static-ness."""
import copy

import mmcv
import pytest
import torch
from dense_head_cases import (
    NUM_CLASSES,
    SCENARIOS,
    STRIDES,
    assert_detections_equal_stock,
    assert_loss_accepts_padded_gt,
    assert_loss_has_no_graph_break,
    assert_loss_is_static,
    assert_losses_close,
    assert_pre_nms_is_static,
    assert_refuses,
    assert_stock_loss_syncs,
    build_head_pair,
    count_nms_calls,
    featmap_sizes,
    img_metas,
    make_gt,
    random_head_outputs,
    reduce_mean_arguments,
    run_losses,
    varied_metas,
)
from mmdet.models.builder import build_head

import mmdet_hpu  # noqa: F401  (registers HPUFCOSHead)
from mmdet_hpu.errors import ConfigError
from mmdet_hpu.models.dense_heads.hpu_fcos_head import level_major
from mmdet_hpu.models.utils import pad_gt_list

LOSS_KEYS = ('loss_cls', 'loss_bbox', 'loss_centerness')
HEAD_CFG = dict(
    type='FCOSHead', num_classes=NUM_CLASSES, in_channels=8, feat_channels=8, stacked_convs=1,
    strides=STRIDES, regress_ranges=((-1, 32), (32, 64), (64, 1e8)),
    norm_cfg=None,
    loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
    loss_bbox=dict(type='IoULoss', loss_weight=1.0),
    loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
    test_cfg=mmcv.Config(dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05,
                              nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)))
VARIANTS = {
    'plain': {},
    'giou_center_norm': dict(center_sampling=True, center_sample_radius=1.5, norm_on_bbox=True,
                             centerness_on_reg=True,
                             loss_bbox=dict(type='GIoULoss', loss_weight=1.0)),
}


def build_heads(variant='plain', **overrides):
    """Stock FCOSHead and HPUFCOSHead with identical weights and config."""
    return build_head_pair(HEAD_CFG, VARIANTS[variant], 'HPUFCOSHead', **overrides)


def stock_targets(stock, gt_bboxes, gt_labels):
    points = stock.prior_generator.grid_priors(featmap_sizes(), dtype=torch.float32,
                                               device='cpu')
    labels, targets = stock.get_targets(points, gt_bboxes, gt_labels)
    return torch.cat(labels), torch.cat(targets)


@pytest.mark.parametrize('variant', list(VARIANTS))
@pytest.mark.parametrize('kind', SCENARIOS)
def test_static_targets_equal_stock(kind, variant):
    stock, hpu = build_heads(variant)
    gt_bboxes, gt_labels = make_gt(kind, seed=SCENARIOS.index(kind))
    exp_labels, exp_targets = stock_targets(stock, gt_bboxes, gt_labels)
    boxes, labels, valid = pad_gt_list(gt_bboxes, gt_labels, 128)
    act_labels, act_targets = hpu.get_static_targets(featmap_sizes(), boxes, labels, valid)
    num_points = act_labels.shape[1]
    # Stock's order is level-major: (level, image, point).
    sizes = [h * w for h, w in featmap_sizes()]
    assert act_labels.shape == (len(gt_bboxes), num_points)
    act_labels = level_major(act_labels, sizes)
    act_targets = level_major(act_targets, sizes)
    assert torch.equal(act_labels, exp_labels)
    positive = exp_labels < NUM_CLASSES
    assert torch.equal(act_targets[positive], exp_targets[positive])
    if kind != 'zero':
        assert positive.any(), 'scenario has no positive point'


def test_padding_rows_never_become_positive():
    _, hpu = build_heads()
    box = torch.tensor([[[10.0, 10.0, 60.0, 60.0], [0.0, 0.0, 128.0, 96.0]]])
    labels = torch.tensor([[1, 2]])
    valid = torch.tensor([[True, False]])
    point_labels, _ = hpu.get_static_targets(featmap_sizes(), box, labels, valid)
    assert set(point_labels.unique().tolist()) == {1, NUM_CLASSES}


def test_min_area_first_index_wins_ties():
    _, hpu = build_heads()
    box = torch.tensor([[20.0, 20.0, 52.0, 52.0]])
    boxes, labels, valid = pad_gt_list([torch.cat([box, box])], [torch.tensor([3, 1])], 8)
    point_labels, _ = hpu.get_static_targets(featmap_sizes(), boxes, labels, valid)
    assert (point_labels == 3).any() and not (point_labels == 1).any()


@pytest.mark.parametrize('variant', list(VARIANTS))
@pytest.mark.parametrize('kind', SCENARIOS)
def test_loss_and_grad_equal_stock(kind, variant):
    stock, hpu = build_heads(variant)
    gt_bboxes, gt_labels = make_gt(kind, seed=10 + SCENARIOS.index(kind))
    num_imgs = len(gt_bboxes)
    outs = random_head_outputs(num_imgs, seed=2)
    if VARIANTS[variant].get('norm_on_bbox'):
        outs[1][:] = [t.abs() for t in outs[1]]  # clamp(min=0) outputs in training
    else:
        outs[1][:] = [t.exp() for t in outs[1]]
    expected, exp_grads = run_losses(stock, outs, gt_bboxes, gt_labels, num_imgs)
    actual, act_grads = run_losses(hpu, outs, gt_bboxes, gt_labels, num_imgs)
    assert_losses_close(expected, actual, LOSS_KEYS)
    for exp, act in zip(exp_grads, act_grads):
        exp = torch.zeros_like(act) if exp is None else exp
        torch.testing.assert_close(act, exp, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('as_lists', [False, True])
def test_loss_accepts_padded_gt(as_lists):
    stock, hpu = build_heads('giou_center_norm')
    assert_loss_accepts_padded_gt(stock, hpu, LOSS_KEYS, as_lists)


@pytest.mark.parametrize('padded', [False, True])
def test_loss_and_backward_have_no_host_sync_or_dynamic_op(padded):
    _, hpu = build_heads('giou_center_norm')
    assert_loss_is_static(hpu, padded)


def test_stock_loss_does_sync():
    stock, _ = build_heads()
    assert_stock_loss_syncs(stock)


def test_loss_has_no_graph_break():
    _, hpu = build_heads('giou_center_norm')
    assert_loss_has_no_graph_break(hpu)


@pytest.mark.parametrize('option,value,match', [
    ('loss_cls', dict(type='CrossEntropyLoss', use_sigmoid=True), 'loss_cls'),
    ('loss_bbox', dict(type='L1Loss'), 'loss_bbox'),
    ('loss_centerness', dict(type='FocalLoss'), 'loss_centerness'),
    ('max_num_gt', 0, 'max_num_gt'),
])
def test_refuses_options_it_cannot_make_static(option, value, match):
    assert_refuses(HEAD_CFG, 'HPUFCOSHead', option, value, match)


def test_too_many_boxes_names_the_config_key():
    _, hpu = build_heads()
    hpu.max_num_gt = 8
    gt_bboxes, gt_labels = make_gt('many')
    outs = random_head_outputs(2, seed=0)
    with pytest.raises(ValueError, match='model.bbox_head.max_num_gt'):
        hpu.loss(*outs, gt_bboxes, gt_labels, img_metas(2))


@pytest.mark.parametrize('variant', list(VARIANTS))
@pytest.mark.parametrize('rescale', [False, True])
@pytest.mark.parametrize('cls_mean,nms_pre', [(-2.0, 1000), (0.0, 1000), (0.0, 40)])
def test_get_bboxes_equal_stock(variant, rescale, cls_mean, nms_pre):
    stock, hpu = build_heads(variant)
    stock.eval(), hpu.eval()
    outs = random_head_outputs(3, seed=5, cls_mean=cls_mean)
    outs[1][:] = [t.exp() * 8 for t in outs[1]]
    cfg = mmcv.Config(dict(HEAD_CFG['test_cfg'].to_dict(), nms_pre=nms_pre))
    num_dets = assert_detections_equal_stock(stock, hpu, outs, varied_metas(3), rescale, cfg)
    assert num_dets > 0


def test_pre_nms_inference_is_static_and_nms_is_called_once(monkeypatch):
    _, hpu = build_heads()
    outs = random_head_outputs(3, seed=6)
    assert_pre_nms_is_static(hpu, outs, varied_metas(3), hpu.test_cfg)
    ops, calls = count_nms_calls(monkeypatch)
    dets, labels, num_dets = hpu.get_bboxes_static(*outs, img_metas=varied_metas(3))
    # One fixed-shape NMS op for the batch; torchvision NMS runs only inside it.
    assert len(ops) == 1 and calls and all(calls)
    assert dets.shape == (3, 100, 5) and labels.shape == (3, 100) and num_dets.shape == (3, )


def test_pre_nms_inference_has_no_graph_break():
    torch._dynamo.reset()
    _, hpu = build_heads()
    outs = random_head_outputs(2, seed=17)
    img_shapes, scale_factors = hpu._image_tensors(varied_metas(2), 'cpu', True)
    explanation = torch._dynamo.explain(hpu.get_bboxes_pre_nms)(
        *outs, img_shapes, scale_factors, 0.05, 1000)
    assert explanation.graph_count >= 1
    assert explanation.graph_break_count == 0, explanation.break_reasons


def test_normalisers_go_through_reduce_mean_as_device_tensors(monkeypatch):
    from mmdet_hpu.models.dense_heads import hpu_fcos_head
    _, hpu = build_heads()
    seen = reduce_mean_arguments(monkeypatch, hpu_fcos_head, hpu)
    assert len(seen) == 2  # num_pos and the centerness sum, as stock
    assert all(torch.is_tensor(t) and t.dim() == 0 for t in seen)


def test_refuses_soft_nms_at_build_time():
    cfg = dict(copy.deepcopy(HEAD_CFG), type='HPUFCOSHead')
    cfg['test_cfg'] = mmcv.Config(dict(cfg['test_cfg'].to_dict(),
                                       nms=dict(type='soft_nms', iou_threshold=0.5)))
    with pytest.raises(ConfigError, match="test_cfg.nms.type='nms' only.*soft_nms"):
        build_head(cfg)
