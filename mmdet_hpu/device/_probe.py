"""Device discovery: which accelerator to use and how to name it for torch."""
import logging
from functools import lru_cache
from typing import Optional, Union

import torch

from . import _bridge

logger = logging.getLogger(__name__)

DEVICES = ('hpu', 'cuda', 'cpu')
INSTALL_HINT = ('install the Intel Gaudi software stack (run inside the Habana PyTorch docker '
                'image, vault.habana.ai/gaudi-docker/..., or pip install habana-torch-plugin '
                'from the Habana vault)')

DeviceLike = Union[str, torch.device]


@lru_cache(maxsize=None)
def is_hpu_available() -> bool:
    """Whether a Gaudi device can be used. Never raises.

    Checks ``find_spec`` first, so nothing is imported on machines without
    ``habana_frameworks``. Otherwise imports ``habana_frameworks.torch.hpu``
    (which loads the bridge: call :func:`set_execution_mode` before this) and
    returns ``torch.hpu.is_available()``. The result is cached.
    """
    if not _bridge.spec_found():
        return False
    try:
        return bool(_bridge.bridge('hpu').is_available())
    except Exception as err:  # a broken install must not break CPU/CUDA runs
        logger.warning('habana_frameworks is installed but unusable: %s', err)
        return False


def hpu_version() -> Optional[str]:
    """Installed habana-torch-plugin version (e.g. ``'1.19.0.561'``), or None."""
    return _bridge.plugin_version()


def device_type(device: DeviceLike) -> str:
    """``'hpu'``, ``'cuda'`` or ``'cpu'`` for ``'hpu:0'``, ``torch.device('cuda', 1)`` etc."""
    return torch.device(device).type if isinstance(device, torch.device) else \
        str(device).split(':')[0]


def resolve_device(requested: Optional[str] = 'auto') -> str:
    """Turn a requested device into one of ``'hpu'``, ``'cuda'``, ``'cpu'``.

    Args:
        requested (str | None): ``'auto'`` (or None) picks hpu > cuda > cpu;
            an explicit name is checked and returned.

    Returns:
        str: The device type.

    Raises:
        RuntimeError: If the requested device is not available, saying what to install.
        ValueError: If the name is unknown.
    """
    requested = 'auto' if requested is None else device_type(requested)
    if requested == 'auto':
        if is_hpu_available():
            return 'hpu'
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    if requested not in DEVICES:
        raise ValueError(f'device must be one of {DEVICES + ("auto",)}, got {requested!r}')
    if requested == 'hpu' and not is_hpu_available():
        reason = (f'habana_frameworks is not installed; {INSTALL_HINT}' if not _bridge.spec_found()
                  else 'habana_frameworks is installed but no Gaudi device is visible')
        raise RuntimeError(f'--device hpu requested but {reason}.')
    if requested == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError('--device cuda requested but torch.cuda.is_available() is False; '
                           'install a CUDA build of PyTorch and check the NVIDIA driver, '
                           'or use --device cpu.')
    return requested


def torch_device(device: DeviceLike) -> torch.device:
    """A ``torch.device`` with an explicit index (``'hpu'`` != ``'hpu:0'`` in comparisons).

    Under the fake bridge used by the tests (see ``_bridge.backing_device``),
    ``'hpu'`` maps to its host backing device so that real computation runs on CPU.
    """
    dev = torch.device(device) if not isinstance(device, torch.device) else device
    if dev.type == 'hpu':
        backing = _bridge.backing_device() if is_hpu_available() else None
        if backing is not None:
            return torch.device(backing)
        index = dev.index if dev.index is not None else _bridge.bridge('hpu').current_device()
        return torch.device('hpu', index)
    if dev.type == 'cuda':
        return torch.device('cuda', dev.index if dev.index is not None
                            else torch.cuda.current_device())
    return dev
