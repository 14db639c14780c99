"""Multi-process wrapper (DDP) for hpu (hccl), cuda (nccl) and cpu (gloo)."""
from typing import Union

import torch
from mmcv.parallel import MODULE_WRAPPERS, MMDistributedDataParallel
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ._device_batch import DeviceBatchMixin, wrapper_device


@MODULE_WRAPPERS.register_module()
class HPUDistributedDataParallel(DeviceBatchMixin, MMDistributedDataParallel):
    """``MMDistributedDataParallel`` for hpu, cuda and cpu, on torch >= 2.0.

    Differences from ``MMDistributedDataParallel``:

    1. The module is moved to ``device`` here; ``device_ids`` is ``[index]`` on
       hpu/cuda and None on cpu. Defaults: ``broadcast_buffers=False``,
       ``gradient_as_bucket_view=True`` (Habana's recommended DDP settings).
    2. Batches are moved by :mod:`mmdet_hpu.parallel.scatter`, never by mmcv's CUDA
       scatter (which fails with an int device on torch >= 2.1), so CPU DDP also
       unwraps ``DataContainer``s.
    3. ``train_step``/``val_step`` reuse torch's own ``_pre_forward``/``_post_forward``
       bookkeeping instead of mmcv's copy of torch-1.x internals, and run under
       bf16 autocast when enabled.
    4. ``forward`` (distributed eval) works on torch >= 2.1: mmcv's
       ``_run_ddp_forward`` reads the removed ``_use_replicated_tensor_module``.

    Args:
        module (nn.Module): Detector to wrap.
        device (str | torch.device): ``'hpu'``, ``'cuda'``, ``'cpu'``. Defaults to ``'cpu'``.
        autocast (bool): bf16 autocast in ``train_step``/``val_step``. Defaults to False.
        keep_gt_on_host (bool): Keep ground truth on the CPU. Defaults to False.
        autocast_dtype (torch.dtype): Defaults to ``torch.bfloat16``.
        **ddp_kwargs: Passed to ``DistributedDataParallel`` (``find_unused_parameters``,
            ``bucket_cap_mb``, ...). A ``device_ids`` entry is ignored: it is derived
            from ``device``.
    """

    def __init__(self, module: nn.Module, device: Union[str, torch.device] = 'cpu',
                 autocast: bool = False, keep_gt_on_host: bool = False,
                 autocast_dtype: torch.dtype = torch.bfloat16, **ddp_kwargs):
        ddp_kwargs.pop('device_ids', None)
        dev = wrapper_device(device)
        ddp_kwargs.setdefault('broadcast_buffers', False)
        ddp_kwargs.setdefault('gradient_as_bucket_view', True)
        if ddp_kwargs.get('bucket_cap_mb') is None:
            ddp_kwargs.pop('bucket_cap_mb', None)
        device_ids = None if dev.type == 'cpu' else [dev.index]
        super().__init__(module.to(dev), device_ids=device_ids, **ddp_kwargs)
        self.src_device_obj = dev
        self._init_device_batch(device, autocast, keep_gt_on_host, autocast_dtype)

    def to_kwargs(self, inputs, kwargs, device_id):
        """Move a batch to this wrapper's device (``device_id`` is ignored)."""
        inputs, kwargs = self._move_batch(inputs, kwargs)
        return (inputs, ), (kwargs, )

    def scatter(self, inputs, kwargs, device_ids):
        return self.to_kwargs(inputs, kwargs, None)

    def forward(self, *inputs, **kwargs):
        """Inference forward (``multi_gpu_test``): move the batch, then torch DDP forward."""
        inputs, kwargs = self._move_batch(inputs, kwargs)
        return DistributedDataParallel.forward(self, *inputs, **kwargs)

    def _run_ddp_forward(self, *inputs, **kwargs):
        return DistributedDataParallel._run_ddp_forward(self, *inputs, **kwargs)

    def train_step(self, *inputs, **kwargs):
        """``module.train_step`` with DDP gradient bookkeeping, under autocast if enabled."""
        return self._ddp_step('train_step', inputs, kwargs)

    def val_step(self, *inputs, **kwargs):
        """``module.val_step`` with DDP bookkeeping (no-op under ``torch.no_grad``)."""
        return self._ddp_step('val_step', inputs, kwargs)

    def _ddp_step(self, method: str, inputs: tuple, kwargs: dict):
        inputs, kwargs = self._move_batch(inputs, kwargs)
        inputs, kwargs = self._pre_forward(*inputs, **kwargs)
        with self._autocast():
            output = getattr(self.module, method)(*inputs, **kwargs)
        return self._post_forward(output)
