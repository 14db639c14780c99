"""Habana fused optimizers under plugin names, with a torch fallback elsewhere.

``optimizer = dict(type='HPUFusedSGD', lr=1e-3, momentum=0.9, weight_decay=5e-4)``
builds ``habana_frameworks.torch.hpex.optimizers.FusedSGD`` on Gaudi and
``torch.optim.SGD`` on cuda/cpu (logged once), so one config runs everywhere.

Defaults follow the Habana classes on every device, so results do not depend on
where the fallback happens: ``HPUFusedAdamW`` uses ``eps=1e-6`` and
``weight_decay=0.0`` (torch's AdamW defaults are 1e-8 and 1e-2).
"""
from typing import Iterable, Tuple

import torch
from mmcv.runner import OPTIMIZERS
from mmcv.utils import get_logger

from . import device as hpu_device

_fallback_logged = set()


def _log_fallback_once(name: str, fallback: type) -> None:
    if name not in _fallback_logged:
        _fallback_logged.add(name)
        get_logger('mmdet').info(f'{name}: Habana fused optimizer unavailable (not on HPU); '
                                 f'using {fallback.__module__}.{fallback.__name__}.')


def _optimizer_class(hpex_name: str, plugin_name: str, fallback: type) -> type:
    cls = hpu_device.hpex_optimizer(hpex_name)
    if cls is None:
        _log_fallback_once(plugin_name, fallback)
        return fallback
    return cls


@OPTIMIZERS.register_module()
def HPUFusedSGD(params: Iterable, lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
                dampening: float = 0.0, nesterov: bool = False) -> torch.optim.Optimizer:
    """Habana ``FusedSGD`` on HPU, ``torch.optim.SGD`` elsewhere (same arguments)."""
    cls = _optimizer_class('FusedSGD', 'HPUFusedSGD', torch.optim.SGD)
    return cls(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
               dampening=dampening, nesterov=nesterov)


@OPTIMIZERS.register_module()
def HPUFusedAdamW(params: Iterable, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                  eps: float = 1e-6, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Habana ``FusedAdamW`` on HPU, ``torch.optim.AdamW`` elsewhere (Habana defaults)."""
    cls = _optimizer_class('FusedAdamW', 'HPUFusedAdamW', torch.optim.AdamW)
    return cls(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
