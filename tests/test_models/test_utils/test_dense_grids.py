"""Per-level point / anchor grids rebuild the priors' coordinates exactly (the separable targets
and the ATSS assigner rely on it)."""
import pytest
import torch
from mmdet.core.anchor import AnchorGenerator, MlvlPointGenerator

from mmdet_hpu.models.utils.static_atss_assigner import anchor_grids
from mmdet_hpu.models.utils.static_point_targets import point_grids

SIZES = [(7, 5), (4, 3), (1, 2)]


@pytest.mark.parametrize('offset', [0.0, 0.5])
def test_point_grids_rebuild_grid_priors(offset):
    generator = MlvlPointGenerator([8, 16, 32], offset=offset)
    mlvl_points = generator.grid_priors(SIZES, dtype=torch.float32, device='cpu')
    grids = point_grids(mlvl_points, SIZES, torch.rand(3, 2), torch.rand(3))
    for points, grid, (h, w) in zip(mlvl_points, grids, SIZES):
        rebuilt = torch.stack((grid.xs[None, :].expand(h, w), grid.ys[:, None].expand(h, w)), -1)
        assert torch.equal(rebuilt.reshape(-1, 2), points)


@pytest.mark.parametrize('ratios,scales', [([1.0], 1), ([0.5, 1.0, 2.0], 2)])
def test_anchor_grids_rebuild_grid_priors(ratios, scales):
    generator = AnchorGenerator(strides=[8, 16, 32], ratios=ratios, octave_base_scale=4,
                                scales_per_octave=scales)
    mlvl_anchors = generator.grid_priors(SIZES, device='cpu')
    for anchors, grid, (h, w) in zip(mlvl_anchors, anchor_grids(mlvl_anchors, SIZES), SIZES):
        num_priors = grid.xs.shape[1]
        xs = grid.xs[None].expand(h, w, num_priors, 2)
        ys = grid.ys[:, None].expand(h, w, num_priors, 2)
        rebuilt = torch.stack((xs[..., 0], ys[..., 0], xs[..., 1], ys[..., 1]), -1)
        assert torch.equal(rebuilt.reshape(-1, 4), anchors)
