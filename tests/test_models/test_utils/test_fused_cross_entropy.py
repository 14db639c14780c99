"""The channel-first cross-entropy against F.cross_entropy: value and gradient."""
import pytest
import torch
import torch.nn.functional as F

from mmdet_hpu.models.utils.fused_cross_entropy import cross_entropy_maps


@pytest.mark.parametrize('scale', [1.0, 30.0])  # 30: logits far apart (max subtraction)
def test_equals_torch_cross_entropy(scale):
    gen = torch.Generator().manual_seed(int(scale))
    logits = (torch.randn(6, 81, 50, generator=gen) * scale).requires_grad_()
    labels = torch.randint(0, 81, (6, 50), generator=gen)
    upstream = torch.rand(6, 50, generator=gen) * (torch.rand(6, 50, generator=gen) > 0.5)
    expected = F.cross_entropy(logits, labels, reduction='none')
    (expected_grad,) = torch.autograd.grad((expected * upstream).sum(), logits)
    actual = cross_entropy_maps(logits, labels)
    (grad,) = torch.autograd.grad((actual * upstream).sum(), logits)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-4, atol=1e-7)


def test_refuses_a_second_backward():
    logits = torch.randn(2, 5, 3, requires_grad=True)
    loss = cross_entropy_maps(logits, torch.zeros(2, 3, dtype=torch.long)).sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match='inplace operation'):
        loss.backward()
