"""HPUYOLOV3Head against stock YOLOV3Head: targets, losses, gradients, detections, static-ness."""
import copy

import mmcv
import numpy as np
import pytest
import torch
import torchvision
from mmdet.models.builder import build_head
from torch.utils._python_dispatch import TorchDispatchMode

import mmdet_hpu  # noqa: F401  (registers HPUYOLOV3Head)
from mmdet_hpu.models.utils import (
    batched_nms_fixed,
    gather_anchor_preds,
    gather_objectness_and_anchors,
    gt_bucket,
    pad_gt_list,
    stack_padded_gt,
)

IMG_H, IMG_W = 64, 96
NUM_CLASSES = 4
STRIDES = (32, 16, 8)

HEAD_CFG = dict(
    type='YOLOV3Head',
    num_classes=NUM_CLASSES,
    in_channels=[8, 8, 8],
    out_channels=[8, 8, 8],
    loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0, reduction='sum'),
    loss_conf=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0, reduction='sum'),
    loss_xy=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=2.0, reduction='sum'),
    loss_wh=dict(type='MSELoss', loss_weight=2.0, reduction='sum'),
    train_cfg=mmcv.Config(dict(
        assigner=dict(type='GridAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0))),
    test_cfg=mmcv.Config(dict(
        nms_pre=1000, min_bbox_size=0, score_thr=0.05, conf_thr=0.005,
        nms=dict(type='nms', iou_threshold=0.45), max_per_img=100)))


def make_test_cfg():
    return mmcv.Config(HEAD_CFG['test_cfg'].to_dict())
LOSS_KEYS = ('loss_cls', 'loss_conf', 'loss_xy', 'loss_wh')


def build_heads(target_mode='device', **overrides):
    """Stock head and HPU head with identical weights and config."""
    stock_cfg = copy.deepcopy(HEAD_CFG)
    stock_cfg.update(overrides)
    hpu_cfg = copy.deepcopy(stock_cfg)
    hpu_cfg.update(type='HPUYOLOV3Head', target_mode=target_mode, max_num_gt=64)
    stock, hpu = build_head(stock_cfg), build_head(hpu_cfg)
    hpu.load_state_dict(stock.state_dict(), strict=True)
    return stock, hpu


def random_pred_maps(num_imgs, seed, obj_mean=0.0, size=(IMG_H, IMG_W)):
    gen = torch.Generator().manual_seed(seed)
    maps = []
    for stride in STRIDES:
        pred = torch.randn(num_imgs, 3, 5 + NUM_CLASSES, size[0] // stride, size[1] // stride,
                           generator=gen)
        pred[:, :, 4] += obj_mean
        maps.append(pred.reshape(num_imgs, 3 * (5 + NUM_CLASSES), *pred.shape[-2:]))
    return maps


def random_boxes(num, gen, min_size=4.0, max_size=60.0):
    wh = torch.rand(num, 2, generator=gen) * (max_size - min_size) + min_size
    wh = torch.minimum(wh, torch.tensor([IMG_W - 1.0, IMG_H - 1.0]))
    x1 = torch.rand(num, generator=gen) * (IMG_W - wh[:, 0])
    y1 = torch.rand(num, generator=gen) * (IMG_H - wh[:, 1])
    return torch.stack([x1, y1, x1 + wh[:, 0], y1 + wh[:, 1]], dim=1)


def border_boxes():
    return torch.tensor([[0.0, 0.0, IMG_W, IMG_H],
                         [0.0, 0.0, 10.0, 12.0],
                         [IMG_W - 7.0, IMG_H - 9.0, IMG_W, IMG_H],
                         [0.0, IMG_H - 30.0, 25.0, IMG_H],
                         [IMG_W - 40.0, 0.0, IMG_W, 5.0]])


def make_gt(kind, seed=0):
    """Per-image (boxes, labels) lists for one named scenario."""
    gen = torch.Generator().manual_seed(seed)
    if kind == 'zero':
        boxes = [torch.zeros(0, 4), torch.zeros(0, 4)]
    elif kind == 'one':
        boxes = [random_boxes(1, gen), random_boxes(1, gen)]
    elif kind == 'many':
        boxes = [random_boxes(40, gen), random_boxes(30, gen)]
    elif kind == 'border':
        boxes = [border_boxes(), border_boxes()[[2, 0]]]
    elif kind == 'tiny':
        boxes = [random_boxes(12, gen, 0.3, 2.5), random_boxes(5, gen, 0.3, 2.5)]
    elif kind == 'mixed':
        boxes = [torch.zeros(0, 4), random_boxes(3, gen), random_boxes(17, gen), border_boxes()]
    elif kind == 'outside':
        # Centre left of the image (stock's index-put wraps the negative cell index) and a
        # zero-width box on the right edge (its cell index spills into the next row).
        boxes = [torch.tensor([[-40.0, 0.0, -8.0, 20.0], [IMG_W, 0.0, IMG_W, 10.0]]),
                 random_boxes(2, gen)]
    elif kind == 'duplicates':
        # Identical boxes with different labels: the stock loop lets the last GT win ties.
        box = random_boxes(1, gen)
        boxes = [torch.cat([box, box, random_boxes(2, gen), box]), box.clone()]
    else:
        raise KeyError(kind)
    labels = [torch.randint(0, NUM_CLASSES, (len(b),), generator=gen) for b in boxes]
    return boxes, labels


def img_metas(num_imgs, scale_factor=(1.0, 1.0, 1.0, 1.0)):
    shape = (IMG_H, IMG_W, 3)
    return [dict(img_shape=shape, pad_shape=shape, ori_shape=shape, batch_input_shape=shape[:2],
                 scale_factor=np.array(scale_factor, dtype=np.float32))
            for _ in range(num_imgs)]


def stock_targets(stock, pred_maps, gt_bboxes, gt_labels):
    featmap_sizes = [p.shape[-2:] for p in pred_maps]
    anchors = stock.prior_generator.grid_priors(featmap_sizes, device='cpu')
    flags = [stock.prior_generator.responsible_flags(featmap_sizes, b, 'cpu') for b in gt_bboxes]
    return stock.get_targets([anchors] * len(gt_bboxes), flags, gt_bboxes, gt_labels)


def assert_losses_close(expected, actual):
    assert set(actual) == set(expected) == set(LOSS_KEYS)
    for key in LOSS_KEYS:
        assert len(actual[key]) == len(expected[key]) == len(STRIDES)
        for exp, act in zip(expected[key], actual[key]):
            torch.testing.assert_close(act, exp, rtol=1e-5, atol=1e-6, msg=key)


SCENARIOS = ['zero', 'one', 'many', 'border', 'tiny', 'mixed', 'outside', 'duplicates']


def assert_static_targets_equal_stock(stock, hpu, gt_bboxes, gt_labels):
    """Assert the head's static targets are bitwise stock's; return the target maps."""
    pred_maps = random_pred_maps(len(gt_bboxes), seed=1)
    expected_targets, expected_negs = stock_targets(stock, pred_maps, gt_bboxes, gt_labels)
    boxes, labels, valid = pad_gt_list(gt_bboxes, gt_labels, hpu.max_num_gt)
    targets, negs = hpu.get_static_targets([p.shape[-2:] for p in pred_maps], boxes, labels,
                                           valid)
    for exp, act in zip(expected_targets, targets):
        torch.testing.assert_close(act, exp, rtol=0, atol=0)
    for exp, act in zip(expected_negs, negs):
        assert act.dtype == exp.dtype
        assert torch.equal(act, exp)
    return targets


@pytest.mark.parametrize('kind', SCENARIOS)
def test_static_targets_equal_stock_exactly(kind):
    stock, hpu = build_heads()
    gt_bboxes, gt_labels = make_gt(kind, seed=SCENARIOS.index(kind))
    targets = assert_static_targets_equal_stock(stock, hpu, gt_bboxes, gt_labels)
    if kind != 'zero':
        assert sum(t[..., 4].sum() for t in targets) > 0, 'scenario has no positive anchor'


@pytest.mark.parametrize('assigner', [
    dict(pos_iou_thr=0.5, neg_iou_thr=(0.1, 0.4), min_pos_iou=0.05),
    dict(pos_iou_thr=0.3, neg_iou_thr=0.3, min_pos_iou=0, gt_max_assign_all=False),
])
@pytest.mark.parametrize('kind', ['zero', 'many', 'duplicates'])
def test_static_targets_equal_stock_for_other_assigner_settings(kind, assigner):
    train_cfg = mmcv.Config(dict(assigner=dict(type='GridAssigner', **assigner)))
    stock, hpu = build_heads(train_cfg=train_cfg, one_hot_smoother=0.1)
    gt_bboxes, gt_labels = make_gt(kind, seed=20)
    assert_static_targets_equal_stock(stock, hpu, gt_bboxes, gt_labels)


def test_duplicate_gt_last_one_wins():
    _, hpu = build_heads()
    box = torch.tensor([[20.0, 10.0, 60.0, 50.0]])
    boxes, labels, valid = pad_gt_list([torch.cat([box, box])], [torch.tensor([1, 3])], 8)
    targets, _ = hpu.get_static_targets([(2, 3), (4, 6), (8, 12)], boxes, labels, valid)
    target = torch.cat(targets, dim=1)[0]
    positive = target[:, 4] > 0
    assert positive.any()
    assert (target[positive, 5:].argmax(-1) == 3).all()


@pytest.mark.parametrize('target_mode', ['device', 'host'])
@pytest.mark.parametrize('kind', SCENARIOS)
def test_loss_and_grad_equal_stock(kind, target_mode):
    stock, hpu = build_heads(target_mode)
    gt_bboxes, gt_labels = make_gt(kind, seed=10 + SCENARIOS.index(kind))
    metas = img_metas(len(gt_bboxes))
    base = random_pred_maps(len(gt_bboxes), seed=2)
    stock_maps = [p.clone().requires_grad_() for p in base]
    hpu_maps = [p.clone().requires_grad_() for p in base]
    expected = stock.loss(stock_maps, gt_bboxes, gt_labels, metas)
    actual = hpu.loss(hpu_maps, gt_bboxes, gt_labels, metas)
    assert_losses_close(expected, actual)
    sum(sum(v) for v in expected.values()).backward()
    sum(sum(v) for v in actual.values()).backward()
    for exp, act in zip(stock_maps, hpu_maps):
        torch.testing.assert_close(act.grad, exp.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('target_mode', ['device', 'host'])
def test_loss_accepts_padded_gt(target_mode):
    stock, hpu = build_heads(target_mode)
    gt_bboxes, gt_labels = make_gt('mixed', seed=3)
    metas = img_metas(len(gt_bboxes))
    pred_maps = random_pred_maps(len(gt_bboxes), seed=4)
    expected = stock.loss(pred_maps, gt_bboxes, gt_labels, metas)
    boxes, labels, valid = pad_gt_list(gt_bboxes, gt_labels, 24)
    # Stacked tensors, and lists of padded tensors as DefaultFormatBundle + collate deliver.
    assert_losses_close(expected, hpu.loss(pred_maps, boxes, labels, metas, gt_valid=valid))
    assert_losses_close(expected, hpu.loss(pred_maps, list(boxes), list(labels), metas,
                                           gt_valid=valid.to(torch.uint8)))


@pytest.mark.parametrize('target_mode', ['device', 'host'])
def test_loss_accepts_per_image_buckets(target_mode):
    # What HPUPadGT + DefaultFormatBundle + collate deliver: per-image buckets of rows and a
    # (B, 1, G) mask padded to the largest bucket.
    stock, hpu = build_heads(target_mode)
    gt_bboxes, gt_labels = make_gt('mixed', seed=3)  # 0, 3, 17 and 5 boxes
    metas = img_metas(len(gt_bboxes))
    pred_maps = random_pred_maps(len(gt_bboxes), seed=4)
    expected = stock.loss(pred_maps, gt_bboxes, gt_labels, metas)
    buckets = [gt_bucket(len(b), 64) for b in gt_bboxes]
    assert buckets == [8, 8, 32, 8]
    boxes = [pad_gt_list([b], [lbl], 64, num_rows=g)[0][0]
             for b, lbl, g in zip(gt_bboxes, gt_labels, buckets)]
    labels = [pad_gt_list([b], [lbl], 64, num_rows=g)[1][0]
              for b, lbl, g in zip(gt_bboxes, gt_labels, buckets)]
    valid = pad_gt_list(gt_bboxes, gt_labels, 64, num_rows=32)[2][:, None]
    assert_losses_close(expected, hpu.loss(pred_maps, boxes, labels, metas, gt_valid=valid))


@pytest.mark.parametrize('counts,rows', [([0, 0], 8), ([3, 8], 8), ([3, 9], 16),
                                         ([17, 1], 32), ([40, 64], 64), ([65, 0], 128)])
def test_list_gt_is_padded_to_the_bucket_of_the_largest_image(counts, rows):
    _, hpu = build_heads()
    hpu.max_num_gt = 128
    gen = torch.Generator().manual_seed(sum(counts))
    gt_bboxes = [random_boxes(n, gen) for n in counts]
    gt_labels = [torch.zeros(n, dtype=torch.long) for n in counts]
    boxes, labels, valid = hpu.padded_gt(gt_bboxes, gt_labels, None, 'cpu')
    assert boxes.shape == (2, rows, 4) and labels.shape == valid.shape == (2, rows)
    assert valid.sum(1).tolist() == counts


def test_list_gt_bucket_is_capped_at_max_num_gt():
    _, hpu = build_heads()  # max_num_gt=64
    gt_bboxes, gt_labels = make_gt('many')  # 40 and 30 boxes
    boxes, _, _ = hpu.padded_gt(gt_bboxes, gt_labels, None, 'cpu')
    assert boxes.shape[1] == 64
    hpu.max_num_gt = 48
    boxes, _, _ = hpu.padded_gt(gt_bboxes, gt_labels, None, 'cpu')
    assert boxes.shape[1] == 48


def test_stack_padded_gt_pads_lists_to_the_mask_width():
    boxes, labels, valid = stack_padded_gt(
        [torch.ones(8, 4), torch.ones(16, 4)], [torch.ones(8), torch.ones(16)],
        torch.ones(2, 1, 16, dtype=torch.bool))
    assert boxes.shape == (2, 16, 4) and labels.shape == valid.shape == (2, 16)
    assert (boxes[0, 8:] == 0).all() and (labels[0, 8:] == 0).all()
    with pytest.raises(ValueError, match='cannot pad'):
        stack_padded_gt([torch.ones(16, 4)], [torch.ones(16)], torch.ones(1, 1, 8))


def test_loss_without_positives_differs_from_loss_with_them():
    # Guards against a comparison that would pass for any targets.
    _, hpu = build_heads()
    pred_maps = random_pred_maps(2, seed=5)
    metas = img_metas(2)
    empty = hpu.loss(pred_maps, *make_gt('zero'), metas)
    full = hpu.loss(pred_maps, *make_gt('many'), metas)
    assert sum(empty['loss_xy']) == 0
    assert sum(full['loss_xy']) > 0
    assert not torch.allclose(sum(empty['loss_conf']), sum(full['loss_conf']))


def test_forward_train_host_mode_calls_mark_step(monkeypatch):
    from mmdet_hpu import device

    calls = []
    monkeypatch.setattr(device, 'mark_step', lambda: calls.append(1))
    for mode, expected_calls in (('device', 0), ('host', 1)):
        calls.clear()
        _, hpu = build_heads(mode)
        feats = [torch.randn(2, 8, IMG_H // s, IMG_W // s) for s in STRIDES]
        losses = hpu.forward_train(feats, img_metas(2), *make_gt('one'))
        assert set(losses) == set(LOSS_KEYS)
        assert len(calls) == expected_calls


# ----------------------------------------------------------------------------- bad inputs
def test_invalid_target_mode():
    with pytest.raises(ValueError, match="'device', 'host'"):
        build_heads('cuda')


@pytest.mark.parametrize('max_num_gt', [0, -3, 2.5, True])
def test_invalid_max_num_gt(max_num_gt):
    cfg = dict(copy.deepcopy(HEAD_CFG), type='HPUYOLOV3Head', max_num_gt=max_num_gt)
    with pytest.raises(ValueError, match='max_num_gt'):
        build_head(cfg)


def test_too_many_boxes_names_the_config_key():
    _, hpu = build_heads()
    gt_bboxes, gt_labels = make_gt('many')  # 40 and 30 boxes
    hpu.max_num_gt = 16
    with pytest.raises(ValueError, match='model.bbox_head.max_num_gt'):
        hpu.loss(random_pred_maps(2, 0), gt_bboxes, gt_labels, img_metas(2))


def test_padded_tensor_without_mask_is_rejected():
    _, hpu = build_heads()
    boxes, labels, _ = pad_gt_list(*make_gt('one'), 8)
    with pytest.raises(ValueError, match='gt_valid'):
        hpu.loss(random_pred_maps(2, 0), boxes, labels, img_metas(2))


def test_device_mode_rejects_other_assigners():
    cfg = dict(copy.deepcopy(HEAD_CFG), type='HPUYOLOV3Head')
    cfg['train_cfg'] = mmcv.Config(dict(assigner=dict(
        type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5)))
    with pytest.raises(TypeError, match="target_mode='host'"):
        build_head(cfg)


# ------------------------------------------------------------------------------ inference
def assert_detections_equal(expected, actual):
    assert len(actual) == len(expected)
    for (exp_boxes, exp_labels), (act_boxes, act_labels) in zip(expected, actual):
        assert act_boxes.dtype == torch.float32 and act_boxes.shape[1] == 5
        assert act_boxes.shape == exp_boxes.shape
        torch.testing.assert_close(act_boxes, exp_boxes, rtol=1e-4, atol=1e-4)
        assert torch.equal(act_labels, exp_labels)


@pytest.mark.parametrize('obj_mean,max_per_img,rescale', [
    (-7.5, 100, False),  # sparse: few anchors pass conf_thr
    (3.0, 100, False),  # dense: most anchor x class pairs are candidates
    (3.0, 15, True),  # dense, truncated to max_per_img, rescaled
    (0.0, -1, True),  # no per-image cap
])
def test_get_bboxes_equal_stock(obj_mean, max_per_img, rescale):
    stock, hpu = build_heads()
    cfg = make_test_cfg()
    cfg.max_per_img = max_per_img
    cfg.nms_pre = 3 * 126 * NUM_CLASSES  # every pair fits: equality with stock is exact
    metas = img_metas(3, scale_factor=(1.5, 0.8, 1.5, 0.8))
    pred_maps = random_pred_maps(3, seed=6, obj_mean=obj_mean)
    expected = stock.get_bboxes([p.clone() for p in pred_maps], metas, cfg, rescale=rescale)
    actual = hpu.get_bboxes([p.clone() for p in pred_maps], metas, cfg, rescale=rescale)
    assert_detections_equal(expected, actual)
    counts = [len(labels) for _, labels in expected]
    assert sum(counts) > 0
    if obj_mean < 0:
        assert max(counts) < 40
    elif max_per_img > 0:
        assert min(counts) == max_per_img


@pytest.mark.parametrize('max_num,max_per_img', [(7, 100), (20, 9), (5, -1)])
def test_get_bboxes_nms_max_num_caps_like_stock(max_num, max_per_img):
    """``nms.max_num`` and ``max_per_img`` both cap the detections; the smaller wins."""
    stock, hpu = build_heads()
    cfg = make_test_cfg()
    cfg.max_per_img = max_per_img
    cfg.nms = dict(type='nms', iou_threshold=0.45, max_num=max_num)
    cfg.nms_pre = 3 * 126 * NUM_CLASSES
    metas = img_metas(2)
    pred_maps = random_pred_maps(2, seed=8, obj_mean=3.0)
    expected = stock.get_bboxes([p.clone() for p in pred_maps], metas, cfg)
    actual = hpu.get_bboxes([p.clone() for p in pred_maps], metas, cfg)
    assert_detections_equal(expected, actual)
    cap = max_num if max_per_img <= 0 else min(max_num, max_per_img)
    assert [len(labels) for _, labels in actual] == [cap, cap]


def test_get_bboxes_default_nms_pre_and_with_nms_false():
    stock, hpu = build_heads()
    metas = img_metas(2)
    cfg = make_test_cfg()
    cfg.pop('nms_pre')  # the head falls back to 1000
    pred_maps = random_pred_maps(2, seed=7, obj_mean=-6.0)
    valid = 0
    for pred in torch.cat([p.reshape(2, 3, 5 + NUM_CLASSES, -1) for p in pred_maps], -1):
        obj, cls = pred[:, 4].sigmoid(), pred[:, 5:].sigmoid()
        valid = max(valid, int(((obj >= 0.005)[:, None] & (cls > 0.05)).sum()))
    assert 100 < valid <= 1000, 'candidates must fit the default nms_pre for exact equality'
    for with_nms in (True, False):  # stock applies NMS either way
        expected = stock.get_bboxes([p.clone() for p in pred_maps], metas, cfg,
                                    with_nms=with_nms)
        actual = hpu.get_bboxes([p.clone() for p in pred_maps], metas, cfg, with_nms=with_nms)
        assert_detections_equal(expected, actual)


def test_get_bboxes_static_shapes_and_padding():
    _, hpu = build_heads()
    cfg = make_test_cfg()
    cfg.max_per_img = 30
    pred_maps = random_pred_maps(2, seed=8, obj_mean=-8.0)
    pred_maps[0][1] -= 50.0  # image 1 has no detection at all
    pred_maps[1][1] -= 50.0
    pred_maps[2][1] -= 50.0
    dets, labels, num_dets = hpu.get_bboxes_static(pred_maps, img_metas(2), cfg)
    assert dets.shape == (2, 30, 5) and labels.shape == (2, 30) and num_dets.shape == (2,)
    assert num_dets[1] == 0 and 0 < num_dets[0] < 30
    n = int(num_dets[0])
    assert (dets[0, n:] == 0).all() and (labels[0, n:] == -1).all()
    assert (dets[0, :n - 1, 4] >= dets[0, 1:n, 4]).all()


def test_images_in_a_batch_do_not_interact():
    _, hpu = build_heads()
    pred_maps = random_pred_maps(3, seed=9, obj_mean=2.0)
    batched = hpu.get_bboxes([p.clone() for p in pred_maps], img_metas(3))
    for i in range(3):
        single = hpu.get_bboxes([p[i:i + 1].clone() for p in pred_maps], img_metas(1))
        assert_detections_equal(single, batched[i:i + 1])


def test_nms_pre_truncation_keeps_best_candidates():
    # Documented semantics: the nms_pre anchors of highest objectness first (as mmdet's
    # onnx_export), then the nms_pre best (anchor, class) pairs among them.
    _, hpu = build_heads()
    cfg = make_test_cfg()
    cfg.nms_pre = 50
    pred_maps = random_pred_maps(1, seed=11, obj_mean=3.0)
    boxes, scores, labels, valid = hpu.get_bboxes_pre_nms(pred_maps, None, 0.005, 0.05, 50)
    assert boxes.shape == (1, 50, 4) and valid.all()
    objectness = torch.cat([p.reshape(1, 3, 5 + NUM_CLASSES, -1)[:, :, 4] for p in pred_maps],
                           -1).sigmoid().flatten()
    cls = torch.cat([p.reshape(1, 3, 5 + NUM_CLASSES, -1)[:, :, 5:] for p in pred_maps],
                    -1).sigmoid()[0].permute(0, 2, 1).reshape(-1, NUM_CLASSES)
    best_anchors = objectness.topk(50).indices
    pair_scores = (cls[best_anchors] * objectness[best_anchors, None]).flatten()
    torch.testing.assert_close(scores[0], pair_scores.topk(50).values)
    all_pairs = (cls * objectness[:, None]).flatten()
    assert not torch.allclose(scores[0], all_pairs.topk(50).values), 'anchor pre-selection'
    dets, _, num_dets = hpu.get_bboxes_static(pred_maps, img_metas(1), cfg)
    assert 0 < num_dets[0] <= 50


def test_anchor_gathers_match_the_anchor_major_copy():
    pred_maps = random_pred_maps(2, seed=21)
    flat = [p.permute(0, 2, 3, 1).reshape(2, -1, 5 + NUM_CLASSES) for p in pred_maps]
    gen = torch.Generator().manual_seed(22)
    level_inds = torch.randint(0, flat[2].shape[1], (2, 7), generator=gen)
    objectness, preds = gather_objectness_and_anchors(pred_maps[2], level_inds, 3)
    assert torch.equal(objectness, flat[2][..., 4]) and objectness.stride(-1) == 2
    assert torch.equal(preds, torch.gather(flat[2], 1, level_inds[..., None].expand(-1, -1, 9)))
    every = torch.cat(flat, dim=1)
    inds = torch.randint(0, every.shape[1], (2, 50), generator=gen)
    expected = torch.gather(every, 1, inds[..., None].expand(-1, -1, 9))
    assert torch.equal(gather_anchor_preds(pred_maps, inds, 3), expected)


def reference_nms(boxes, scores, labels, valid, iou_threshold):
    """Per-(image, class) NMS of the valid candidates only, with torchvision's batched_nms."""
    kept = []
    for img_boxes, img_scores, img_labels, img_valid in zip(boxes, scores, labels, valid):
        keep = torchvision.ops.batched_nms(img_boxes[img_valid], img_scores[img_valid],
                                           img_labels[img_valid], iou_threshold)
        kept.append(sorted(img_scores[img_valid][keep].tolist(), reverse=True))
    return kept


def candidates(num_imgs=3, k=60, seed=0, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(num_imgs, k, 2, generator=gen) * 80 * scale - 20 * scale
    wh = torch.rand(num_imgs, k, 2, generator=gen) * 40 * scale + 1
    boxes = torch.cat([xy, xy + wh], dim=-1)
    scores = torch.rand(num_imgs, k, generator=gen)
    labels = torch.randint(0, 3, (num_imgs, k), generator=gen)
    valid = torch.rand(num_imgs, k, generator=gen) > 0.4
    return boxes, scores, labels, valid


@pytest.mark.parametrize('scale', [1.0, 30.0])
def test_per_image_nms_with_parked_invalid_candidates_equals_per_group_nms(scale,
                                                                           monkeypatch):
    boxes, scores, labels, valid = candidates(seed=1, scale=scale)
    # Invalid candidates copy valid boxes with higher scores: they must suppress nothing.
    boxes[:, 1::2] = boxes[:, 0::2]
    scores[:, 1::2] = scores[:, 0::2] + 0.5
    calls = []
    real_nms = torchvision.ops.nms

    def counting_nms(*args):
        calls.append(args[0].shape)
        return real_nms(*args)

    monkeypatch.setattr(torchvision.ops, 'nms', counting_nms)
    dets, det_labels, num_dets = batched_nms_fixed(boxes, scores, labels, valid, 3, 0.45, -1)
    # One call per image over its valid candidates only: the cost grows linearly with the batch.
    assert calls == [(int(n), 4) for n in valid.sum(dim=1)]
    expected = reference_nms(boxes, scores, labels, valid, 0.45)
    for img, exp in enumerate(expected):
        n = int(num_dets[img])
        assert n == len(exp) > 0
        torch.testing.assert_close(dets[img, :n, 4], torch.tensor(exp))
        assert (det_labels[img, n:] == -1).all()


def test_nms_with_no_valid_candidate_keeps_nothing():
    boxes, scores, labels, _ = candidates(num_imgs=2, k=10, seed=3)
    valid = torch.zeros(2, 10, dtype=torch.bool)
    dets, det_labels, num_dets = batched_nms_fixed(boxes, scores, labels, valid, 3, 0.5, 5)
    assert num_dets.tolist() == [0, 0] and (dets == 0).all() and (det_labels == -1).all()


# -------------------------------------------------------------------------- static-ness
class OpRecorder(TorchDispatchMode):
    """Record every aten op and the dtypes of index tensors."""

    def __init__(self):
        super().__init__()
        self.ops = []
        self.bool_index_ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        self.ops.append(name)
        if name.startswith('index') and len(args) > 1 and isinstance(args[1], (list, tuple)):
            dtypes = [t.dtype for t in args[1] if isinstance(t, torch.Tensor)]
            if torch.bool in dtypes or torch.uint8 in dtypes:
                self.bool_index_ops.append(name)
        return func(*args, **(kwargs or {}))


FORBIDDEN_OPS = ('_local_scalar_dense', 'nonzero', 'masked_select', 'unique', '_unique',
                 '_unique2', 'unique_consecutive', 'is_nonzero', 'item', 'masked_scatter')


def assert_static(recorder):
    assert recorder.ops, 'nothing recorded'
    found = [op for op in recorder.ops if op in FORBIDDEN_OPS]
    assert not found, found
    assert not recorder.bool_index_ops


def test_recorder_detects_forbidden_ops():
    recorder = OpRecorder()
    x = torch.arange(6.0)
    with recorder:
        x[x > 2].sum().item()
        torch.nonzero(x)
    assert '_local_scalar_dense' in recorder.ops and 'nonzero' in recorder.ops
    assert recorder.bool_index_ops
    with pytest.raises(AssertionError):
        assert_static(recorder)


@pytest.mark.parametrize('padded', [False, True])
def test_device_loss_has_no_sync_or_dynamic_op(padded):
    _, hpu = build_heads()
    gt_bboxes, gt_labels = make_gt('mixed', seed=12)
    metas = img_metas(len(gt_bboxes))
    pred_maps = [p.requires_grad_() for p in random_pred_maps(len(gt_bboxes), seed=13)]
    extra = {}
    if padded:
        gt_bboxes, gt_labels, valid = pad_gt_list(gt_bboxes, gt_labels, 32)
        extra = dict(gt_valid=valid)
    hpu.loss(pred_maps, gt_bboxes, gt_labels, metas, **extra)  # warm the prior cache too
    recorder = OpRecorder()
    with recorder:
        losses = hpu.loss(pred_maps, gt_bboxes, gt_labels, metas, **extra)
        sum(sum(v) for v in losses.values()).backward()
    assert_static(recorder)


def test_pre_nms_inference_has_no_sync_or_dynamic_op():
    _, hpu = build_heads()
    pred_maps = random_pred_maps(2, seed=14, obj_mean=1.0)
    scale = torch.full((2, 1, 4), 0.5)
    recorder = OpRecorder()
    with recorder:
        hpu.get_bboxes_pre_nms(pred_maps, scale, 0.005, 0.05, 1000)
    assert_static(recorder)


def test_device_loss_has_no_graph_break():
    torch._dynamo.reset()
    _, hpu = build_heads()
    boxes, labels, valid = pad_gt_list(*make_gt('mixed', seed=15), 32)
    pred_maps = random_pred_maps(4, seed=16)
    explanation = torch._dynamo.explain(hpu.loss)(pred_maps, boxes, labels, img_metas(4),
                                                  gt_valid=valid)
    assert explanation.graph_count >= 1
    assert explanation.graph_break_count == 0, explanation.break_reasons


def test_pre_nms_inference_has_no_graph_break():
    torch._dynamo.reset()
    _, hpu = build_heads()
    pred_maps = random_pred_maps(2, seed=17)
    explanation = torch._dynamo.explain(hpu.get_bboxes_pre_nms)(
        pred_maps, torch.ones(2, 1, 4), 0.005, 0.05, 1000)
    assert explanation.graph_count >= 1
    assert explanation.graph_break_count == 0, explanation.break_reasons
