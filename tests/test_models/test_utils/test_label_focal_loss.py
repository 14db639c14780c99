"""The label focal loss (every dense head's) against mmdet's py_sigmoid_focal_loss."""
import pytest
import torch
from mmdet.models.losses.focal_loss import py_sigmoid_focal_loss

from mmdet_hpu.models.utils.label_focal_loss import label_focal_loss_sum


def stock_sum(logits, labels, weights, gamma, alpha):
    """mmdet's CPU path on the flattened logits, as a dense head's loss_single feeds it."""
    num_classes = logits.shape[1] // (labels.shape[1] // (logits.shape[2] * logits.shape[3]))
    flat = logits.permute(0, 2, 3, 1).reshape(-1, num_classes)
    one_hot = (labels.reshape(-1)[:, None] == torch.arange(num_classes)).long()
    flat_weights = None if weights is None else weights.reshape(-1)
    return py_sigmoid_focal_loss(flat, one_hot, flat_weights, gamma=gamma, alpha=alpha,
                                 reduction='sum')


@pytest.mark.parametrize('num_priors', [1, 3])
@pytest.mark.parametrize('weighted', [False, True])
@pytest.mark.parametrize('gamma,alpha', [(2.0, 0.25), (1.5, 0.5), (0.0, 0.75), (3.0, 0.1),
                                         (2.0, 1.0)])
def test_equals_mmdet_value_and_gradient(num_priors, weighted, gamma, alpha):
    gen = torch.Generator().manual_seed(num_priors * 7 + int(weighted) + int(gamma * 10))
    num_imgs, num_classes, h, w = 2, 6, 5, 7
    logits = (torch.randn(num_imgs, num_priors * num_classes, h, w, generator=gen) * 6
              ).requires_grad_()
    labels = torch.randint(0, num_classes + 1, (num_imgs, h * w * num_priors), generator=gen)
    labels[0, :4] = num_classes  # background ...
    labels[1, :4] = 0  # ... and the first class, on the first locations
    weights = None
    if weighted:  # ATSS: zero outside the image, pos_weight at positives
        weights = torch.rand(num_imgs, h * w * num_priors, generator=gen)
        weights[:, ::5] = 0
    scale = 0.37  # stands for loss_weight / avg_factor: the backward gets a grad_output
    expected = stock_sum(logits, labels, weights, gamma, alpha)
    (expected_grad,) = torch.autograd.grad(expected * scale, logits)
    actual = label_focal_loss_sum(logits, labels, weights, gamma, alpha)
    (grad,) = torch.autograd.grad(actual * scale, logits)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=0)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-4, atol=1e-7)
    assert grad.is_contiguous()  # the maps' own layout: accumulating it is a plain add


@pytest.mark.parametrize('gamma,alpha', [(2.0, 0.25), (1.5, 0.5), (0.0, 0.75), (3.0, 0.1)])
def test_flat_logits_equal_mmdet_value_and_gradient(gamma, alpha):
    """(N, C) logits, as RetinaNet's stock-layout fallback had them, viewed as (1, N * C, 1, 1)."""
    gen = torch.Generator().manual_seed(int(gamma * 10 + alpha * 100))
    logits = (torch.randn(300, 7, generator=gen) * 6).requires_grad_()
    labels = torch.randint(0, 8, (300,), generator=gen)  # 7 = background
    one_hot = labels[:, None] == torch.arange(7)
    weights = torch.rand(300, generator=gen) * (torch.rand(300, generator=gen) > 0.2)
    expected = py_sigmoid_focal_loss(logits, one_hot.long(), weights, gamma=gamma, alpha=alpha,
                                     reduction='sum')
    (expected_grad,) = torch.autograd.grad(expected, logits)
    actual = label_focal_loss_sum(logits.reshape(1, -1, 1, 1), labels[None], weights[None],
                                  gamma, alpha)
    (grad,) = torch.autograd.grad(actual, logits)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=0)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-4, atol=1e-7)


def test_all_background_and_extreme_logits():
    logits = torch.tensor([-120.0, -30.0, -4.6, 0.0, 4.6, 30.0, 120.0]).repeat(2, 3, 1)
    logits = logits.reshape(2, 3, 1, 7).requires_grad_()  # (B, C, h, w), C = 3
    for labels in (torch.full((2, 7), 3), torch.tensor([[0, 1, 2, 3, 0, 1, 2]] * 2)):
        expected = stock_sum(logits, labels, None, 2.0, 0.25)
        (expected_grad,) = torch.autograd.grad(expected, logits)
        actual = label_focal_loss_sum(logits, labels, None, 2.0, 0.25)
        (grad,) = torch.autograd.grad(actual, logits)
        assert torch.isfinite(actual) and torch.isfinite(grad).all()
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=0)
        torch.testing.assert_close(grad, expected_grad, rtol=1e-4, atol=1e-7)


def test_second_backward_through_a_retained_graph_raises_instead_of_scaling_twice():
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(1, 4, 3, 3, generator=gen).requires_grad_()
    labels = torch.randint(0, 5, (1, 9), generator=gen)
    loss = label_focal_loss_sum(logits, labels, None, 2.0, 0.25)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match='inplace operation'):
        loss.backward()


@pytest.mark.parametrize('gamma', [2.0, 1.5])
def test_forward_without_grad_gives_the_same_loss(gamma):
    gen = torch.Generator().manual_seed(5)
    logits = (torch.randn(2, 6, 3, 4, generator=gen) * 4).requires_grad_()
    labels = torch.randint(0, 4, (2, 24), generator=gen)
    weights = torch.rand(2, 24, generator=gen)
    loss = label_focal_loss_sum(logits, labels, weights, gamma, 0.25)
    with torch.no_grad():
        no_grad = label_focal_loss_sum(logits, labels, weights, gamma, 0.25)
    detached = label_focal_loss_sum(logits.detach(), labels, weights, gamma, 0.25)
    assert not no_grad.requires_grad and not detached.requires_grad
    torch.testing.assert_close(no_grad, loss.detach(), rtol=1e-6, atol=0)
    torch.testing.assert_close(detached, loss.detach(), rtol=1e-6, atol=0)
