"""Single-device wrapper for hpu, cuda and cpu."""
from typing import Optional, Sequence, Union

import torch
from mmcv.parallel import MODULE_WRAPPERS, MMDataParallel
from torch import nn

from ._device_batch import DeviceBatchMixin, wrapper_device


@MODULE_WRAPPERS.register_module()
class HPUDataParallel(DeviceBatchMixin, MMDataParallel):
    """``MMDataParallel`` that works on hpu, cuda and cpu alike.

    Differences from ``MMDataParallel``:

    1. ``DataParallel.__init__`` is skipped (it only knows CUDA-like devices);
       the module is moved to ``device`` here.
    2. Batches are moved by :mod:`mmdet_hpu.parallel.scatter` (``DataContainer``-aware,
       ``non_blocking``), never by mmcv's CUDA scatter.
    3. ``train_step``/``val_step`` run under bf16 autocast when ``autocast=True``;
       ``forward`` (inference) stays in fp32 so results convert to numpy.
    4. ``keep_gt_on_host=True`` leaves ``gt_bboxes``/``gt_labels`` on the CPU.

    It still is an ``MMDataParallel`` (and registered in ``MODULE_WRAPPERS``), so
    ``is_module_wrapper`` and ``save_checkpoint`` unwrap ``.module``.

    The positional order is ``MMDataParallel``'s (``module, device_ids, output_device,
    dim``), so ``HPUDataParallel(model, [0])`` works as a drop-in; the plugin options
    are keyword-only.

    Args:
        module (nn.Module): Detector to wrap.
        device_ids (Sequence[int], optional): mmcv-style ids (``cfg.gpu_ids``); see
            :func:`wrapper_device`. A device string here (``HPUDataParallel(m, 'hpu')``)
            is taken as ``device``.
        output_device (int, optional): Accepted as by ``MMDataParallel``; results stay
            on the wrapper's device. Defaults to the first of ``device_ids``.
        dim (int): Batch dimension. Defaults to 0.
        device (str | torch.device): ``'hpu'``, ``'cuda'``, ``'cpu'``. Defaults to ``'cpu'``.
        autocast (bool): bf16 autocast in ``train_step``/``val_step``. Defaults to False.
        keep_gt_on_host (bool): Keep ground truth on the CPU. Defaults to False.
        autocast_dtype (torch.dtype): Defaults to ``torch.bfloat16``.
    """

    def __init__(self, module: nn.Module, device_ids: Optional[Sequence[int]] = None,
                 output_device: Optional[int] = None, dim: int = 0, *,
                 device: Union[str, torch.device] = 'cpu', autocast: bool = False,
                 keep_gt_on_host: bool = False, autocast_dtype: torch.dtype = torch.bfloat16):
        nn.Module.__init__(self)
        if isinstance(device_ids, (str, torch.device)):  # HPUDataParallel(model, 'hpu')
            device, device_ids = device_ids, None
        self._init_device_batch(device, autocast, keep_gt_on_host, autocast_dtype)
        self.src_device_obj = wrapper_device(device, device_ids)
        self.module = module.to(self.src_device_obj)
        self.device_ids = [] if self.src_device_obj.type == 'cpu' else [self.src_device_obj.index]
        if output_device is None:
            output_device = self.device_ids[0] if self.device_ids else None
        self.output_device = output_device
        self.dim = dim

    def forward(self, *inputs, **kwargs):
        """Inference forward (``single_gpu_test``), on the wrapper's device, fp32."""
        inputs, kwargs = self._move_batch(inputs, kwargs)
        return self.module(*inputs, **kwargs)

    def train_step(self, *inputs, **kwargs):
        """``module.train_step`` on the moved batch, under autocast if enabled."""
        inputs, kwargs = self._move_batch(inputs, kwargs)
        with self._autocast():
            return self.module.train_step(*inputs, **kwargs)

    def val_step(self, *inputs, **kwargs):
        """``module.val_step`` (losses on validation data), like :meth:`train_step`."""
        inputs, kwargs = self._move_batch(inputs, kwargs)
        with self._autocast():
            return self.module.val_step(*inputs, **kwargs)
