"""Count device-to-host reads (host syncs) in a block of PyTorch code, on any device.

A read is visible on the CPU too, which makes it testable without a device:

* ``scalar``: ``aten::_local_scalar_dense``, behind ``.item()``, ``float(t)``,
  ``int(t)``, ``bool(t)`` and ``if t:``;
* ``bulk``: ``Tensor.tolist()`` / ``Tensor.numpy()`` (on a device these copy to the
  host; on the CPU they dispatch no aten op, hence the separate count);
* ``dynamic``: ops whose output shape depends on the data (``nonzero``, ``unique``,
  ``masked_select``, boolean-mask indexing); on CUDA/HPU they wait for the device.

Example::

    with HostReadCounter() as reads:
        loss.item()
    assert reads.counts['scalar'] == 1
"""
from collections import Counter
from typing import Dict

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

_BULK_METHODS = {'tolist', 'numpy'}
_DYNAMIC_OPS = ('nonzero', 'unique', 'masked_select')
_INDEX_OPS = ('aten.index.Tensor', 'aten.index_put')


def _has_bool_index(args) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool
               for i in (indices or ()))


def _is_dynamic(name: str, args) -> bool:
    if any(op in name for op in _DYNAMIC_OPS):
        return True
    return name.startswith(_INDEX_OPS) and _has_bool_index(args)


class _DispatchCounter(TorchDispatchMode):
    def __init__(self, counts: Counter) -> None:
        super().__init__()
        self.counts = counts

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        if name.startswith('aten._local_scalar_dense'):
            self.counts['scalar'] += 1
        elif _is_dynamic(name, args):
            self.counts['dynamic'] += 1
        return func(*args, **(kwargs or {}))


class _FunctionCounter(TorchFunctionMode):
    def __init__(self, counts: Counter) -> None:
        super().__init__()
        self.counts = counts

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, '__name__', None) in _BULK_METHODS:
            self.counts['bulk'] += 1
        return func(*args, **(kwargs or {}))


class HostReadCounter:
    """Context manager counting host reads by kind (see the module docstring).

    Attributes:
        counts (Counter): ``scalar``, ``bulk`` and ``dynamic`` counts so far.
    """

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self._modes = (_FunctionCounter(self.counts), _DispatchCounter(self.counts))

    def snapshot(self) -> Dict[str, int]:
        """Current counts of every kind (missing kinds as 0)."""
        return {kind: self.counts[kind] for kind in ('scalar', 'bulk', 'dynamic')}

    def __enter__(self) -> 'HostReadCounter':
        for mode in self._modes:
            mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        for mode in reversed(self._modes):
            mode.__exit__(*exc)
