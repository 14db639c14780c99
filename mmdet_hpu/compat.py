"""Compatibility fixes for mmcv-full 1.7 / mmdet 2.28 on torch 2.x, numpy 2, Python 3.11.

Every fix is applied from here, once, by :func:`apply` (called when
``mmdet_hpu`` is imported). Installed mmcv/mmdet files are never edited.
"""
import warnings

import numpy as np

_applied = False


def _restore_numpy_aliases():
    # numpy >= 1.24 removed np.int/np.float/np.bool/np.object; mmdet 2.28
    # (datasets/custom.py, samplers) and mmcv 1.7 (ops/pixel_group.py) still use them.
    for name, alias in (('int', int), ('float', float), ('bool', bool), ('object', object)):
        if name not in np.__dict__:
            setattr(np, name, alias)


def _use_safe_checkpoint_loader():
    # torch>=2.6 mmcv load_from_local rejects numpy values in meta (older torch unpickles
    # anything): route local checkpoint loads (runner.resume, load_from) via the allow-list.
    from .checkpoint.loading import register_mmcv_loader

    register_mmcv_loader()


def _silence_mmcv_2_announcement():
    # mmcv 1.7 warns on every import that mmcv 2.0 will be released on January 1, 2023;
    # it is noise in every log line of a 1.x stack.
    warnings.filterwarnings('ignore', message='On January 1, 2023, MMCV will release v2.0.0')


def apply():
    """Apply every fix; idempotent."""
    global _applied
    if _applied:
        return
    _silence_mmcv_2_announcement()
    _restore_numpy_aliases()
    _use_safe_checkpoint_loader()
    _applied = True
