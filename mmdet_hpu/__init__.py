"""mmdet-hpu: train and evaluate OpenMMLab mmdet 2.x detectors on Intel Gaudi.

Importing this package (directly, or through a config's
``custom_imports = dict(imports=['mmdet_hpu'])``) applies the compatibility
fixes of :mod:`mmdet_hpu.compat` and registers every plugin module in the
mmcv/mmdet registries. It never imports ``habana_frameworks``: only
:mod:`mmdet_hpu.device` does, and only when asked for an HPU.
"""
from . import compat

compat.apply()

# Importing the subpackages registers their modules in mmcv/mmdet registries.
from . import apis, checkpoint, datasets, models, optimizers, parallel, runner  # noqa: E402,F401,I001
from .version import __version__  # noqa: E402


def env_summary():
    """Return a one-line description of the installed stack."""
    import mmcv
    import mmdet
    import numpy
    import torch

    return (f'mmdet-hpu {__version__}, torch {torch.__version__}, mmcv {mmcv.__version__}, '
            f'mmdet {mmdet.__version__}, numpy {numpy.__version__}')


__all__ = ['__version__', 'env_summary']
