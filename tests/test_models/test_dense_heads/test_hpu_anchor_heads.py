"""HPURetinaHead / HPUSSDHead against stock RetinaHead / SSDHead: losses, gradients, detections."""
import copy

import mmcv
import numpy as np
import pytest
import torch
from dense_head_cases import count_nms_calls
from dispatched_dtypes import byte_ops_and_dtype_views
from mmdet.models.builder import build_head

import mmdet_hpu  # noqa: F401  (registers the HPU heads)
from mmdet_hpu.errors import ConfigError
from mmdet_hpu.models.utils import pad_gt_list
from mmdet_hpu.runner.host_reads import HostReadCounter

IMG = 64
NUM_CLASSES = 4

RETINA_CFG = dict(
    type='RetinaHead', num_classes=NUM_CLASSES, in_channels=8, stacked_convs=1,
    feat_channels=8,
    anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4, scales_per_octave=3,
                          ratios=[0.5, 1.0, 2.0], strides=[8, 16, 32]),
    bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0],
                    target_stds=[1.0, 1.0, 1.0, 1.0]),
    loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
    loss_bbox=dict(type='L1Loss', loss_weight=1.0),
    train_cfg=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4,
                                 min_pos_iou=0, ignore_iof_thr=-1),
                   allowed_border=-1, pos_weight=-1, debug=False),
    test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05,
                  nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))

SSD_CFG = dict(
    type='SSDHead', num_classes=NUM_CLASSES, in_channels=(8, 8, 8), stacked_convs=0,
    anchor_generator=dict(type='SSDAnchorGenerator', scale_major=False, input_size=IMG,
                          min_sizes=[10, 24, 40], max_sizes=[24, 40, 64], strides=[8, 16, 32],
                          ratios=[[2], [2, 3], [2]]),
    bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0],
                    target_stds=[0.1, 0.1, 0.2, 0.2]),
    train_cfg=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5,
                                 min_pos_iou=0., ignore_iof_thr=-1, gt_max_assign_all=False),
                   smoothl1_beta=1., allowed_border=-1, pos_weight=-1, neg_pos_ratio=3,
                   debug=False),
    test_cfg=dict(nms_pre=1000, nms=dict(type='nms', iou_threshold=0.45), min_bbox_size=0,
                  score_thr=0.02, max_per_img=200))

HEADS = {'retina': (RETINA_CFG, 'HPURetinaHead', (8, 16, 32)),
         'ssd': (SSD_CFG, 'HPUSSDHead', (8, 16, 32))}


def build_heads(kind, train_cfg=None, test_cfg=None, **overrides):
    """Stock head and HPU head with identical weights and config."""
    base, hpu_type, _ = HEADS[kind]
    cfg = copy.deepcopy(base)
    cfg.update(overrides)
    cfg['train_cfg'] = mmcv.Config(dict(cfg['train_cfg'], **(train_cfg or {})))
    cfg['test_cfg'] = mmcv.Config(dict(cfg['test_cfg'], **(test_cfg or {})))
    hpu_cfg = copy.deepcopy(cfg)
    hpu_cfg.update(type=hpu_type, max_num_gt=128)
    torch.manual_seed(0)
    stock, hpu = build_head(cfg), build_head(hpu_cfg)
    hpu.load_state_dict(stock.state_dict(), strict=True)
    return stock, hpu


def head_outputs(kind, stock, num_imgs, seed, cls_bias=0.0):
    """Random predictions (leaf tensors with grad) in the head's output layout."""
    gen = torch.Generator().manual_seed(seed)
    strides = HEADS[kind][2]
    num_anchors = stock.num_base_priors
    cls_scores, bbox_preds = [], []
    for level, stride in enumerate(strides):
        size = (IMG // stride, IMG // stride)
        anchors = num_anchors[level] if isinstance(num_anchors, list) else num_anchors
        cls = torch.randn(num_imgs, anchors * stock.cls_out_channels, *size, generator=gen)
        cls_scores.append((cls + cls_bias).requires_grad_())
        bbox_preds.append((torch.randn(num_imgs, anchors * 4, *size, generator=gen) * 0.3)
                          .requires_grad_())
    return cls_scores, bbox_preds


def random_boxes(num, gen, min_size=4.0, max_size=50.0):
    wh = torch.rand(num, 2, generator=gen) * (max_size - min_size) + min_size
    xy = torch.rand(num, 2, generator=gen) * (IMG - wh)
    return torch.cat([xy, xy + wh], dim=1)


def border_boxes():
    return torch.tensor([[0.0, 0.0, IMG, IMG], [0.0, 0.0, 10.0, 12.0],
                         [IMG - 7.0, IMG - 9.0, IMG, IMG], [0.0, IMG - 30.0, 25.0, IMG]])


def make_gt(kind, seed=0):
    """Per-image (boxes, labels) lists for one named scenario."""
    gen = torch.Generator().manual_seed(seed)
    if kind == 'zero':
        boxes = [torch.zeros(0, 4), torch.zeros(0, 4)]
    elif kind == 'one':
        boxes = [random_boxes(1, gen), random_boxes(1, gen)]
    elif kind == 'many':
        boxes = [random_boxes(20, gen), random_boxes(12, gen)]
    elif kind == 'crowded':
        boxes = [random_boxes(128, gen, 2.0, 30.0), random_boxes(70, gen, 2.0, 30.0)]
    elif kind == 'border':
        boxes = [border_boxes(), border_boxes()[[2, 0]]]
    elif kind == 'tiny':
        boxes = [random_boxes(12, gen, 0.3, 2.5), random_boxes(5, gen, 0.3, 2.5)]
    elif kind == 'mixed':
        boxes = [torch.zeros(0, 4), random_boxes(3, gen), random_boxes(17, gen), border_boxes()]
    elif kind == 'ties':
        # Duplicate boxes (IoU ties between GTs) and grid-aligned boxes (ties between anchors).
        box = random_boxes(1, gen)
        aligned = torch.tensor([[0.0, 0.0, 32.0, 32.0], [16.0, 16.0, 48.0, 48.0],
                                [8.0, 8.0, 24.0, 24.0]])
        boxes = [torch.cat([box, box, aligned, box]), aligned.clone()]
    else:
        raise KeyError(kind)
    labels = [torch.randint(0, NUM_CLASSES, (len(b),), generator=gen) for b in boxes]
    return boxes, labels


SCENARIOS = ['zero', 'one', 'many', 'crowded', 'border', 'tiny', 'mixed', 'ties']


def img_metas(num_imgs, img_shapes=None, scale_factor=(1.0, 1.0, 1.0, 1.0)):
    shapes = img_shapes or [(IMG, IMG, 3)] * num_imgs
    return [dict(img_shape=shape, pad_shape=(IMG, IMG, 3), ori_shape=shape,
                 batch_input_shape=(IMG, IMG),
                 scale_factor=np.array(scale_factor, dtype=np.float32)) for shape in shapes]


def losses_and_grads(head, outputs, gt_bboxes, gt_labels, metas, **kwargs):
    cls_scores, bbox_preds = outputs
    for t in cls_scores + bbox_preds:
        t.grad = None
    losses = head.loss(cls_scores, bbox_preds, gt_bboxes, gt_labels, metas, **kwargs)
    total = sum(sum(v) if isinstance(v, list) else v for v in losses.values())
    total.sum().backward()
    grads = [t.grad.clone() for t in cls_scores + bbox_preds]
    return losses, grads


def assert_losses_and_grads_equal_stock(kind, stock, hpu, gt_bboxes, gt_labels, metas,
                                        padded=False, seed=1):
    outputs = head_outputs(kind, stock, len(gt_bboxes), seed)
    expected, expected_grads = losses_and_grads(stock, outputs, gt_bboxes, gt_labels, metas)
    extra = {}
    if padded:
        gt_bboxes, gt_labels, valid = pad_gt_list(gt_bboxes, gt_labels, 128)
        extra = dict(gt_valid=valid)
    actual, grads = losses_and_grads(hpu, outputs, gt_bboxes, gt_labels, metas, **extra)
    assert set(actual) == set(expected) == {'loss_cls', 'loss_bbox'}
    for key, values in expected.items():
        assert len(actual[key]) == len(values)
        for exp, act in zip(values, actual[key]):
            assert act.shape == exp.shape, key
            torch.testing.assert_close(act, exp, rtol=1e-5, atol=1e-7, msg=key)
    for exp, act in zip(expected_grads, grads):
        torch.testing.assert_close(act, exp, rtol=1e-4, atol=1e-7)
    return expected


@pytest.mark.parametrize('scenario', SCENARIOS)
@pytest.mark.parametrize('kind', ['retina', 'ssd'])
def test_loss_and_grad_equal_stock(kind, scenario):
    stock, hpu = build_heads(kind)
    gt_bboxes, gt_labels = make_gt(scenario, seed=SCENARIOS.index(scenario))
    expected = assert_losses_and_grads_equal_stock(kind, stock, hpu, gt_bboxes, gt_labels,
                                                   img_metas(len(gt_bboxes)))
    if scenario != 'zero':
        assert sum(v.sum() for v in expected['loss_bbox']) > 0  # positives were found


@pytest.mark.parametrize('kind', ['retina', 'ssd'])
def test_padded_gt_equals_list_gt(kind):
    stock, hpu = build_heads(kind)
    gt_bboxes, gt_labels = make_gt('mixed', seed=3)
    assert_losses_and_grads_equal_stock(kind, stock, hpu, gt_bboxes, gt_labels,
                                        img_metas(len(gt_bboxes)), padded=True)


@pytest.mark.parametrize('kind', ['retina', 'ssd'])
def test_anchors_outside_the_image_and_other_train_options(kind):
    # allowed_border >= 0 with images of different sizes in one padded batch: stock leaves
    # anchors outside each image out of the assignment; pos_weight > 0 weights positives.
    assigner = dict(HEADS[kind][0]['train_cfg']['assigner'], neg_iou_thr=(0.1, 0.4),
                    min_pos_iou=0.2)
    stock, hpu = build_heads(kind, train_cfg=dict(allowed_border=0, pos_weight=2.0,
                                                  assigner=assigner))
    gt_bboxes, gt_labels = make_gt('many', seed=4)
    gt_bboxes[1] = gt_bboxes[1] * 0.6
    metas = img_metas(2, img_shapes=[(IMG, IMG, 3), (40, 44, 3)])
    assert_losses_and_grads_equal_stock(kind, stock, hpu, gt_bboxes, gt_labels, metas)


@pytest.mark.parametrize('kind', ['retina', 'ssd'])
def test_anchors_beyond_a_smaller_pad_shape_take_no_part(kind):
    # allowed_border=-1 (the COCO recipes): every anchor counts, except those of feature-map
    # cells beyond an image's own pad_shape in a larger batch canvas (stock valid_flags).
    stock, hpu = build_heads(kind)
    gt_bboxes, gt_labels = make_gt('many', seed=6)
    gt_bboxes[1] = gt_bboxes[1] * 0.5
    metas = img_metas(2, img_shapes=[(IMG, IMG, 3), (30, 26, 3)])
    metas[1]['pad_shape'] = (32, 32, 3)
    featmap_sizes = [(IMG // s, IMG // s) for s in HEADS[kind][2]]
    anchors = hpu._anchors(featmap_sizes, 'cpu')['anchors']
    flags = hpu._inside_flags(featmap_sizes, metas, anchors)
    assert flags is not None and flags[0].all() and not flags[1].all()
    assert hpu._inside_flags(featmap_sizes, metas[:1], anchors) is None  # full canvas: no mask
    assert_losses_and_grads_equal_stock(kind, stock, hpu, gt_bboxes, gt_labels, metas)


@pytest.mark.parametrize('kind,overrides', [
    ('retina', dict(loss_bbox=dict(type='SmoothL1Loss', beta=0.11, loss_weight=2.0))),
    ('retina', dict(reg_decoded_bbox=True)),  # L1 on decoded boxes: the permuted path
    ('retina', dict(loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=1.5, alpha=0.3,
                                  loss_weight=0.5))),
    ('ssd', dict(reg_decoded_bbox=True)),
    ('ssd', dict(bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.1, .0, -.1, .0],
                                 target_stds=[0.1, 0.2, 0.2, 0.3]))),
])
def test_other_box_losses_and_coders_equal_stock(kind, overrides):
    stock, hpu = build_heads(kind, **overrides)
    gt_bboxes, gt_labels = make_gt('many', seed=11)
    assert_losses_and_grads_equal_stock(kind, stock, hpu, gt_bboxes, gt_labels, img_metas(2))


def test_padded_rows_never_become_positives():
    stock, hpu = build_heads('retina')
    gt_bboxes, gt_labels = make_gt('one', seed=5)
    boxes, labels, valid = pad_gt_list(gt_bboxes, gt_labels, 16)
    # Padding rows holding real-looking boxes: ignored by the mask.
    boxes[:, 1:] = border_boxes()[0]
    outputs = head_outputs('retina', stock, 2, seed=6)
    expected, _ = losses_and_grads(stock, outputs, gt_bboxes, gt_labels, img_metas(2))
    actual, _ = losses_and_grads(hpu, outputs, boxes, labels, img_metas(2), gt_valid=valid)
    for key in expected:
        for exp, act in zip(expected[key], actual[key]):
            torch.testing.assert_close(act, exp, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('kind', ['retina', 'ssd'])
@pytest.mark.parametrize('padded', [False, True])
def test_training_step_has_no_host_sync_or_dynamic_op(kind, padded):
    stock, hpu = build_heads(kind)
    gt_bboxes, gt_labels = make_gt('mixed', seed=7)
    extra = {}
    if padded:
        gt_bboxes, gt_labels, valid = pad_gt_list(gt_bboxes, gt_labels, 32)
        extra = dict(gt_valid=valid)
    outputs = head_outputs(kind, stock, 4, seed=8)
    metas = img_metas(4)
    losses_and_grads(hpu, outputs, gt_bboxes, gt_labels, metas, **extra)  # warm the caches
    with HostReadCounter() as reads:
        losses_and_grads(hpu, outputs, gt_bboxes, gt_labels, metas, **extra)
    assert reads.snapshot() == dict(scalar=0, bulk=0, dynamic=0)
    # The counter does see the stock head's syncs and dynamic ops.
    with HostReadCounter() as stock_reads:
        losses_and_grads(stock, outputs, *make_gt('mixed', seed=7), metas)
    assert stock_reads.counts['scalar'] > 0 and stock_reads.counts['dynamic'] > 0


@pytest.mark.parametrize('kind', ['retina', 'ssd'])
def test_loss_has_no_graph_break(kind):
    torch._dynamo.reset()
    stock, hpu = build_heads(kind)
    boxes, labels, valid = pad_gt_list(*make_gt('mixed', seed=9), 32)
    cls_scores, bbox_preds = head_outputs(kind, stock, 4, seed=10)
    explanation = torch._dynamo.explain(hpu.loss)(cls_scores, bbox_preds, boxes, labels,
                                                  img_metas(4), gt_valid=valid)
    assert explanation.graph_count >= 1
    assert explanation.graph_break_count == 0, explanation.break_reasons


# ----------------------------------------------------------------------------- refusals
def test_retina_refuses_a_sampler():
    with pytest.raises(ConfigError, match='sampler.*RandomSampler'):
        build_heads('retina', train_cfg=dict(sampler=dict(
            type='RandomSampler', num=256, pos_fraction=0.5, neg_pos_ub=-1,
            add_gt_as_proposals=False)), loss_cls=dict(type='CrossEntropyLoss',
                                                       use_sigmoid=True))


def test_retina_refuses_other_losses():
    with pytest.raises(ConfigError, match='loss_cls.*FocalLoss'):
        build_heads('retina', loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True))
    with pytest.raises(ConfigError, match='loss_bbox.*GIoULoss'):
        build_heads('retina', reg_decoded_bbox=True, loss_bbox=dict(type='GIoULoss'))


@pytest.mark.parametrize('kind', ['retina', 'ssd'])
def test_refuses_other_assigners(kind):
    with pytest.raises(ConfigError, match='ATSSAssigner.*stock head'):
        build_heads(kind, train_cfg=dict(assigner=dict(type='ATSSAssigner', topk=9)))


@pytest.mark.parametrize('kind', ['retina', 'ssd'])
def test_refuses_soft_nms_at_inference(kind):
    stock, hpu = build_heads(kind, test_cfg=dict(nms=dict(type='soft_nms', iou_threshold=0.5)))
    cls_scores, bbox_preds = head_outputs(kind, stock, 1, seed=11)
    with pytest.raises(ConfigError, match='soft_nms'):
        hpu.get_bboxes(cls_scores, bbox_preds, img_metas=img_metas(1))


# ---------------------------------------------------------------------------- inference
def assert_detections_equal(expected, actual):
    assert len(actual) == len(expected)
    for (exp_boxes, exp_labels), (boxes, labels) in zip(expected, actual):
        assert boxes.shape == exp_boxes.shape and labels.shape == exp_labels.shape
        # Equal scores may come out in another order: compare sorted by (score, label, box).
        def order(b, lbl):
            keys = torch.cat([b[:, [4, 0, 1, 2, 3]], lbl[:, None].float()], dim=1).tolist()
            return sorted(range(len(keys)), key=lambda i: keys[i], reverse=True)
        exp_order, act_order = order(exp_boxes, exp_labels), order(boxes, labels)
        torch.testing.assert_close(boxes[act_order], exp_boxes[exp_order], rtol=1e-4, atol=1e-4)
        assert torch.equal(labels[act_order], exp_labels[exp_order])


@pytest.mark.parametrize('kind', ['retina', 'ssd'])
@pytest.mark.parametrize('cls_bias,nms_pre,max_per_img,rescale', [
    (0.0, 1000, 100, False),    # many candidates, most pass score_thr
    (-3.0, 1000, 100, True),    # few pass score_thr; rescaled
    (0.0, 50, 20, False),       # nms_pre and max_per_img truncate
    (-6.0, 1000, 100, False),   # almost nothing passes
])
def test_get_bboxes_equal_stock(kind, cls_bias, nms_pre, max_per_img, rescale):
    stock, hpu = build_heads(kind, test_cfg=dict(nms_pre=nms_pre, max_per_img=max_per_img))
    cls_scores, bbox_preds = head_outputs(kind, stock, 3, seed=12, cls_bias=cls_bias)
    cls_scores = [c.detach() for c in cls_scores]
    bbox_preds = [b.detach() * 3 for b in bbox_preds]  # boxes leave the image: clipping
    metas = img_metas(3, img_shapes=[(IMG, IMG, 3), (50, 60, 3), (IMG, 40, 3)],
                      scale_factor=(0.5, 0.5, 0.5, 0.5))
    expected = stock.get_bboxes(cls_scores, bbox_preds, img_metas=metas, rescale=rescale)
    actual = hpu.get_bboxes(cls_scores, bbox_preds, img_metas=metas, rescale=rescale)
    assert_detections_equal(expected, actual)
    if cls_bias > -6.0:
        assert all(len(labels) > 0 for _, labels in expected)


@pytest.mark.parametrize('kind', ['retina', 'ssd'])
def test_get_bboxes_static_shapes_and_single_nms(kind, monkeypatch):
    stock, hpu = build_heads(kind)
    cls_scores, bbox_preds = head_outputs(kind, stock, 2, seed=13, cls_bias=-2.0)
    cls_scores = [c.detach() for c in cls_scores]
    bbox_preds = [b.detach() for b in bbox_preds]
    ops, calls = count_nms_calls(monkeypatch)
    dets, labels, num_dets = hpu.get_bboxes_static(cls_scores, bbox_preds, img_metas(2))
    # One fixed-shape NMS op for the batch; torchvision NMS runs only inside it.
    assert len(ops) == 1 and calls and all(calls)
    max_per_img = hpu.test_cfg['max_per_img']
    assert dets.shape == (2, max_per_img, 5) and labels.shape == (2, max_per_img)
    for i in range(2):
        n = int(num_dets[i])
        assert (labels[i, n:] == -1).all() and (dets[i, n:] == 0).all()
        assert (labels[i, :n] >= 0).all()


@pytest.mark.parametrize('kind', ['retina', 'ssd'])
def test_pre_nms_inference_has_no_sync_or_dynamic_op(kind):
    stock, hpu = build_heads(kind)
    cls_scores, bbox_preds = head_outputs(kind, stock, 2, seed=14)
    metas = img_metas(2)
    hpu.get_bboxes_pre_nms(cls_scores, bbox_preds, metas, 0.05, 1000, True)  # warm the cache
    with HostReadCounter() as reads:
        hpu.get_bboxes_pre_nms(cls_scores, bbox_preds, metas, 0.05, 1000, True)
    assert reads.snapshot() == dict(scalar=0, bulk=0, dynamic=0)


@pytest.mark.parametrize('kind', ['retina', 'ssd'])
def test_pre_nms_inference_has_no_graph_break(kind):
    torch._dynamo.reset()
    stock, hpu = build_heads(kind)
    cls_scores, bbox_preds = head_outputs(kind, stock, 2, seed=15)
    explanation = torch._dynamo.explain(hpu.get_bboxes_pre_nms)(
        cls_scores, bbox_preds, img_metas(2), 0.05, 1000, True)
    assert explanation.graph_count >= 1
    assert explanation.graph_break_count == 0, explanation.break_reasons


def test_ssd_hard_negatives_are_the_k_largest_losses(speedups):
    """The radix select of the int32 bits (CPU) or the float sort (other devices) picks, per
    image, k negatives whose losses are the k largest negative losses (ties, 0, -0.0 and inf
    included), and nothing else."""
    from mmdet_hpu.models.dense_heads.hpu_ssd_head import HPUSSDHead
    gen = torch.Generator().manual_seed(0)
    loss = torch.rand(4, 200, generator=gen) * 10
    loss[:, ::7] = 2.5  # ties, also at the cut
    loss[0, 3] = 0.0
    loss[1, 4] = -0.0
    loss[2, 5] = float('inf')
    negative = torch.rand(4, 200, generator=gen) > 0.3
    negative[:, 3:6] = True
    num_neg = torch.tensor([0, 17, int(negative[2].sum()), 40])
    num_neg[3] = int((loss[3][negative[3]] > 2.5).sum()) + 3  # cut inside the 2.5 ties
    chosen = HPUSSDHead._hardest_negatives(loss, negative, num_neg)
    dtype_views = byte_ops_and_dtype_views(
        lambda: HPUSSDHead._hardest_negatives(loss, negative, num_neg))[1]
    assert bool(dtype_views) == (speedups == 'cpu path')  # the bit view stays on the CPU
    for img in range(4):
        assert not chosen[img, ~negative[img]].any()
        assert int(chosen[img].sum()) == int(num_neg[img])
        expected = loss[img][negative[img]].sort(descending=True).values[:num_neg[img]]
        picked = loss[img][chosen[img]].sort(descending=True).values
        assert torch.equal(picked.abs(), expected.abs())
