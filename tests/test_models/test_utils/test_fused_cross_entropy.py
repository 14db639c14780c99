"""The channel-first cross-entropy against F.cross_entropy: value and gradient, on the CPU path
(blocks of rows) and on the path other devices take (whole-tensor passes)."""
import pytest
import torch
import torch.nn.functional as F
from dispatched_dtypes import take_device_path
from torch.utils._python_dispatch import TorchDispatchMode

from mmdet_hpu.models.utils import fused_cross_entropy
from mmdet_hpu.models.utils.fused_cross_entropy import cross_entropy_maps


def _block_rows(monkeypatch, rows, logits):
    """Make the CPU path take ``rows`` rows of ``logits`` per block."""
    monkeypatch.setattr(fused_cross_entropy, 'CPU_BLOCK_BYTES',
                        rows * logits[0].numel() * logits.element_size())


@pytest.mark.parametrize('rows', [1, 4, 6])  # CPU path: blocks of 1, of 4 + 2, one block
@pytest.mark.parametrize('scale', [1.0, 30.0])  # 30: logits far apart (max subtraction)
@pytest.mark.parametrize('layout', ['contiguous', 'classes last in memory'])
def test_equals_torch_cross_entropy(scale, layout, rows, speedups, monkeypatch):
    gen = torch.Generator().manual_seed(int(scale))
    logits = torch.randn(6, 81, 50, generator=gen) * scale
    if layout != 'contiguous':
        logits = logits.transpose(1, 2).contiguous().transpose(1, 2)  # (6, 81, 50) view
    logits.requires_grad_()
    _block_rows(monkeypatch, rows, logits)
    labels = torch.randint(0, 81, (6, 50), generator=gen)
    upstream = torch.rand(6, 50, generator=gen) * (torch.rand(6, 50, generator=gen) > 0.5)
    expected = F.cross_entropy(logits, labels, reduction='none')
    (expected_grad,) = torch.autograd.grad((expected * upstream).sum(), logits)
    actual = cross_entropy_maps(logits, labels)
    (grad,) = torch.autograd.grad((actual * upstream).sum(), logits)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-4, atol=1e-7)


def test_dominant_label_loss_stays_accurate(speedups, monkeypatch):
    """A label 25 to 40 above the others has a loss below 1e-7: it must come out within 1e-7 of
    the float64 value, as F.cross_entropy's does (shifting by ``max * log2(e)`` inside one fused
    op, instead of scaling the difference, would be off by ~1.3e-6 here)."""
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(4, 81, 30, generator=gen)
    _block_rows(monkeypatch, 3, logits)
    logits[:, 7] += torch.linspace(25, 40, 30)
    labels = torch.full((4, 30), 7)
    expected = F.cross_entropy(logits.double(), labels, reduction='none')
    assert expected.max() < 1e-7
    torch.testing.assert_close(cross_entropy_maps(logits, labels).double(), expected, rtol=0,
                               atol=1e-7)


def _amax_calls(fn):
    calls = []

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket is torch.ops.aten.amax:
                calls.append(func)
            return func(*args, **(kwargs or {}))

    with Count():
        fn()
    return len(calls)


@pytest.mark.parametrize('classes', [81, 80, 2])  # odd and even: one class left out of the halves
@pytest.mark.parametrize('rows, blocks', [(1, 7), (3, 3), (7, 1), (100, 1)])
def test_cpu_path_runs_in_blocks_devices_in_one(rows, blocks, classes, monkeypatch):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(7, classes, 40, generator=gen) * 5
    logits[0, -1, :5] = 200.0  # the last class the best (exp overflows unless it is the peak)
    labels = torch.randint(0, classes, (7, 40), generator=gen)
    _block_rows(monkeypatch, rows, logits)
    blocked = cross_entropy_maps(logits, labels)
    assert _amax_calls(lambda: cross_entropy_maps(logits, labels)) == blocks
    take_device_path(monkeypatch)
    assert _amax_calls(lambda: cross_entropy_maps(logits, labels)) == 1
    torch.testing.assert_close(blocked, cross_entropy_maps(logits, labels), rtol=0, atol=0)


def test_a_traced_graph_takes_whole_tensor_passes(monkeypatch):
    """Blocks are an eager-mode cache trick: torch.compile gets one max over the classes."""
    logits = torch.randn(6, 81, 40)
    labels = torch.randint(0, 81, (6, 40))
    _block_rows(monkeypatch, 1, logits)
    graphs = []

    def record(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    compiled = torch.compile(cross_entropy_maps, backend=record, fullgraph=True, dynamic=False)
    torch.testing.assert_close(compiled(logits, labels), cross_entropy_maps(logits, labels))
    assert len(graphs) == 1
    maxima = [node for node in graphs[0].graph.nodes
              if node.op == 'call_method' and node.target == 'amax'
              or node.op == 'call_function' and 'amax' in str(node.target)]
    assert len(maxima) == 1, graphs[0].code


def test_one_class_is_zero_loss_on_every_path(speedups, monkeypatch):
    logits = torch.randn(5, 1, 9, requires_grad=True)
    _block_rows(monkeypatch, 2, logits)
    loss = cross_entropy_maps(logits, torch.zeros(5, 9, dtype=torch.long))
    loss.sum().backward()
    assert torch.equal(loss, torch.zeros(5, 9))
    assert torch.equal(logits.grad, torch.zeros(5, 1, 9))


def test_refuses_a_second_backward():
    logits = torch.randn(2, 5, 3, requires_grad=True)
    loss = cross_entropy_maps(logits, torch.zeros(2, 3, dtype=torch.long)).sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match='inplace operation'):
        loss.backward()
