"""What both HPU wrappers share: device placement of the batch and autocast."""
from typing import Optional, Sequence, Union

import torch

from .. import device as hpu_device
from .scatter import GT_KEYS, scatter_to_device


def wrapper_device(device: Union[str, torch.device],
                   device_ids: Optional[Sequence[int]] = None) -> torch.device:
    """Explicit ``torch.device`` for a wrapper.

    Args:
        device (str | torch.device): ``'hpu'``, ``'cuda'``, ``'cpu'`` (optionally indexed).
        device_ids (Sequence[int], optional): mmcv-style ids; the first one picks the
            CUDA device when ``device`` has no index. Ignored on hpu (one device per
            process, the current one) and cpu.
    """
    kind = hpu_device.device_type(device)
    if kind == 'cuda' and device_ids and torch.device(device).index is None:
        device = f'cuda:{device_ids[0]}'
    return hpu_device.torch_device(device)


class DeviceBatchMixin:
    """Moves batches to ``self.src_device_obj`` and runs steps under autocast.

    Attributes set by :meth:`_init_device_batch`:
        device_kind (str): ``'hpu'``, ``'cuda'`` or ``'cpu'`` (the *logical* device;
            under the fake bridge ``src_device_obj`` is the CPU but this stays ``'hpu'``).
        autocast (bool): Run ``train_step``/``val_step`` under bf16 autocast.
        keep_gt_on_host (bool): Leave :data:`GT_KEYS` on the CPU.
    """

    def _init_device_batch(self, device, autocast: bool, keep_gt_on_host: bool,
                           autocast_dtype: torch.dtype) -> None:
        self.device_kind = hpu_device.device_type(device)
        self.autocast = bool(autocast)
        self.autocast_dtype = autocast_dtype
        self.keep_gt_on_host = bool(keep_gt_on_host)

    def _move_batch(self, inputs: tuple, kwargs: dict):
        keep = GT_KEYS if self.keep_gt_on_host else ()
        # Models that take padded ground truth say so; their stock lists are batched too.
        max_num_gt = getattr(self.module, 'padded_gt_max_num_gt', None)
        return scatter_to_device(inputs, kwargs, self.src_device_obj, keep, max_num_gt)

    def _autocast(self):
        return hpu_device.autocast(self.device_kind, enabled=self.autocast,
                                   dtype=self.autocast_dtype)
