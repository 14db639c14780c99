"""Shared static candidate selection and the grouped NMS op, against brute-force references."""
import pytest
import torch
import torchvision

from mmdet_hpu.models.utils import dense_static_inference as dsi
from mmdet_hpu.models.utils import static_postprocess


def reference_candidates(cls_map, num_base, num_classes, use_sigmoid, score_thr, nms_pre):
    """Per image, the set of (anchor, label, score) stock's filter_scores_and_topk keeps."""
    num_imgs, channels, height, width = cls_map.shape
    scores = cls_map.permute(0, 2, 3, 1).reshape(num_imgs, -1, channels // num_base)
    scores = scores.sigmoid() if use_sigmoid else scores.softmax(-1)[..., :num_classes]
    kept = []
    for img_scores in scores:
        flat = img_scores.reshape(-1)
        inds = (flat > score_thr).nonzero().squeeze(1)
        order = flat[inds].sort(descending=True).indices
        inds = inds[order] if nms_pre <= 0 else inds[order][:nms_pre]
        kept.append({(int(i) // num_classes, int(i) % num_classes): float(flat[i])
                     for i in inds})
    return kept


@pytest.mark.parametrize('num_base,height,num_classes,use_sigmoid,nms_pre', [
    (1, 12, 80, True, 50),  # anchor, cell and pair stages (K < A_l)
    (1, 5, 80, True, 50),  # K >= A_l: every anchor, cell and pair stages
    (1, 3, 80, True, 200),  # small level: every pair ranked at once
    (3, 9, 12, True, 40),  # several base priors per position
    (4, 7, 7, False, 60),  # softmax with background, prime C (cells of one class)
    (1, 4, 6, True, -1),  # nms_pre <= 0: every pair
])
def test_select_level_candidates_equals_stock_filter(num_base, height, num_classes,
                                                     use_sigmoid, nms_pre):
    gen = torch.Generator().manual_seed(height * 7 + num_classes)
    depth = num_classes if use_sigmoid else num_classes + 1
    cls_map = torch.randn(3, num_base * depth, height, height + 1, generator=gen) * 2 - 2
    score_thr = 0.3 if use_sigmoid else 0.1
    scores, anchors, labels, valid = dsi.select_level_candidates(
        cls_map, num_base, num_classes, use_sigmoid, score_thr, nms_pre)
    expected = reference_candidates(cls_map, num_base, num_classes, use_sigmoid, score_thr,
                                    nms_pre)
    num_pairs = num_base * height * (height + 1) * num_classes
    assert scores.shape[1] == (num_pairs if nms_pre <= 0 else min(nms_pre, num_pairs))
    for img, exp in enumerate(expected):
        assert 0 < len(exp)
        got = {(int(a), int(c)): float(s) for a, c, s, v in
               zip(anchors[img], labels[img], scores[img], valid[img]) if v}
        assert got.keys() == exp.keys()
        for key, value in exp.items():
            assert got[key] == pytest.approx(value, abs=1e-6)
    if nms_pre > 0:  # some images have more passing pairs than K: the cut is exercised
        assert any(len(exp) == nms_pre for exp in expected)


def test_class_group_size_is_the_divisor_closest_to_the_square_root():
    assert [dsi.class_group_size(c) for c in (80, 20, 7, 1, 12)] == [8, 4, 1, 1, 3]


def test_boxes_apart_by_group_shifts_by_the_images_boxes_and_keeps_groups_apart():
    boxes = torch.tensor([[5., 6., 9., 8.], [7., 2., 12., 4.], [6., 5., 10., 7.]])
    groups = torch.tensor([0, 2, 1])
    shifted = static_postprocess.boxes_apart_by_group(boxes, groups)
    # low 2, span 12 - 2 + 1 = 11.
    assert torch.equal(shifted, boxes - 2 + (groups * 11.0)[:, None])
    overlaps = torchvision.ops.box_iou(shifted, shifted)
    assert torch.equal(overlaps > 0, torch.eye(3, dtype=torch.bool))  # boxes 0 and 2 overlap


def test_nms_keep_mask_ignores_invalid_candidates_also_for_the_shift():
    """An invalid far-away box must not widen the span: the result is NMS of the valid boxes."""
    boxes = torch.tensor([[[0., 0., 10., 10.], [1., 0., 11., 10.], [-1e4, -1e4, 1e4, 1e4],
                           [0., 1., 10., 11.]]])
    scores = torch.tensor([[0.9, 0.8, 0.99, 0.7]])
    labels = torch.tensor([[0, 0, 1, 1]])
    valid = torch.tensor([[True, True, False, True]])
    kept = static_postprocess.nms_keep_mask(boxes, scores, labels, valid, 0.5)
    assert kept.tolist() == [[True, False, False, True]]
    agnostic = static_postprocess.nms_keep_mask(boxes, scores, torch.zeros_like(labels), valid,
                                                0.5)
    assert agnostic.tolist() == [[True, False, False, False]]


def grouped_candidates(num_imgs=2, k=900, num_classes=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(num_imgs, k, 2, generator=gen) * 300
    boxes = torch.cat([xy, xy + torch.rand(num_imgs, k, 2, generator=gen) * 60 + 1], -1)
    scores = torch.rand(num_imgs, k, generator=gen)
    labels = torch.randint(0, num_classes, (num_imgs, k), generator=gen)
    valid = torch.rand(num_imgs, k, generator=gen) > 0.2
    return boxes, scores, labels, valid


def test_grouped_nms_keeps_what_one_nms_over_the_valid_candidates_keeps(monkeypatch):
    boxes, scores, labels, valid = grouped_candidates()
    assert (valid.sum(1) > static_postprocess.GROUPED_NMS_MIN).all()  # the grouped path
    kept = static_postprocess.nms_keep_mask(boxes, scores, labels, valid, 0.5)
    for img in range(2):
        inds = valid[img].nonzero().squeeze(1)
        nms_boxes = static_postprocess.boxes_apart_by_group(boxes[img, inds], labels[img, inds])
        expected = torch.zeros_like(valid[img])
        expected[inds[torchvision.ops.nms(nms_boxes, scores[img, inds], 0.5)]] = True
        assert torch.equal(kept[img], expected)
        # Same as NMS per (image, class) on the original boxes.
        keep = torchvision.ops.batched_nms(boxes[img, inds], scores[img, inds],
                                           labels[img, inds], 0.5)
        assert set(inds[keep].tolist()) == set(kept[img].nonzero().squeeze(1).tolist())
    assert not (kept & ~valid).any()
    # The one-call path (below the threshold) gives the same mask.
    monkeypatch.setattr(static_postprocess, 'GROUPED_NMS_MIN', 10 ** 9)
    assert torch.equal(static_postprocess.nms_keep_mask(boxes, scores, labels, valid, 0.5), kept)


def test_nms_keep_mask_compiles_with_static_shapes():
    boxes, scores, labels, valid = grouped_candidates(k=40, seed=1)
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    fn = torch.compile(static_postprocess.batched_nms_fixed, backend=backend, fullgraph=True,
                       dynamic=False)
    dets, det_labels, num_dets = fn(boxes, scores, labels, valid, 5, 0.5, 10)
    assert len(graphs) == 1 and dets.shape == (2, 10, 5) and num_dets.shape == (2, )
    expected = static_postprocess.batched_nms_fixed(boxes, scores, labels, valid, 5, 0.5, 10)
    assert torch.equal(num_dets, expected[2]) and torch.equal(dets, expected[0])


def test_select_level_candidates_of_a_large_level_compiles_in_one_graph():
    """A level with more than DIRECT_TOPK_FACTOR x K pairs takes the three-top-k path, which
    sizes its class groups in Python: that must not break the graph (``min(key=...)`` did)."""
    num_base, num_classes, nms_pre = 9, 80, 50
    gen = torch.Generator().manual_seed(0)
    cls_map = torch.randn(2, num_base * num_classes, 8, 8, generator=gen)
    assert num_base * num_classes * 64 > dsi.DIRECT_TOPK_FACTOR * nms_pre
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    fn = torch.compile(dsi.select_level_candidates, backend=backend, fullgraph=True, dynamic=False)
    compiled = fn(cls_map, num_base, num_classes, True, 0.05, nms_pre)
    eager = dsi.select_level_candidates(cls_map, num_base, num_classes, True, 0.05, nms_pre)
    assert len(graphs) == 1
    for got, want in zip(compiled, eager):
        assert torch.equal(got, want)
