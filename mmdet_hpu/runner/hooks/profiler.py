"""Record a few training iterations with ``torch.profiler`` (``--profile STEPS``)."""
import os
import os.path as osp
from typing import Optional

import torch
from mmcv.runner import HOOKS, Hook

from mmdet_hpu import device

#: Rows of the op table written next to the trace.
_TABLE_ROWS = 40


@HOOKS.register_module()
class HPUProfilerHook(Hook):
    """Profile ``steps`` training iterations after ``skip`` warm-up iterations.

    Activities come from :func:`mmdet_hpu.device.profiler_activities` (CPU, plus HPU on
    Gaudi or CUDA on a GPU). Recording starts in ``before_train_iter`` of iteration
    ``skip + 1`` of this process and stops in ``after_train_iter`` ``steps`` iterations
    later, after a device synchronisation, so it covers forward, backward, optimizer
    step and logging (register with priority ``LOWEST``, as the CLI does). Training
    then continues unprofiled. Written on every rank, into ``out_dir``:

    * ``trace_rank{R}.json``: Chrome trace (open in Perfetto, chrome://tracing or
      TensorBoard's profiler plugin);
    * ``ops_rank{R}.txt``: the ops sorted by total device (or CPU) time.

    If the run ends first, what was recorded is written at the end of the run.

    Args:
        steps (int): Iterations to record. Defaults to 5.
        skip (int): Iterations to run before recording (graph compilation, data
            loader start-up). Defaults to 2.
        out_dir (str, optional): Output folder. Defaults to ``<work_dir>/profile``.
        record_shapes (bool): Record input shapes of the ops. Defaults to True.
        with_stack (bool): Record Python stacks (larger trace). Defaults to False.

    Raises:
        ValueError: If ``steps < 1`` or ``skip < 0``.
    """

    def __init__(self, steps: int = 5, skip: int = 2, out_dir: Optional[str] = None,
                 record_shapes: bool = True, with_stack: bool = False) -> None:
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f'steps must be an int >= 1, but got {steps!r}')
        if not isinstance(skip, int) or skip < 0:
            raise ValueError(f'skip must be an int >= 0, but got {skip!r}')
        self.steps = steps
        self.skip = skip
        self.out_dir = out_dir
        self.record_shapes = record_shapes
        self.with_stack = with_stack
        self.trace_path: Optional[str] = None
        self._seen = 0
        self._recorded = 0
        self._profiler = None

    def before_run(self, runner) -> None:
        """Resolve the output folder."""
        self.out_dir = self.out_dir or osp.join(runner.work_dir, 'profile')

    def before_train_iter(self, runner) -> None:
        """Start recording at iteration ``skip + 1``."""
        if self._seen == self.skip and self._profiler is None and self.trace_path is None:
            self._profiler = torch.profiler.profile(
                activities=device.profiler_activities(_model_device(runner)),
                record_shapes=self.record_shapes, with_stack=self.with_stack)
            self._profiler.start()
            runner.logger.info(f'profiler: recording {self.steps} iteration(s) from '
                               f'iteration {runner.iter + 1}')

    def after_train_iter(self, runner) -> None:
        """Count the iteration; stop and write after ``steps`` recorded ones."""
        self._seen += 1
        if self._profiler is None:
            return
        self._recorded += 1
        if self._recorded >= self.steps:
            self._finish(runner)

    def after_run(self, runner) -> None:
        """Write what was recorded if the run ended before ``steps`` iterations."""
        if self._profiler is not None:
            self._finish(runner)

    def _finish(self, runner) -> None:
        device.synchronize(_model_device(runner))
        profiler, self._profiler = self._profiler, None
        profiler.stop()
        os.makedirs(self.out_dir, exist_ok=True)
        self.trace_path = osp.join(self.out_dir, f'trace_rank{runner.rank}.json')
        profiler.export_chrome_trace(self.trace_path)
        table_path = osp.join(self.out_dir, f'ops_rank{runner.rank}.txt')
        with open(table_path, 'w') as f:
            f.write(_op_table(profiler))
        runner.logger.info(f'profiler: {self._recorded} iteration(s) recorded; Chrome trace '
                           f'{self.trace_path}, op table {table_path}')


def _op_table(profiler) -> str:
    """The recorded ops, most expensive first (device time when there is any)."""
    averages = profiler.key_averages()
    device_time = any(getattr(e, 'self_device_time_total', 0) for e in averages)
    sort_by = 'self_device_time_total' if device_time else 'self_cpu_time_total'
    return averages.table(sort_by=sort_by, row_limit=_TABLE_ROWS)


def _model_device(runner) -> torch.device:
    param = next(runner.model.parameters(), None)
    return param.device if param is not None else torch.device('cpu')
