"""Execution mode (lazy / eager / compile) and autocast op lists.

Both are read by the Habana bridge once, when ``habana_frameworks.torch`` is
imported, so they are set through environment variables **before** that
import, and a change requested afterwards raises instead of being ignored.

``PT_HPU_LAZY_MODE`` values (hpu-facts §2): ``1`` lazy; ``0`` eager (+ torch.compile)
from SynapseAI 1.13; ``2`` eager up to 1.12. Lazy is the default up to 1.20,
eager + compile from 1.21.

Off HPU, ``'lazy'`` and ``'eager'`` have no meaning and are rejected; ``'compile'``
is allowed and means plain ``torch.compile`` (inductor) on CPU/CUDA.
"""
import os
import os.path as osp
from typing import Dict, Optional

from . import _bridge, _probe

MODES = ('lazy', 'eager', 'compile')
LAZY_VAR = 'PT_HPU_LAZY_MODE'
AUTOCAST_DIR = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'autocast')
BF16_VARS = ('PT_HPU_AUTOCAST_LOWER_PRECISION_OPS_LIST', 'LOWER_LIST')
FP32_VARS = ('PT_HPU_AUTOCAST_FP32_OPS_LIST', 'FP32_LIST')
LAST_LEGACY_RELEASE = (1, 12)  # eager is PT_HPU_LAZY_MODE=2, op lists are LOWER_LIST/FP32_LIST
LAST_LAZY_DEFAULT_RELEASE = (1, 20)

_requested: Dict[str, Optional[str]] = {'mode': None}


def _is_legacy() -> bool:
    release = _bridge.release()
    return release is not None and release <= LAST_LEGACY_RELEASE


def default_execution_mode() -> Optional[str]:
    """Release default: ``'lazy'`` up to 1.20, ``'compile'`` from 1.21, None off HPU.

    An unknown release (no package metadata) is assumed to be recent.
    """
    if not _bridge.spec_found():
        return None
    release = _bridge.release()
    return 'lazy' if release is not None and release <= LAST_LAZY_DEFAULT_RELEASE else 'compile'


def _lazy_value(mode: str) -> str:
    if mode == 'lazy':
        return '1'
    if _is_legacy():
        if mode == 'compile':
            raise RuntimeError('execution mode "compile" needs Intel Gaudi software >= 1.13 '
                               f'(installed: {_bridge.plugin_version()}); use lazy or eager.')
        return '2'
    return '0'


def _effective_lazy_value() -> str:
    value = _bridge.import_time_env(LAZY_VAR)
    if value is not None:
        return value
    return '1' if default_execution_mode() == 'lazy' else '0'


def check_mode_for_device(mode: Optional[str], device: str) -> None:
    """Raise if ``mode`` makes no sense on ``device`` (e.g. ``--lazy`` on cpu)."""
    if mode is None:
        return
    if mode not in MODES:
        raise ValueError(f'execution mode must be one of {MODES}, got {mode!r}')
    if mode in ('lazy', 'eager') and _probe.device_type(device) != 'hpu':
        raise ValueError(f'execution mode {mode!r} exists only on HPU, but the device is '
                         f'{device!r}; drop the option or use --device hpu.')


def set_execution_mode(mode: str, device: Optional[str] = None) -> None:
    """Select lazy / eager / compile by exporting ``PT_HPU_LAZY_MODE``.

    Must run before anything imports ``habana_frameworks`` (the CLI calls it first).

    Args:
        mode (str): ``'lazy'``, ``'eager'`` or ``'compile'``.
        device (str, optional): If given, reject modes the device does not have.

    Raises:
        ValueError: Unknown mode, or a lazy/eager mode on cpu/cuda.
        RuntimeError: The bridge is already loaded with a different mode ("too late").
    """
    check_mode_for_device(mode, device or 'hpu')
    value = _lazy_value(mode)
    if _bridge.is_loaded() and _effective_lazy_value() != value:
        raise RuntimeError(
            f'too late to select execution mode {mode!r}: habana_frameworks.torch was already '
            f'imported with {LAZY_VAR}={_effective_lazy_value()}. Call '
            f'mmdet_hpu.device.set_execution_mode() before anything imports habana_frameworks, '
            f'or export {LAZY_VAR}={value} before starting Python.')
    os.environ[LAZY_VAR] = value
    _requested['mode'] = mode


def get_execution_mode() -> Optional[str]:
    """Mode in effect: the one set, else derived from the environment, else the release default.

    Returns None off HPU unless ``'compile'`` was set.
    """
    if _requested['mode'] is not None:
        return _requested['mode']
    if not _probe.is_hpu_available():
        return None
    value = _effective_lazy_value()
    if value == '1':
        return 'lazy'
    return 'eager' if value == '2' else default_execution_mode() or 'eager'


def is_lazy() -> bool:
    """Whether we run on HPU in lazy mode (the only case where mark_step does anything)."""
    return _probe.is_hpu_available() and get_execution_mode() == 'lazy'


def set_autocast_op_lists(bf16_file: Optional[str] = None,
                          fp32_file: Optional[str] = None) -> Dict[str, str]:
    """Export the autocast op-list files to the bridge (before it is imported).

    Args:
        bf16_file (str, optional): Ops run in bf16, one per line. Defaults to the
            shipped ``mmdet_hpu/autocast/yolov3_bf16.txt``.
        fp32_file (str, optional): Ops kept in fp32. Defaults to ``yolov3_fp32.txt``.

    Returns:
        dict: The environment variables that were set.

    Raises:
        FileNotFoundError: A list file does not exist.
        RuntimeError: The bridge is already loaded with other lists ("too late").
    """
    files = (bf16_file or osp.join(AUTOCAST_DIR, 'yolov3_bf16.txt'),
             fp32_file or osp.join(AUTOCAST_DIR, 'yolov3_fp32.txt'))
    exported = {}
    for path, names in zip(files, (BF16_VARS, FP32_VARS)):
        if not osp.isfile(path):
            raise FileNotFoundError(f'autocast op list not found: {path}')
        wanted = names if _is_legacy() else names[:1]
        exported.update({name: osp.abspath(path) for name in wanted})
    stale = [k for k, v in exported.items() if _bridge.import_time_env(k) != v]
    if _bridge.is_loaded() and stale:
        raise RuntimeError(
            f'too late to set autocast op lists ({", ".join(stale)}): habana_frameworks.torch '
            'was already imported and reads them only once. Call '
            'mmdet_hpu.device.set_autocast_op_lists() before anything imports habana_frameworks.')
    os.environ.update(exported)
    return exported


def reset() -> None:
    """Forget the requested mode (test fixture)."""
    _requested['mode'] = None
