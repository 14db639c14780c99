"""Log the number of compiled graphs every epoch and warn when training keeps recompiling."""
from mmcv.runner import HOOKS, Hook

from mmdet_hpu import device


@HOOKS.register_module()
class HPUCompileMonitorHook(Hook):
    """Put the compiled-graph count into the log at the end of each training epoch.

    The count (:func:`mmdet_hpu.device.compiled_graphs`: graphs compiled by
    :func:`mmdet_hpu.device.compile_model` so far, train and test graphs together) goes to
    ``runner.log_buffer.output['compiled_graphs']`` (and ``compiled_graphs_epoch``: those of
    this epoch), so the text, JSON and TensorBoard logger hooks write it with the epoch's
    record, as they do with evaluation metrics. A static model compiles its graphs in the first
    epoch (one per batch size and GT bucket); any graph compiled in a later training epoch
    outside evaluation is a recompilation, reported as a warning.

    Registered by ``train_detector`` in compile mode, with priority ``LOW`` (before the logger
    hooks, after the optimizer step).
    """

    def __init__(self) -> None:
        self._epoch_start = 0
        self.history = []

    def before_train_epoch(self, runner) -> None:
        """Remember the count at the start of the epoch."""
        self._epoch_start = device.compiled_graphs()

    def after_train_epoch(self, runner) -> None:
        """Log the count; warn if this (non-first) epoch compiled new graphs."""
        total = device.compiled_graphs()
        new = total - self._epoch_start
        self.history.append(new)
        runner.log_buffer.output['compiled_graphs'] = total
        runner.log_buffer.output['compiled_graphs_epoch'] = new
        runner.log_buffer.ready = True
        if new and len(self.history) > 1:
            runner.logger.warning(
                f'{new} graph(s) compiled during training epoch {runner.epoch + 1} ({total} in '
                'all): the model is recompiling after the first epoch, so some input shape or '
                'Python value still changes from batch to batch (check that the ground truth '
                'is padded (HPUPadGT) and images have a fixed size)')
