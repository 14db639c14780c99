"""Move mmcv batches (with ``DataContainer``s) to any device without CUDA scatter.

mmcv's ``scatter`` only knows CUDA (``comm.scatter``) and, on torch >= 2.1, fails
with an ``int`` device. Here the batch is first unwrapped on the host with mmcv's
CPU path (``target_gpus=[-1]``: ``DataContainer`` -> its data, stacked tensors stay
stacked), then every tensor is moved with ``.to(device, non_blocking=True)``.
"""
from typing import Any, Collection, Dict, Tuple

import torch
from mmcv.parallel import scatter_kwargs

#: Ground-truth keys that ``keep_gt_on_host=True`` leaves on the CPU.
GT_KEYS = ('gt_bboxes', 'gt_labels', 'gt_bboxes_ignore')


def unwrap(inputs: tuple, kwargs: dict) -> Tuple[tuple, dict]:
    """Replace ``DataContainer``s by their data, on the host.

    Args:
        inputs (tuple): Positional arguments, e.g. ``(data_batch, optimizer)``.
        kwargs (dict): Keyword arguments, e.g. ``{'img': [DataContainer], ...}``.

    Returns:
        tuple[tuple, dict]: The unwrapped ``(inputs, kwargs)`` for a single device.
    """
    inputs, kwargs = scatter_kwargs(inputs, kwargs, [-1])
    return inputs[0] if inputs else (), kwargs[0] if kwargs else {}


def to_device(obj: Any, device: torch.device, keep_on_host: Collection[str] = ()) -> Any:
    """Recursively move the tensors in ``obj`` to ``device``.

    Args:
        obj: Tensor, or list / tuple / dict nesting of tensors and other objects
            (other objects are returned unchanged).
        device (torch.device): Target device.
        keep_on_host (Collection[str]): Dict keys, at any depth, whose values are
            left where they are (e.g. :data:`GT_KEYS`).

    Returns:
        The same structure with tensors on ``device``.
    """
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return type(obj)((k, v if k in keep_on_host else to_device(v, device, keep_on_host))
                         for k, v in obj.items())
    if isinstance(obj, (list, tuple)) and not hasattr(obj, '_fields'):
        return type(obj)(to_device(v, device, keep_on_host) for v in obj)
    return obj


def scatter_to_device(inputs: tuple, kwargs: Dict[str, Any], device: torch.device,
                      keep_on_host: Collection[str] = ()) -> Tuple[tuple, dict]:
    """Unwrap ``DataContainer``s and move the batch to ``device``.

    Args:
        inputs (tuple): Positional arguments of ``forward``/``train_step``.
        kwargs (dict): Keyword arguments.
        device (torch.device): Target device (hpu, cuda or cpu).
        keep_on_host (Collection[str]): Dict keys to leave on the host.

    Returns:
        tuple[tuple, dict]: ``(inputs, kwargs)`` ready for the wrapped module.
    """
    inputs, kwargs = unwrap(inputs, kwargs)
    return to_device(inputs, device, keep_on_host), to_device(kwargs, device, keep_on_host)
