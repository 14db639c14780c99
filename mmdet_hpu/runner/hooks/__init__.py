"""HPU hooks, registered in mmcv's ``HOOKS`` on import."""
from .compile_monitor import HPUCompileMonitorHook
from .evaluation import (
    HPUDistEvalHook,
    HPUEvalHook,
    build_eval_dataloader,
    multi_device_test,
    single_device_test,
)
from .optimizer import HPUOptimizerHook
from .throughput import HPUThroughputHook

__all__ = [
    'HPUCompileMonitorHook', 'HPUDistEvalHook', 'HPUEvalHook', 'HPUOptimizerHook',
    'HPUThroughputHook',
    'build_eval_dataloader', 'multi_device_test', 'single_device_test'
]
