import pytest
import torch
from mmdet.core.bbox.transforms import distance2bbox

from mmdet_hpu.models.utils.point_box_coder import distance_to_boxes


@pytest.mark.parametrize('points_shape, distances_shape', [
    ((7, 2), (7, 4)), ((2, 50, 2), (2, 50, 4)), ((50, 2), (3, 50, 4)), ((0, 2), (0, 4))])
def test_distance_to_boxes_is_bit_identical_to_stock(points_shape, distances_shape):
    gen = torch.Generator().manual_seed(0)
    points = torch.rand(points_shape, generator=gen) * 640
    distances = torch.randn(distances_shape, generator=gen).abs() * 100
    distances.view(-1)[:3] = torch.tensor([0.0, 1e-30, 3e38])[:distances.numel()]
    assert torch.equal(distance_to_boxes(points, distances), distance2bbox(points, distances))


def test_distance_to_boxes_gradients_match_stock():
    points = torch.rand(2, 30, 2) * 100
    distances = torch.rand(2, 30, 4) * 20
    grads = []
    for decode in (distance_to_boxes, distance2bbox):
        leaf = distances.clone().requires_grad_()
        (decode(points, leaf) * torch.arange(4.0)).sum().backward()
        grads.append(leaf.grad)
    assert torch.equal(*grads)
