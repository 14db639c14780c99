"""DeviceLogBuffer: stock-equal averages, one host read, one all_reduce."""
import pytest
import torch
import torch.distributed as dist
from mmcv.runner import LogBuffer

from mmdet_hpu.runner import log_buffer as log_buffer_module
from mmdet_hpu.runner.host_reads import HostReadCounter
from mmdet_hpu.runner.log_buffer import DeviceLogBuffer

VALUES = [  # (data_time, loss_cls, loss, count)
    (0.10, 1.5, 4.0, 2), (0.20, 0.5, 3.0, 2), (0.30, 0.25, 2.5, 1), (0.40, 2.0, 1.0, 2)]


def _fill(buffer, as_tensor):
    wrap = (lambda v: torch.tensor(v, requires_grad=True) * 1) if as_tensor else float
    for data_time, loss_cls, loss, count in VALUES:
        buffer.update({'data_time': data_time}, count)
        buffer.update({'loss_cls': wrap(loss_cls), 'loss': wrap(loss)}, count)


@pytest.mark.parametrize('n', [0, len(VALUES)])
def test_average_equals_stock(n):
    stock, ours = LogBuffer(), DeviceLogBuffer()
    _fill(stock, as_tensor=False)
    _fill(ours, as_tensor=True)
    stock.average(n)
    ours.average(n)
    assert list(ours.output) == list(stock.output) == ['data_time', 'loss_cls', 'loss']
    for key, value in stock.output.items():
        assert ours.output[key] == pytest.approx(value)
        assert isinstance(ours.output[key], float)
    assert ours.ready


def test_one_host_read_per_average_and_none_when_nothing_new():
    buffer = DeviceLogBuffer()
    _fill(buffer, as_tensor=True)
    with HostReadCounter() as reads:
        buffer.average(4)
    assert reads.snapshot() == {'scalar': 0, 'bulk': 1, 'dynamic': 0}
    assert buffer.host_reads == 1
    first = dict(buffer.output)
    with HostReadCounter() as reads:
        buffer.average(4)  # a second logger hook at the same iteration
    assert reads.snapshot() == {'scalar': 0, 'bulk': 0, 'dynamic': 0}
    assert dict(buffer.output) == first


def test_update_keeps_no_graph_and_no_host_read():
    buffer = DeviceLogBuffer()
    weight = torch.ones((), requires_grad=True)
    with HostReadCounter() as reads:
        buffer.update({'loss': weight * 3}, 2)
        buffer.update({'loss': weight * 5}, 2)
    assert reads.snapshot() == {'scalar': 0, 'bulk': 0, 'dynamic': 0}
    assert buffer._sums['loss'].grad_fn is None
    buffer.average()
    assert buffer.output['loss'] == pytest.approx(4.0)


def test_windows_restart_after_average_and_clear():
    buffer = DeviceLogBuffer()
    buffer.update({'loss': torch.tensor(1.0)})
    buffer.average(1)
    buffer.update({'loss': torch.tensor(3.0)})
    buffer.average(1)
    assert buffer.output['loss'] == pytest.approx(3.0)
    buffer.clear()
    assert not buffer.output and not buffer.ready and not buffer._sums
    with pytest.raises(ValueError):
        buffer.average(-1)
    with pytest.raises(TypeError):
        buffer.update([1.0])


def test_single_all_reduce_sum_divided_by_world_size(monkeypatch):
    calls = []

    def fake_all_reduce(tensor, op=None):  # two ranks holding the same values
        calls.append((tuple(tensor.shape), op))
        tensor.mul_(2)

    monkeypatch.setattr(log_buffer_module, '_world_size', lambda: 2)
    monkeypatch.setattr(dist, 'all_reduce', fake_all_reduce)
    buffer = DeviceLogBuffer()
    _fill(buffer, as_tensor=True)
    buffer.average()
    assert calls == [((2,), dist.ReduceOp.SUM)]
    assert buffer.output['loss'] == pytest.approx((8 + 6 + 2.5 + 2) / 7)
