"""The fused focal loss against mmdet's py_sigmoid_focal_loss: value and gradient."""
import pytest
import torch
from mmdet.models.losses.focal_loss import py_sigmoid_focal_loss

from mmdet_hpu.models.utils.fused_focal_loss import sigmoid_focal_loss_maps, sigmoid_focal_loss_sum


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


@pytest.mark.parametrize('gamma,alpha', [(2.0, 0.25), (1.5, 0.5), (0.0, 0.75), (3.0, 0.1)])
def test_maps_version_equals_mmdet_on_the_permuted_logits(gamma, alpha):
    """(B, n * C, h, w) maps with index labels, as the RetinaNet head calls it."""
    gen = torch.Generator().manual_seed(int(gamma * 10 + alpha * 100))
    num_imgs, num_base, num_classes, feat_h, feat_w = 2, 3, 7, 5, 10
    cells = feat_h * feat_w
    maps = (torch.randn(num_imgs, num_base * num_classes, feat_h, feat_w, generator=gen) * 6)
    maps.requires_grad_()
    # Anchor order cell * n + base; label num_classes = background.
    labels = torch.randint(0, num_classes + 1, (num_imgs, cells * num_base), generator=gen)
    weights = torch.rand(num_imgs, cells * num_base, generator=gen) * 2
    weights[torch.rand(weights.shape, generator=gen) < 0.2] = 0
    logits = maps.permute(0, 2, 3, 1).reshape(-1, num_classes)
    one_hot = labels.reshape(-1)[:, None] == torch.arange(num_classes)
    expected = py_sigmoid_focal_loss(logits, one_hot.long(), weights.reshape(-1), gamma=gamma,
                                     alpha=alpha, reduction='sum')
    (expected_grad,) = torch.autograd.grad(expected, maps)

    def channel_first(t):
        return t.reshape(num_imgs, cells, num_base).transpose(1, 2)[:, :, None]

    actual = sigmoid_focal_loss_maps(maps.view(num_imgs, num_base, num_classes, cells),
                                     channel_first(labels), channel_first(weights), gamma, alpha)
    (grad,) = torch.autograd.grad(actual, maps)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=0)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-4, atol=1e-7)
    assert grad.is_contiguous()  # the maps' own layout: accumulating it is a plain add


def test_maps_version_refuses_a_second_backward_and_skips_the_gradient_without_grad():
    maps = torch.randn(1, 6, 2, 2, requires_grad=True)
    labels = torch.tensor([0, 3, 1, 2, 3, 0, 2, 1]).reshape(1, 2, 1, 4)
    weights = torch.ones(1, 2, 1, 4)
    loss = sigmoid_focal_loss_maps(maps.view(1, 2, 3, 4), labels, weights, 2.0, 0.25)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match='inplace operation'):
        loss.backward()
    with torch.no_grad():
        again = sigmoid_focal_loss_maps(maps.view(1, 2, 3, 4), labels, weights, 2.0, 0.25)
    torch.testing.assert_close(again, loss.detach())
