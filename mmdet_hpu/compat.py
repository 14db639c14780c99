"""Compatibility fixes for mmcv-full 1.7 / mmdet 2.28 on torch 2.x, numpy 2, Python 3.11.

Every fix is applied from here, once, by :func:`apply` (called when
``mmdet_hpu`` is imported). Installed mmcv/mmdet files are never edited.
"""
import numpy as np

_applied = False


def _restore_numpy_aliases():
    # numpy >= 1.24 removed np.int/np.float/np.bool/np.object; mmdet 2.28
    # (datasets/custom.py, samplers) and mmcv 1.7 (ops/pixel_group.py) still use them.
    for name, alias in (('int', int), ('float', float), ('bool', bool), ('object', object)):
        if name not in np.__dict__:
            setattr(np, name, alias)


def apply():
    """Apply every fix; idempotent."""
    global _applied
    if _applied:
        return
    _restore_numpy_aliases()
    _applied = True
