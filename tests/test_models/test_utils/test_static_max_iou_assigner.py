"""The batched static MaxIoUAssigner against mmdet's MaxIoUAssigner, image by image."""
import itertools

import pytest
import torch
from dispatched_dtypes import byte_ops_and_dtype_views
from mmdet.core.bbox.assigners import ATSSAssigner, MaxIoUAssigner
from mmdet.core.bbox.iou_calculators import bbox_overlaps

from mmdet_hpu.errors import ConfigError
from mmdet_hpu.models.utils.gt_padding import pad_gt_list
from mmdet_hpu.models.utils.static_max_iou_assigner import StaticMaxIoUAssigner, pairwise_iou

IMG = 64.0


def grid_anchors(step=8.0, sizes=(8.0, 16.0, 32.0)):
    """Anchors on a grid: many exact IoU ties between anchors and with grid-aligned boxes."""
    centres = torch.arange(step / 2, IMG, step)
    cy, cx = torch.meshgrid(centres, centres, indexing='ij')
    out = []
    for size in sizes:
        half = size / 2
        out.append(torch.stack([cx - half, cy - half, cx + half, cy + half], -1).reshape(-1, 4))
    return torch.cat(out)


def random_boxes(num, gen, low=1.0, high=40.0):
    wh = torch.rand(num, 2, generator=gen) * (high - low) + low
    xy = torch.rand(num, 2, generator=gen) * (IMG - wh)
    return torch.cat([xy, xy + wh], dim=1)


def scenario_boxes(gen):
    """One batch: no box, one, many, border, tiny, duplicates (IoU ties), grid-aligned ties."""
    dup = random_boxes(1, gen)
    aligned = torch.tensor([[0.0, 0.0, 16.0, 16.0], [8.0, 8.0, 24.0, 24.0],
                            [4.0, 4.0, 12.0, 12.0]])
    return [
        torch.zeros(0, 4),
        random_boxes(1, gen),
        random_boxes(30, gen),
        torch.tensor([[0.0, 0.0, IMG, IMG], [0.0, 0.0, 5.0, 7.0], [IMG - 3, IMG - 9, IMG, IMG]]),
        random_boxes(6, gen, 0.2, 2.0),
        torch.cat([dup, dup, random_boxes(2, gen), dup]),
        aligned,
    ]


OPTIONS = list(itertools.product(
    [0.5, 0.4],                       # pos_iou_thr
    [0.4, (0.0, 0.3), (0.1, 0.5)],    # neg_iou_thr (float, tuples)
    [0.0, 0.3],                       # min_pos_iou
    [True, False],                    # gt_max_assign_all
    [True, False],                    # match_low_quality
))


@pytest.mark.parametrize('pos,neg,min_pos,assign_all,low_quality', OPTIONS)
def test_equals_stock_for_every_option(pos, neg, min_pos, assign_all, low_quality, speedups):
    stock = MaxIoUAssigner(pos_iou_thr=pos, neg_iou_thr=neg, min_pos_iou=min_pos,
                           gt_max_assign_all=assign_all, match_low_quality=low_quality)
    static = StaticMaxIoUAssigner(stock)
    gen = torch.Generator().manual_seed(OPTIONS.index((pos, neg, min_pos, assign_all,
                                                       low_quality)))
    boxes = scenario_boxes(gen)
    labels = [torch.zeros(len(b), dtype=torch.long) for b in boxes]
    anchors = grid_anchors()
    # Some anchors do not take part (stock: not inside the image), different per image.
    inside = torch.rand(len(boxes), anchors.shape[0], generator=gen) > 0.2
    padded, _, valid = pad_gt_list(boxes, labels, 32)
    assigned, max_overlaps = static.assign(anchors, padded, valid, inside)
    for i, gt in enumerate(boxes):
        expected = torch.full((anchors.shape[0],), -1, dtype=torch.long)
        result = stock.assign(anchors[inside[i]], gt)
        expected[inside[i]] = result.gt_inds
        assert torch.equal(assigned[i], expected), i
        expected_max = torch.zeros(anchors.shape[0])
        expected_max[inside[i]] = result.max_overlaps
        assert torch.equal(max_overlaps[i], expected_max), i
    assert (assigned > 0).any() and (assigned == 0).any()


def test_padded_rows_never_become_positives():
    stock = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0.0)
    anchors = grid_anchors()
    # Padding rows that look like real boxes, overlapping anchors perfectly: still invisible.
    boxes = anchors[:8].clone()[None]
    valid = torch.tensor([[True, False, False, False, False, False, False, False]])
    assigned, _ = StaticMaxIoUAssigner(stock).assign(anchors, boxes, valid)
    assert torch.equal(assigned.unique(), torch.tensor([0, 1])), assigned.unique()
    expected = stock.assign(anchors, boxes[0, :1]).gt_inds
    assert torch.equal(assigned[0], expected)


def test_image_without_gt_is_all_negative_whatever_the_padding():
    stock = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=(0.1, 0.4), min_pos_iou=0.0)
    anchors = grid_anchors()
    assigned, max_overlaps = StaticMaxIoUAssigner(stock).assign(
        anchors, anchors[:16][None], torch.zeros(1, 16, dtype=torch.bool))
    assert torch.equal(assigned, torch.zeros_like(assigned))
    assert torch.equal(max_overlaps, torch.zeros_like(max_overlaps))


def test_unsupported_options_are_refused_with_the_alternative():
    with pytest.raises(ConfigError, match='ignore_iof_thr'):
        StaticMaxIoUAssigner(MaxIoUAssigner(0.5, 0.4, ignore_iof_thr=0.5))
    with pytest.raises(ConfigError, match='iou_calculator'):
        StaticMaxIoUAssigner(MaxIoUAssigner(0.5, 0.4, iou_calculator=dict(
            type='BboxOverlaps2D', scale=512., dtype='fp16')))
    with pytest.raises(ConfigError, match='MaxIoUAssigner.*stock head'):
        StaticMaxIoUAssigner(ATSSAssigner(topk=9))


@pytest.mark.parametrize('grid', [False, True])
def test_pairwise_iou_is_bitwise_mmdet_bbox_overlaps(grid):
    gen = torch.Generator().manual_seed(int(grid))
    gt = torch.rand(3, 7, 4, generator=gen) * 60
    gt[..., 2:] += gt[..., :2]
    anchors = torch.rand(500, 4, generator=gen) * 60
    anchors[:, 2:] += anchors[:, :2]
    if grid:  # integer corners: many exact ties
        gt, anchors = gt.round(), anchors.round()
    gt[0, 0] = torch.tensor([5.0, 5.0, 5.0, 5.0])  # zero area: the eps of the union
    expected = bbox_overlaps(gt, anchors.expand(3, 500, 4))
    assert torch.equal(pairwise_iou(gt, anchors), expected)
    assert torch.equal(pairwise_iou(gt, anchors.expand(3, 500, 4).clone()), expected)


@pytest.mark.parametrize('num_gts', [1, 8, 300])  # 300: over the 1-byte weights, plain max
def test_max_over_gts_is_torch_max_with_its_ties(num_gts, speedups):
    from mmdet_hpu.models.utils.static_max_iou_assigner import _max_over_gts
    gen = torch.Generator().manual_seed(num_gts)
    # Few distinct values: many ties between GT rows; -inf rows and anchors as the masks make.
    masked = torch.randint(0, 4, (3, num_gts, 50), generator=gen).float() / 4
    masked[:, num_gts // 2 + 1:] = float('-inf')
    masked[:, :, :5] = float('-inf')
    best, first = _max_over_gts(masked.clone())
    expected_best, expected_first = masked.max(dim=1)
    assert torch.equal(best, expected_best)
    assert torch.equal(first, expected_first)


@pytest.mark.parametrize('assign_all', [True, False])
def test_device_path_has_no_byte_arithmetic_or_dtype_views(assign_all, speedups):
    """What the devices get: no uint8 tensor and no dtype reinterpretation (the CPU path has
    both, which shows the recorder sees them)."""
    stock = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0.0,
                           gt_max_assign_all=assign_all)
    static = StaticMaxIoUAssigner(stock)
    gen = torch.Generator().manual_seed(0)
    boxes = scenario_boxes(gen)
    labels = [torch.zeros(len(b), dtype=torch.long) for b in boxes]
    padded, _, valid = pad_gt_list(boxes, labels, 32)
    byte_ops, dtype_views = byte_ops_and_dtype_views(
        lambda: static.assign(grid_anchors(), padded, valid, None))
    if speedups == 'device path':
        assert not byte_ops and not dtype_views
    else:
        assert byte_ops and dtype_views
