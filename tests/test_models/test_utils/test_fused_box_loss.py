"""The fused box-loss sums against mmdet's smooth_l1_loss / l1_loss: value and gradient."""
import pytest
import torch
from mmdet.models.losses import l1_loss, smooth_l1_loss

from mmdet_hpu.models.utils.fused_box_loss import smooth_l1_sum


@pytest.mark.parametrize('beta', [1.0, 0.11, 0.0])  # 0: L1
@pytest.mark.parametrize('dims', [(1, 2, 3), (0, 1, 2, 3)])
def test_equals_mmdet(beta, dims):
    gen = torch.Generator().manual_seed(int(beta * 100) + len(dims))
    pred = (torch.randn(3, 2, 4, 30, generator=gen) * 2).requires_grad_()
    # Targets and weights as the heads pass them: channel-first views of (B, A, 4) tensors.
    target = torch.randn(3, 30, 2, 4, generator=gen).permute(0, 2, 3, 1)
    target[0, 0, 0, :3] = pred[0, 0, 0, :3].detach() + beta  # |diff| exactly beta
    weight = (torch.rand(3, 30, 2, 1, generator=gen) > 0.5).float().expand(3, 30, 2, 4)
    weight = weight.permute(0, 2, 3, 1)
    upstream = torch.rand(3, generator=gen)[:, None, None, None].sum(dim=dims)
    if beta > 0:
        elementwise = smooth_l1_loss(pred, target, beta=beta, reduction='none')
    else:
        elementwise = l1_loss(pred, target, reduction='none')
    expected = (elementwise * weight).sum(dim=dims)
    (expected_grad,) = torch.autograd.grad((expected * upstream).sum(), pred)
    actual = smooth_l1_sum(pred, target, weight, beta, dims)
    (grad,) = torch.autograd.grad((actual * upstream).sum(), pred)
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-6, atol=1e-7)
    assert grad.is_contiguous()
