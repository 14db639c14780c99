"""Move mmcv batches (with ``DataContainer``s) to any device without CUDA scatter.

mmcv's ``scatter`` only knows CUDA (``comm.scatter``) and, on torch >= 2.1, fails
with an ``int`` device. Here the batch is first unwrapped on the host with mmcv's
CPU path (``target_gpus=[-1]``: ``DataContainer`` -> its data, stacked tensors stay
stacked), then every tensor is moved with ``.to(device, non_blocking=True)``.
"""
from typing import Any, Collection, Dict, Optional, Tuple

import torch
from mmcv.parallel import scatter_kwargs

from mmdet_hpu.models.utils.gt_padding import bucket_gt_list, stack_padded_gt

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


def batch_gt(obj: Any, max_num_gt: Optional[int] = None) -> Any:
    """Stack the ground truth of every batch dict in ``obj`` into batch tensors, on the host.

    A dict with ``gt_valid`` (the ``HPUPadGT`` pipeline transform: per-image boxes padded to
    their own bucket, ``gt_valid`` collated to the batch's largest, (B, 1, G)) gets
    ``gt_bboxes`` (B, G, 4), ``gt_labels`` (B, G) long and ``gt_valid`` (B, G) bool. With
    ``max_num_gt`` set (the model accepts padded ground truth), stock per-image lists are
    padded the same way, to the bucket of the batch's most crowded image
    (:func:`~mmdet_hpu.models.utils.gt_padding.bucket_gt_list`), and get a ``gt_valid``. So the
    device only ever sees one ground-truth shape per (batch size, bucket), never a tuple of
    per-image lengths. Shapes only: no value is read.

    Args:
        obj: ``(inputs, kwargs)`` nesting of dicts / lists / tuples.
        max_num_gt (int | None): Cap of the buckets for list-form ground truth; None leaves
            lists without ``gt_valid`` as they are (models that want mmdet's lists).

    Returns:
        The same structure, batch dicts replaced by copies with batched ground truth.

    Raises:
        ValueError: If an image has more than ``max_num_gt`` boxes, or shapes disagree.
    """
    if isinstance(obj, dict):
        obj = type(obj)((k, batch_gt(v, max_num_gt)) for k, v in obj.items())
        return _batched_gt_dict(obj, max_num_gt)
    if isinstance(obj, (list, tuple)) and not hasattr(obj, '_fields'):
        return type(obj)(batch_gt(v, max_num_gt) for v in obj)
    return obj


def _batched_gt_dict(data: dict, max_num_gt: Optional[int]) -> dict:
    """``data`` with (B, G, ...) ground truth, if it holds ground truth to batch."""
    if 'gt_bboxes' not in data or 'gt_labels' not in data:
        return data
    if data.get('gt_valid') is not None:
        boxes, labels, valid = stack_padded_gt(data['gt_bboxes'], data['gt_labels'],
                                               data['gt_valid'])
    elif max_num_gt is not None and not torch.is_tensor(data['gt_bboxes']):
        boxes, labels, valid = bucket_gt_list(data['gt_bboxes'], data['gt_labels'], max_num_gt)
    else:
        return data
    data = type(data)(data)
    data.update(gt_bboxes=boxes, gt_labels=labels, gt_valid=valid)
    return data


def scatter_to_device(inputs: tuple, kwargs: Dict[str, Any], device: torch.device,
                      keep_on_host: Collection[str] = (),
                      max_num_gt: Optional[int] = None) -> Tuple[tuple, dict]:
    """Unwrap ``DataContainer``s, batch the ground truth and move the batch to ``device``.

    Args:
        inputs (tuple): Positional arguments of ``forward``/``train_step``.
        kwargs (dict): Keyword arguments.
        device (torch.device): Target device (hpu, cuda or cpu).
        keep_on_host (Collection[str]): Dict keys to leave on the host.
        max_num_gt (int | None): See :func:`batch_gt`.

    Returns:
        tuple[tuple, dict]: ``(inputs, kwargs)`` ready for the wrapped module.
    """
    inputs, kwargs = batch_gt(unwrap(inputs, kwargs), max_num_gt)
    return to_device(inputs, device, keep_on_host), to_device(kwargs, device, keep_on_host)
