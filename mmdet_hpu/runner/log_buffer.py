"""A drop-in :class:`mmcv.runner.LogBuffer` that keeps tensor log values on the device."""
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Tuple

import torch
import torch.distributed as dist
from mmcv.runner import LogBuffer


def _world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


class DeviceLogBuffer(LogBuffer):
    """LogBuffer whose tensor values are accumulated on their device.

    Differences from :class:`mmcv.runner.LogBuffer`:

    1. ``update()`` adds a tensor value to a running sum on its device
       (``running_sum += value.detach().float() * count``) instead of appending it to
       the host history, so no device-to-host copy happens per iteration and no autograd
       graph is kept alive (the Habana fork forgot the ``detach``).
    2. ``average()`` turns the running sums into means with **one** ``all_reduce``
       (all keys stacked into one tensor; SUM, then divided by the world size, since HCCL
       has no AVG) and **one** host read (``tolist()`` of that tensor), then fills
       ``output`` in first-seen key order, so ``TextLoggerHook``/``JsonLoggerHook`` work
       unchanged. Calling it again without new updates (several logger hooks at the same
       iteration) reuses the last values and reads nothing.

    3. :meth:`attach` adds other device tensors (e.g. the non-finite loss record) to
       that same read; they are reduced with MAX across ranks, not averaged, and
       handed to a callback.
    4. :meth:`set_latest` puts a host value into ``output`` as is (a running count).

    Plain numbers (``time``, ``data_time``, ...) keep the stock history and the stock
    ``average(n)`` (last ``n`` values).

    Note:
        Tensor values are averaged over everything accumulated since the previous
        ``average()`` call, not over the last ``n`` values. With the logger calling
        ``average(interval)`` every ``interval`` iterations the two are equal; they differ
        only for a short last window of an epoch (``ignore_last=False``), where stock
        mixes in values of the previous window. Across ranks the keys must be the same
        and come in the same order (as ``BaseDetector._parse_losses`` asserts).

    Attributes:
        host_reads (int): Number of device-to-host reads done so far (for tests/tools).
    """

    def __init__(self) -> None:
        super().__init__()
        self._sums: Dict[str, torch.Tensor] = OrderedDict()
        self._counts: Dict[str, int] = OrderedDict()
        self._device_means: Dict[str, float] = OrderedDict()
        self._order: Dict[str, None] = OrderedDict()
        self._attached: Dict[str, Tuple[torch.Tensor, Callable]] = OrderedDict()
        self._latest: Dict[str, Any] = OrderedDict()
        self.host_reads = 0

    def attach(self, key: str, tensor: torch.Tensor, on_read: Callable) -> None:
        """Read ``tensor`` with the next device read and pass its values to ``on_read``.

        The tensor replaces any earlier one attached under ``key``; it is read once
        (then forgotten), reduced with MAX across ranks, as a list of floats.

        Args:
            key (str): Name of the attachment.
            tensor (Tensor): Values to read (any shape, flattened).
            on_read (callable): Called with the list of (reduced) values.
        """
        self._attached[key] = (tensor, on_read)

    def set_latest(self, key: str, value: Any) -> None:
        """Show the host value ``value`` under ``key`` in every following ``output``."""
        self._order.setdefault(key)
        self._latest[key] = value

    def clear(self) -> None:
        """Forget all history, running sums and output (called before each epoch)."""
        super().clear()
        self._sums.clear()
        self._counts.clear()
        self._device_means.clear()
        self._order.clear()
        for key in self._latest:
            self._order.setdefault(key)

    def update(self, vars: dict, count: int = 1) -> None:
        """Add one iteration's values.

        Args:
            vars (dict): Name to value. Tensors (0-d or 1-element) stay on their device;
                Python/numpy numbers go to the stock host history.
            count (int): Weight of the values, usually the number of samples.
                Defaults to 1.
        """
        if not isinstance(vars, dict):
            raise TypeError(f'vars must be a dict, but got {type(vars)}')
        host_vars = {}
        for key, value in vars.items():
            self._order.setdefault(key)
            if isinstance(value, torch.Tensor):
                self._accumulate(key, value, count)
            else:
                host_vars[key] = value
        if host_vars:
            super().update(host_vars, count)

    def _accumulate(self, key: str, value: torch.Tensor, count: int) -> None:
        value = value.detach().float().reshape(()) * count
        if key in self._sums:
            self._sums[key] = self._sums[key] + value
            self._counts[key] += count
        else:
            self._sums[key] = value
            self._counts[key] = count

    def average(self, n: int = 0) -> None:
        """Fill ``output`` with averages; reads the device at most once.

        Args:
            n (int): Number of latest host values to average (0: all). Tensor values
                are averaged since the previous call (see the class note).
                Defaults to 0.
        """
        if n < 0:
            raise ValueError(f'n must be >= 0, but got {n}')
        self._flush_device()
        super().average(n)  # host values only: val_history holds no tensors
        self.output.update(self._latest)
        for key in self._order:
            if key in self._device_means:
                self.output[key] = self._device_means[key]
            elif key in self.output:
                self.output.move_to_end(key)
        self.ready = True

    def _flush_device(self) -> None:
        """Reduce and read the running sums and attachments (one host read)."""
        if not self._sums and not self._attached:
            return
        keys: List[str] = list(self._sums)
        attached = list(self._attached.items())
        device = (self._sums[keys[0]] if keys else attached[0][1][0]).device
        parts = []
        if keys:
            parts.append(self._reduce_mean(torch.stack(
                [(self._sums[k] / self._counts[k]).to(device) for k in keys])))
        if attached:
            parts.append(self._reduce_max(torch.cat(
                [t.detach().float().reshape(-1).to(device) for _, (t, _) in attached])))
        # The only device-to-host read of the log buffer, once per log interval.
        values = torch.cat(parts).tolist()
        self.host_reads += 1
        self._device_means.update(zip(keys, values))
        self._dispatch_attached(attached, values[len(keys):])
        self._sums.clear()
        self._counts.clear()

    def _dispatch_attached(self, attached: list, values: List[float]) -> None:
        self._attached.clear()
        start = 0
        for _, (tensor, on_read) in attached:
            size = tensor.numel()
            on_read(values[start:start + size])
            start += size

    @staticmethod
    def _reduce_max(values: torch.Tensor) -> torch.Tensor:
        if _world_size() > 1:
            dist.all_reduce(values, op=dist.ReduceOp.MAX)
        return values

    @staticmethod
    def _reduce_mean(means: torch.Tensor) -> torch.Tensor:
        world_size = _world_size()
        if world_size > 1:
            dist.all_reduce(means, op=dist.ReduceOp.SUM)  # HCCL has no AVG
            means = means / world_size
        return means
