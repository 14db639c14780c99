"""The channel-first cross-entropy against F.cross_entropy: value and gradient, on the CPU path
(``exp2``) and on the path other devices take (``exp``)."""
import pytest
import torch
import torch.nn.functional as F
from dispatched_dtypes import dispatched_dtypes

from mmdet_hpu.models.utils.fused_cross_entropy import cross_entropy_maps


@pytest.mark.parametrize('scale', [1.0, 30.0])  # 30: logits far apart (max subtraction)
def test_equals_torch_cross_entropy(scale, speedups):
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


def test_dominant_label_loss_stays_accurate(speedups):
    """A label 25 to 40 above the others has a loss below 1e-7: it must come out within 1e-7 of
    the float64 value, as F.cross_entropy's does (shifting by ``max * log2(e)`` inside one fused
    op, instead of scaling the difference, would be off by ~1.3e-6 here)."""
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(4, 81, 30, generator=gen)
    logits[:, 7] += torch.linspace(25, 40, 30)
    labels = torch.full((4, 30), 7)
    expected = F.cross_entropy(logits.double(), labels, reduction='none')
    assert expected.max() < 1e-7
    torch.testing.assert_close(cross_entropy_maps(logits, labels).double(), expected, rtol=0,
                               atol=1e-7)


def test_cpu_path_alone_uses_exp2(speedups):
    logits = torch.randn(2, 5, 3)
    ops = {op for op, _ in dispatched_dtypes(
        lambda: cross_entropy_maps(logits, torch.zeros(2, 3, dtype=torch.long)))}
    assert ('aten.exp2_.default' in ops) == (speedups == 'cpu path')
    assert ('aten.exp_.default' in ops) == (speedups == 'device path')


def test_refuses_a_second_backward():
    logits = torch.randn(2, 5, 3, requires_grad=True)
    loss = cross_entropy_maps(logits, torch.zeros(2, 3, dtype=torch.long)).sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match='inplace operation'):
        loss.backward()
