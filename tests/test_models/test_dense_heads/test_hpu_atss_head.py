"""HPUATSSHead against stock ATSSHead: assignment, losses, gradients, static-ness."""

import mmcv
import pytest
import torch
from dense_head_cases import (
    IMG_H,
    IMG_W,
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
    featmap_sizes,
    img_metas,
    make_gt,
    random_head_outputs,
    reduce_mean_arguments,
    run_losses,
    varied_metas,
)

import mmdet_hpu  # noqa: F401  (registers HPUATSSHead)
from mmdet_hpu.models.utils import pad_gt_list

LOSS_KEYS = ('loss_cls', 'loss_bbox', 'loss_centerness')


def train_cfg(**overrides):
    cfg = dict(assigner=dict(type='ATSSAssigner', topk=9), allowed_border=-1, pos_weight=-1,
               debug=False)
    cfg.update(overrides)
    return mmcv.Config(cfg)


HEAD_CFG = dict(
    type='ATSSHead', num_classes=NUM_CLASSES, in_channels=8, feat_channels=8, stacked_convs=1,
    norm_cfg=None,
    anchor_generator=dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=4,
                          scales_per_octave=1, strides=list(STRIDES)),
    bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0],
                    target_stds=[0.1, 0.1, 0.2, 0.2]),
    loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
    loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
    loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
    train_cfg=train_cfg(),
    test_cfg=mmcv.Config(dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05,
                              nms=dict(type='nms', iou_threshold=0.6), max_per_img=100)))
VARIANTS = {
    'coco': {},
    'two_anchors_pos_weight': dict(
        anchor_generator=dict(type='AnchorGenerator', ratios=[0.5, 1.0], octave_base_scale=4,
                              scales_per_octave=1, strides=list(STRIDES)),
        train_cfg=train_cfg(pos_weight=2.0, assigner=dict(type='ATSSAssigner', topk=5)),
        loss_bbox=dict(type='IoULoss', loss_weight=1.0)),
}


def build_heads(variant='coco', **overrides):
    """Stock ATSSHead and HPUATSSHead with identical weights and config."""
    return build_head_pair(HEAD_CFG, VARIANTS[variant], 'HPUATSSHead', **overrides)


def stock_targets(stock, gt_bboxes, gt_labels, metas):
    anchor_list, valid_flag_list = stock.get_anchors(featmap_sizes(), metas, device='cpu')
    out = stock.get_targets(anchor_list, valid_flag_list, gt_bboxes, metas,
                            gt_labels_list=gt_labels, label_channels=NUM_CLASSES)
    _, labels, label_weights, bbox_targets, _, _, _ = out
    return torch.cat(labels, 1), torch.cat(label_weights, 1), torch.cat(bbox_targets, 1)


def assert_targets_equal_stock(stock, hpu, gt_bboxes, gt_labels, metas):
    exp_labels, exp_weights, exp_targets = stock_targets(stock, gt_bboxes, gt_labels, metas)
    boxes, labels, valid = pad_gt_list(gt_bboxes, gt_labels, 128)
    act_labels, act_weights, act_targets, positive = hpu.get_static_targets(
        featmap_sizes(), boxes, labels, valid, metas)
    assert torch.equal(act_labels, exp_labels)
    assert torch.equal(act_weights, exp_weights)
    assert torch.equal(positive, exp_labels < NUM_CLASSES)
    assert torch.equal(act_targets[positive], exp_targets[positive])
    return positive


@pytest.mark.parametrize('variant', list(VARIANTS))
@pytest.mark.parametrize('kind', SCENARIOS)
def test_static_assignment_equals_stock(kind, variant):
    stock, hpu = build_heads(variant)
    gt_bboxes, gt_labels = make_gt(kind, seed=SCENARIOS.index(kind))
    positive = assert_targets_equal_stock(stock, hpu, gt_bboxes, gt_labels,
                                          img_metas(len(gt_bboxes)))
    if kind not in ('zero', 'tiny'):  # tiny boxes rarely hold an anchor centre
        assert positive.any(), 'scenario has no positive anchor'


@pytest.mark.parametrize('kind', ['many', 'border', 'mixed'])
def test_anchors_outside_the_image_are_masked_like_stock(kind):
    # allowed_border=0 with a smaller img_shape than the padded canvas: stock drops the anchors
    # that cross the image border before assigning; here they are masked.
    stock, hpu = build_heads(train_cfg=train_cfg(allowed_border=0))
    gt_bboxes, gt_labels = make_gt(kind, seed=7)
    metas = img_metas(len(gt_bboxes), img_shape=(IMG_H - 8, IMG_W - 24, 3))
    gt_bboxes = [b.clamp(max=IMG_H - 8) for b in gt_bboxes]
    positive = assert_targets_equal_stock(stock, hpu, gt_bboxes, gt_labels, metas)
    assert positive.any()
    assert hpu._anchor_valid(featmap_sizes(), metas, 'cpu') is not None


def test_padding_rows_never_become_positive():
    _, hpu = build_heads()
    boxes = torch.tensor([[[10.0, 10.0, 60.0, 60.0], [0.0, 0.0, 128.0, 96.0]]])
    labels = torch.tensor([[1, 2]])
    valid = torch.tensor([[True, False]])
    point_labels, _, _, _ = hpu.get_static_targets(featmap_sizes(), boxes, labels, valid,
                                                   img_metas(1))
    assert set(point_labels.unique().tolist()) == {1, NUM_CLASSES}


@pytest.mark.parametrize('variant', list(VARIANTS))
@pytest.mark.parametrize('kind', SCENARIOS)
def test_loss_and_grad_equal_stock(kind, variant):
    stock, hpu = build_heads(variant)
    gt_bboxes, gt_labels = make_gt(kind, seed=10 + SCENARIOS.index(kind))
    num_imgs = len(gt_bboxes)
    outs = random_head_outputs(num_imgs, seed=2, num_priors=hpu.num_base_priors)
    expected, exp_grads = run_losses(stock, outs, gt_bboxes, gt_labels, num_imgs)
    actual, act_grads = run_losses(hpu, outs, gt_bboxes, gt_labels, num_imgs)
    assert_losses_close(expected, actual, LOSS_KEYS)
    for exp, act in zip(exp_grads, act_grads):
        exp = torch.zeros_like(act) if exp is None else exp
        torch.testing.assert_close(act, exp, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('as_lists', [False, True])
def test_loss_accepts_padded_gt(as_lists):
    stock, hpu = build_heads()
    assert_loss_accepts_padded_gt(stock, hpu, LOSS_KEYS, as_lists)


@pytest.mark.parametrize('padded', [False, True])
def test_loss_and_backward_have_no_host_sync_or_dynamic_op(padded):
    _, hpu = build_heads()
    assert_loss_is_static(hpu, padded)


def test_stock_loss_does_sync():
    stock, _ = build_heads()
    assert_stock_loss_syncs(stock)


@pytest.mark.slow
def test_loss_has_no_graph_break():
    _, hpu = build_heads()
    assert_loss_has_no_graph_break(hpu)


@pytest.mark.parametrize('option,value,match', [
    ('train_cfg', train_cfg(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5,
                                          neg_iou_thr=0.4)), 'ATSSAssigner'),
    ('train_cfg', train_cfg(assigner=dict(type='ATSSAssigner', topk=9, alpha=0.8)), 'alpha'),
    ('train_cfg', train_cfg(assigner=dict(type='ATSSAssigner', topk=9, ignore_iof_thr=0.5)),
     'ignore_iof_thr'),
    ('reg_decoded_bbox', False, 'reg_decoded_bbox'),
    ('loss_bbox', dict(type='SmoothL1Loss'), 'loss_bbox'),
    ('loss_cls', dict(type='QualityFocalLoss', use_sigmoid=True), 'loss_cls'),
])
def test_refuses_options_it_cannot_make_static(option, value, match):
    assert_refuses(HEAD_CFG, 'HPUATSSHead', option, value, match)


@pytest.mark.parametrize('variant', list(VARIANTS))
@pytest.mark.parametrize('rescale', [False, True])
@pytest.mark.parametrize('cls_mean,nms_pre', [(-2.0, 1000), (0.0, 1000), (0.0, 40)])
def test_get_bboxes_equal_stock(variant, rescale, cls_mean, nms_pre):
    stock, hpu = build_heads(variant)
    stock.eval(), hpu.eval()
    outs = random_head_outputs(3, seed=5, cls_mean=cls_mean, num_priors=hpu.num_base_priors)
    cfg = mmcv.Config(dict(HEAD_CFG['test_cfg'].to_dict(), nms_pre=nms_pre))
    num_dets = assert_detections_equal_stock(stock, hpu, outs, varied_metas(3), rescale, cfg)
    assert num_dets > 0


def test_pre_nms_inference_is_static():
    _, hpu = build_heads()
    outs = random_head_outputs(3, seed=6)
    assert_pre_nms_is_static(hpu, outs, varied_metas(3), hpu.test_cfg)


def test_normalisers_go_through_reduce_mean_as_device_tensors(monkeypatch):
    from mmdet_hpu.models.dense_heads import hpu_atss_head
    _, hpu = build_heads()
    seen = reduce_mean_arguments(monkeypatch, hpu_atss_head, hpu)
    assert len(seen) == 2  # num_total_samples and the centerness sum, as stock
    assert all(torch.is_tensor(t) and t.dim() == 0 for t in seen)
