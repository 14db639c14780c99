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
from .profiler import HPUProfilerHook
from .throughput import HPUThroughputHook

__all__ = [
    'HPUCompileMonitorHook', 'HPUDistEvalHook', 'HPUEvalHook', 'HPUOptimizerHook',
    'HPUProfilerHook', 'HPUThroughputHook',
    'build_eval_dataloader', 'multi_device_test', 'single_device_test'
]
