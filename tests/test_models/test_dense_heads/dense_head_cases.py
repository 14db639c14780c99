"""Ground-truth scenarios, head builders and checks shared by the static FCOS / ATSS head tests
(and the NMS call counter, shared with the RetinaNet / SSD tests)."""
import copy

import numpy as np
import pytest
import torch
import torchvision
from mmdet.models.builder import build_head

from mmdet_hpu.models.utils import pad_gt_list, static_postprocess
from mmdet_hpu.runner.host_reads import HostReadCounter

IMG_H, IMG_W = 96, 128
NUM_CLASSES = 4
STRIDES = (8, 16, 32)
SCENARIOS = ['zero', 'one', 'many', 'border', 'tiny', 'crowded', 'mixed', 'ties']


def random_boxes(num, gen, min_size=4.0, max_size=80.0):
    """(num, 4) boxes inside the image."""
    wh = torch.rand(num, 2, generator=gen) * (max_size - min_size) + min_size
    wh = torch.minimum(wh, torch.tensor([IMG_W - 1.0, IMG_H - 1.0]))
    x1 = torch.rand(num, generator=gen) * (IMG_W - wh[:, 0])
    y1 = torch.rand(num, generator=gen) * (IMG_H - wh[:, 1])
    return torch.stack([x1, y1, x1 + wh[:, 0], y1 + wh[:, 1]], dim=1)


def border_boxes():
    """Boxes touching the image borders, including the whole image."""
    return torch.tensor([[0.0, 0.0, IMG_W, IMG_H],
                         [0.0, 0.0, 10.0, 12.0],
                         [IMG_W - 7.0, IMG_H - 9.0, IMG_W, IMG_H],
                         [0.0, IMG_H - 30.0, 25.0, IMG_H],
                         [IMG_W - 40.0, 0.0, IMG_W, 5.0]])


def tie_boxes():
    """Duplicates (same area and IoU), equal-area overlapping boxes, grid-symmetric boxes."""
    return torch.tensor([[16.0, 16.0, 48.0, 48.0],
                         [16.0, 16.0, 48.0, 48.0],   # duplicate of the first
                         [24.0, 24.0, 56.0, 56.0],   # same area, overlapping
                         [64.0, 32.0, 96.0, 64.0],   # centred between grid points
                         [60.0, 28.0, 100.0, 68.0],  # same centre, larger
                         [0.0, 0.0, 32.0, 32.0]])


def make_gt(kind, seed=0):
    """Per-image (boxes, labels) lists of one named scenario."""
    gen = torch.Generator().manual_seed(seed)
    if kind == 'zero':
        boxes = [torch.zeros(0, 4), torch.zeros(0, 4)]
    elif kind == 'one':
        boxes = [random_boxes(1, gen), random_boxes(1, gen)]
    elif kind == 'many':
        boxes = [random_boxes(25, gen), random_boxes(12, gen)]
    elif kind == 'border':
        boxes = [border_boxes(), border_boxes()[[2, 0]]]
    elif kind == 'tiny':
        boxes = [random_boxes(12, gen, 0.3, 3.0), random_boxes(5, gen, 0.3, 3.0)]
    elif kind == 'crowded':
        centre = torch.tensor([60.0, 50.0, 60.0, 50.0])
        boxes = [centre + torch.randn(100, 4, generator=gen).abs() * torch.tensor(
            [-20.0, -20.0, 20.0, 20.0]) + torch.tensor([-1.0, -1.0, 1.0, 1.0]),
            random_boxes(70, gen)]
    elif kind == 'mixed':
        boxes = [torch.zeros(0, 4), random_boxes(3, gen), random_boxes(17, gen), border_boxes()]
    elif kind == 'ties':
        boxes = [tie_boxes(), tie_boxes()[[3, 4, 0]]]
    else:
        raise KeyError(kind)
    labels = [torch.randint(0, NUM_CLASSES, (len(b),), generator=gen) for b in boxes]
    return boxes, labels


def img_metas(num_imgs, scale_factor=(1.0, 1.0, 1.0, 1.0), img_shape=(IMG_H, IMG_W, 3)):
    """Image metas of a batch at the test canvas."""
    pad = (IMG_H, IMG_W, 3)
    return [dict(img_shape=img_shape, pad_shape=pad, ori_shape=pad, batch_input_shape=pad[:2],
                 scale_factor=np.array(scale_factor, dtype=np.float32))
            for _ in range(num_imgs)]


def featmap_sizes():
    return [(IMG_H // s, IMG_W // s) for s in STRIDES]


def random_head_outputs(num_imgs, seed, num_priors=1, cls_mean=0.0):
    """(cls_scores, bbox_preds, centernesses) per level, as FCOS/ATSS forward returns them."""
    gen = torch.Generator().manual_seed(seed)
    outs = ([], [], [])
    for h, w in featmap_sizes():
        outs[0].append(torch.randn(num_imgs, num_priors * NUM_CLASSES, h, w, generator=gen)
                       + cls_mean)
        outs[1].append(torch.randn(num_imgs, num_priors * 4, h, w, generator=gen) * 0.5)
        outs[2].append(torch.randn(num_imgs, num_priors, h, w, generator=gen))
    return outs


def assert_losses_close(expected, actual, keys):
    """Every loss term within 1e-5 relative (per level for list-valued terms)."""
    assert set(actual) == set(expected) == set(keys)
    for key in keys:
        exp, act = expected[key], actual[key]
        if isinstance(exp, (list, tuple)):
            assert len(exp) == len(act)
        else:
            exp, act = [exp], [act]
        for e, a in zip(exp, act):
            e = torch.as_tensor(e, dtype=torch.float32)
            torch.testing.assert_close(a.detach().float(), e.detach(), rtol=1e-5, atol=1e-7,
                                       msg=key)


def total(losses):
    """Sum of every loss term (lists summed)."""
    return sum(sum(v) if isinstance(v, (list, tuple)) else v for v in losses.values())


def count_host_reads(fn):
    """Run ``fn`` under :class:`HostReadCounter`; return (result, counts)."""
    with HostReadCounter() as reads:
        result = fn()
    return result, reads.snapshot()


def varied_metas(num_imgs, rescale_factor=0.75):
    """Metas with a different (smaller) image shape per image, to exercise the clipping."""
    metas = img_metas(num_imgs, scale_factor=(rescale_factor, 0.5, rescale_factor, 0.5))
    for i, meta in enumerate(metas):
        meta['img_shape'] = (IMG_H - 8 * i, IMG_W - 16 * i, 3)
    return metas


def assert_detections_equal_stock(stock, hpu, outs, metas, rescale, cfg=None):
    """``get_bboxes`` of both heads: same boxes, scores and labels per image within 1e-4."""
    with torch.no_grad():
        expected = stock.get_bboxes(*outs, img_metas=metas, cfg=cfg, rescale=rescale)
        actual = hpu.get_bboxes(*outs, img_metas=metas, cfg=cfg, rescale=rescale)
    assert len(actual) == len(expected) == len(metas)
    num_dets = 0
    for (exp_dets, exp_labels), (act_dets, act_labels) in zip(expected, actual):
        assert act_dets.shape == exp_dets.shape
        torch.testing.assert_close(act_dets, exp_dets, rtol=1e-4, atol=1e-4)
        assert torch.equal(act_labels, exp_labels)
        num_dets += len(exp_dets)
    return num_dets


def assert_pre_nms_is_static(hpu, outs, metas, cfg):
    """No host read or dynamic op before the NMS call, one NMS call for the whole batch."""
    img_shapes, scale_factors = hpu._image_tensors(metas, 'cpu', True)
    _, counts = count_host_reads(lambda: hpu.get_bboxes_pre_nms(
        *outs, img_shapes, scale_factors, cfg.score_thr, cfg.nms_pre))
    assert counts == dict(scalar=0, bulk=0, dynamic=0)


def build_head_pair(base_cfg, variant_cfg, hpu_type, **overrides):
    """Stock head and its HPU subclass ``hpu_type`` with identical weights and config."""
    cfg = copy.deepcopy(base_cfg)
    cfg.update(copy.deepcopy(variant_cfg))
    cfg.update(overrides)
    torch.manual_seed(0)
    stock = build_head(cfg)
    hpu = build_head(dict(cfg, type=hpu_type, max_num_gt=128))
    hpu.load_state_dict(stock.state_dict(), strict=True)
    return stock, hpu


def run_losses(head, outs, gt_bboxes, gt_labels, num_imgs, **extra):
    """``head.loss`` on fresh leaf copies of ``outs``, backward; (losses, per-output grads)."""
    leaves = [[t.clone().requires_grad_() for t in level] for level in outs]
    losses = head.loss(*leaves, gt_bboxes, gt_labels, img_metas(num_imgs), **extra)
    total(losses).backward()
    return losses, [t.grad for level in leaves for t in level]


def assert_loss_accepts_padded_gt(stock, hpu, keys, as_lists):
    """Padded GT (tensors, or the per-image lists collate delivers) gives stock's losses."""
    gt_bboxes, gt_labels = make_gt('mixed', seed=3)
    outs = random_head_outputs(len(gt_bboxes), seed=4)
    metas = img_metas(len(gt_bboxes))
    expected = stock.loss(*outs, gt_bboxes, gt_labels, metas)
    boxes, labels, valid = pad_gt_list(gt_bboxes, gt_labels, 32)
    if as_lists:  # what DefaultFormatBundle + collate deliver with HPUPadGT: (B, 1, G) masks
        boxes, labels, valid = list(boxes), list(labels), valid[:, None].to(torch.uint8)
    actual = hpu.loss(*outs, boxes, labels, metas, gt_valid=valid)
    assert_losses_close(expected, actual, keys)


def assert_loss_is_static(hpu, padded):
    """Loss + backward (after a warm-up) with no host read and no dynamic op."""
    gt_bboxes, gt_labels = make_gt('mixed', seed=12)
    extra = {}
    if padded:
        gt_bboxes, gt_labels, valid = pad_gt_list(gt_bboxes, gt_labels, 32)
        extra = dict(gt_valid=valid)
    outs = random_head_outputs(4, seed=13)
    run_losses(hpu, outs, gt_bboxes, gt_labels, 4, **extra)  # warm the caches
    (losses, _), counts = count_host_reads(
        lambda: run_losses(hpu, outs, gt_bboxes, gt_labels, 4, **extra))
    assert counts == dict(scalar=0, bulk=0, dynamic=0)
    assert total(losses) > 0


def assert_stock_loss_syncs(stock):
    """The counter used by :func:`assert_loss_is_static` sees the stock head's host reads."""
    gt_bboxes, gt_labels = make_gt('one', seed=1)
    outs = random_head_outputs(2, seed=1)
    _, counts = count_host_reads(lambda: stock.loss(*outs, gt_bboxes, gt_labels, img_metas(2)))
    assert counts['scalar'] > 0 and counts['dynamic'] > 0


def assert_loss_has_no_graph_break(hpu):
    """``torch._dynamo.explain`` of the loss on padded GT: no graph break."""
    torch._dynamo.reset()
    boxes, labels, valid = pad_gt_list(*make_gt('mixed', seed=15), 32)
    outs = random_head_outputs(4, seed=16)
    explanation = torch._dynamo.explain(hpu.loss)(*outs, boxes, labels, img_metas(4),
                                                  gt_valid=valid)
    assert explanation.graph_count >= 1
    assert explanation.graph_break_count == 0, explanation.break_reasons


def assert_refuses(base_cfg, hpu_type, option, value, match):
    """Building ``hpu_type`` with ``option=value`` raises an error matching ``match``."""
    cfg = dict(copy.deepcopy(base_cfg), type=hpu_type)
    cfg[option] = value
    with pytest.raises((TypeError, ValueError), match=match):
        build_head(cfg)


def reduce_mean_arguments(monkeypatch, head_module, hpu):
    """The tensors ``hpu.loss`` passes to ``head_module.reduce_mean`` (many boxes, 2 images)."""
    seen = []

    def recording_reduce_mean(tensor):
        seen.append(tensor)
        return tensor

    monkeypatch.setattr(head_module, 'reduce_mean', recording_reduce_mean)
    gt_bboxes, gt_labels = make_gt('many', seed=1)
    hpu.loss(*random_head_outputs(2, seed=1), gt_bboxes, gt_labels, img_metas(2))
    return seen


def count_nms_calls(monkeypatch):
    """Count ``nms_keep_mask`` calls and record whether each torchvision NMS ran inside one.

    Returns:
        tuple[list, list]: one entry per NMS op call; one bool per ``torchvision.ops.nms`` call
        (True: inside the op). Both fill as the patched functions run.
    """
    ops, calls, active = [], [], []
    real_op, real_nms = static_postprocess.nms_keep_mask, torchvision.ops.nms

    def counting_op(*args):
        ops.append(1)
        active.append(1)
        try:
            return real_op(*args)
        finally:
            active.pop()

    monkeypatch.setattr(static_postprocess, 'nms_keep_mask', counting_op)
    monkeypatch.setattr(torchvision.ops, 'nms',
                        lambda *args: calls.append(bool(active)) or real_nms(*args))
    return ops, calls
