"""Model wrappers and batch placement for hpu, cuda and cpu.

Importing this package registers :class:`HPUDataParallel` and
:class:`HPUDistributedDataParallel` in mmcv's ``MODULE_WRAPPERS``.
"""
from .data_parallel import HPUDataParallel
from .distributed import HPUDistributedDataParallel
from .scatter import GT_KEYS, scatter_to_device, to_device

__all__ = ['GT_KEYS', 'HPUDataParallel', 'HPUDistributedDataParallel', 'scatter_to_device',
           'to_device']
