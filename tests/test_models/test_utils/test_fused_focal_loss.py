"""The fused focal loss against mmdet's py_sigmoid_focal_loss: value and gradient."""
import pytest
import torch
from mmdet.models.losses.focal_loss import py_sigmoid_focal_loss

from mmdet_hpu.models.utils.fused_focal_loss import sigmoid_focal_loss_sum


@pytest.mark.parametrize('gamma,alpha', [(2.0, 0.25), (1.5, 0.5), (0.0, 0.75), (3.0, 0.1)])
def test_equals_mmdet_value_and_gradient(gamma, alpha):
    gen = torch.Generator().manual_seed(int(gamma * 10 + alpha * 100))
    logits = (torch.randn(300, 7, generator=gen) * 6).requires_grad_()
    labels = torch.randint(0, 8, (300,), generator=gen)  # 7 = background
    one_hot = labels[:, None] == torch.arange(7)
    weights = torch.rand(300, generator=gen) * (torch.rand(300, generator=gen) > 0.2)
    expected = py_sigmoid_focal_loss(logits, one_hot.long(), weights, gamma=gamma, alpha=alpha,
                                     reduction='sum')
    (expected_grad,) = torch.autograd.grad(expected, logits)
    actual = sigmoid_focal_loss_sum(logits, one_hot, weights[:, None], gamma, alpha)
    (grad,) = torch.autograd.grad(actual, logits)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=0)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-4, atol=1e-7)
