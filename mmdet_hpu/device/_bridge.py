"""The only code in mmdet_hpu that imports ``habana_frameworks``.

Every other module (in this package or elsewhere) reaches the Habana bridge
through :func:`bridge`, so the import order rules of the bridge (execution
mode and autocast op lists must be set in the environment first) are enforced
in one place.
"""
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from typing import Optional, Tuple

#: Root module whose import loads the bridge and fixes its configuration.
BRIDGE_ROOT = 'habana_frameworks.torch'
#: Wheel that ships ``habana_frameworks.torch``.
PLUGIN_DIST = 'habana-torch-plugin'
#: Environment variables the bridge reads once, when it is loaded.
IMPORT_TIME_VARS = ('PT_HPU_LAZY_MODE', 'PT_HPU_AUTOCAST_LOWER_PRECISION_OPS_LIST',
                    'PT_HPU_AUTOCAST_FP32_OPS_LIST', 'LOWER_LIST', 'FP32_LIST')

# Values of IMPORT_TIME_VARS when this module first imported the bridge.
_import_env: dict = {}
# Cached package-metadata lookups.
_versions: dict = {}


def spec_found() -> bool:
    """Whether ``habana_frameworks.torch`` is installed, without importing it."""
    try:
        return (importlib.util.find_spec('habana_frameworks') is not None
                and importlib.util.find_spec(BRIDGE_ROOT) is not None)
    except (ImportError, ValueError):
        return False


def is_loaded() -> bool:
    """Whether the bridge has been imported (by anyone) in this process."""
    return BRIDGE_ROOT in sys.modules


def bridge(name: str = 'core'):
    """Import and return ``habana_frameworks.torch.<name>``.

    Args:
        name (str): Submodule path below ``habana_frameworks.torch``, e.g.
            ``'core'``, ``'hpu'``, ``'distributed.hccl'``, ``'hpex.optimizers'``.

    Returns:
        module: The imported module.

    Raises:
        ImportError: If habana_frameworks is not installed.
    """
    if not is_loaded():
        _import_env.update({k: os.environ.get(k) for k in IMPORT_TIME_VARS})
        importlib.import_module(f'{BRIDGE_ROOT}.core')
    return importlib.import_module(f'{BRIDGE_ROOT}.{name}')


def import_time_env(var: str) -> Optional[str]:
    """Value ``var`` had when the bridge was loaded (the current value if loaded elsewhere)."""
    return _import_env.get(var, os.environ.get(var))


def plugin_version() -> Optional[str]:
    """Installed ``habana-torch-plugin`` version, read from package metadata (no import)."""
    if PLUGIN_DIST not in _versions:
        try:
            _versions[PLUGIN_DIST] = importlib.metadata.version(PLUGIN_DIST)
        except importlib.metadata.PackageNotFoundError:
            _versions[PLUGIN_DIST] = None
    return _versions[PLUGIN_DIST]


def release() -> Optional[Tuple[int, int]]:
    """``(major, minor)`` of the Habana software release, or None if unknown."""
    version = plugin_version()
    if not version:
        return None
    parts = version.split('.')
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def backing_device() -> Optional[str]:
    """Host device that stands in for the HPU, declared by a test double of the bridge.

    The fake ``habana_frameworks`` under ``tests/fake_habana`` sets
    ``habana_frameworks.torch.hpu.HOST_BACKING_DEVICE = 'cpu'`` so that tensors
    "on HPU" are real CPU tensors. The real bridge has no such attribute, so this
    returns None on Gaudi (and without the bridge).
    """
    if not is_loaded():
        return None
    return getattr(sys.modules.get(f'{BRIDGE_ROOT}.hpu'), 'HOST_BACKING_DEVICE', None)


def reset() -> None:
    """Forget cached probes (used by the test fixture after swapping the bridge)."""
    _import_env.clear()
    _versions.clear()
