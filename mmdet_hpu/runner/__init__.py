"""HPU runners, log buffer and hooks; importing registers them in mmcv's registries.

``RUNNERS``: ``HPUEpochBasedRunner``, ``HPUIterBasedRunner``.
``HOOKS``: ``HPUOptimizerHook``, ``HPUThroughputHook``, ``HPUProfilerHook``, ``HPUEvalHook``,
``HPUDistEvalHook``.
"""
from .base import HPURunnerMixin, upgrade_optimizer_config
from .epoch_based_runner import HPUEpochBasedRunner
from .hooks import (
    HPUDistEvalHook,
    HPUEvalHook,
    HPUOptimizerHook,
    HPUProfilerHook,
    HPUThroughputHook,
    build_eval_dataloader,
    multi_device_test,
    single_device_test,
)
from .iter_based_runner import HPUIterBasedRunner
from .log_buffer import DeviceLogBuffer

__all__ = [
    'DeviceLogBuffer', 'HPUDistEvalHook', 'HPUEpochBasedRunner', 'HPUEvalHook',
    'HPUIterBasedRunner', 'HPUOptimizerHook', 'HPUProfilerHook', 'HPURunnerMixin',
    'HPUThroughputHook',
    'build_eval_dataloader', 'multi_device_test', 'single_device_test',
    'upgrade_optimizer_config'
]
