"""The plugin types a config will run with, written into the config itself.

``train_detector`` upgrades stock types when it builds the runner and hooks; doing the
same on the config first lets ``--steps`` apply to a stock ``EpochBasedRunner`` config
and makes the config dumped in the work dir name what actually ran.
"""
from mmcv.runner import HOOKS

from ..errors import ConfigError
from ..runner.base import _FP16_ERROR
from ._wiring import registered, runner_cfg


def upgrade_config_types(cfg):
    """Upgrade ``cfg.runner`` and ``cfg.optimizer_config`` in place to the plugin types.

    ``runner`` (when present): ``EpochBasedRunner`` -> ``HPUEpochBasedRunner``,
    ``IterBasedRunner`` -> ``HPUIterBasedRunner``. ``optimizer_config`` without ``type``
    or with ``type='OptimizerHook'`` (and no ``fp16``) -> ``HPUOptimizerHook``, as
    :func:`mmdet_hpu.apis.train_detector` does. Other types are left alone.

    Returns:
        mmcv.Config: ``cfg``.

    Raises:
        ConfigError: For ``fp16`` (its CUDA loss scaler), which the HPU runners refuse.
    """
    if cfg.get('runner') is not None:
        cfg.runner = runner_cfg(cfg)
    if cfg.get('fp16') is not None and cfg.get('runner', {}).get('type', '').startswith('HPU'):
        raise ConfigError(_FP16_ERROR.format(f'fp16={dict(cfg.fp16)}'))
    opt_cfg = cfg.get('optimizer_config')
    if (isinstance(opt_cfg, dict) and cfg.get('fp16') is None
            and opt_cfg.get('type', 'OptimizerHook') == 'OptimizerHook'
            and registered(HOOKS, 'HPUOptimizerHook')):
        opt_cfg['type'] = 'HPUOptimizerHook'
    return cfg
