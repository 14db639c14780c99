"""all_anchors_valid against stock's valid_flags and anchor_inside_flags."""
import math

import pytest
import torch
from mmdet.core import anchor_inside_flags
from mmdet.core.anchor import AnchorGenerator

from mmdet_hpu.models.utils.anchor_validity import all_anchors_valid

GENERATOR = AnchorGenerator(strides=[8, 16, 32, 64], ratios=[0.5, 1.0, 2.0], scales=[4])
CANVAS = (128, 160)  # the batch's padded input (h, w): feature maps cover ceil(canvas / s)


def featmap_sizes(canvas):
    return [(math.ceil(canvas[0] / s), math.ceil(canvas[1] / s)) for s in (8, 16, 32, 64)]


def stock_keeps_all(pad_shapes, img_shape, border):
    sizes = featmap_sizes(CANVAS)
    anchors = torch.cat(GENERATOR.grid_priors(sizes, device='cpu'))
    for pad in pad_shapes:
        valid = torch.cat(GENERATOR.valid_flags(sizes, pad, device='cpu'))
        if not anchor_inside_flags(anchors, valid, img_shape, border).all():
            return False
    return True


@pytest.mark.parametrize('pad_shapes,keeps_all', [
    ([(128, 160), (128, 160)], True),  # fixed canvas
    ([(128, 160), (121, 153)], True),  # a smaller pad that still covers the same feature maps
    ([(128, 160), (120, 160)], False),  # one row of stride-8 cells short
    ([(128, 160), (128, 96)], False),  # one image padded to fewer columns
    ([(100, 33)], False),  # odd sizes
])
def test_agrees_with_stock_valid_flags(pad_shapes, keeps_all):
    metas = [dict(pad_shape=(*pad, 3)) for pad in pad_shapes]
    assert stock_keeps_all(pad_shapes, CANVAS, -1) == keeps_all
    assert all_anchors_valid(featmap_sizes(CANVAS), GENERATOR.strides, metas, -1) == keeps_all


def test_a_non_negative_border_is_always_decided_per_anchor():
    metas = [dict(pad_shape=(*CANVAS, 3))]
    assert not all_anchors_valid(featmap_sizes(CANVAS), GENERATOR.strides, metas, 0)
    assert all_anchors_valid(featmap_sizes(CANVAS), GENERATOR.strides, metas, -1)
