"""Ground-truth scenarios and checks shared by the static FCOS / ATSS head tests."""
import numpy as np
import torch

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
