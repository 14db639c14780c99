"""Training throughput (images/s) and epoch-time statistics, in the text and JSON logs."""
import json
import time
from typing import Dict, List, Optional

import torch
from mmcv.runner import HOOKS, Hook, TextLoggerHook

from mmdet_hpu import device


@HOOKS.register_module()
class HPUThroughputHook(Hook):
    """Measure training images/s per epoch and summarise the run.

    Each window (an epoch, or ``window_iters`` iterations with ``by_epoch=False``) is
    timed between two ``device.synchronize`` calls, so queued device work is counted.
    Images are ``num_samples`` of every iteration times the world size. Evaluation
    and checkpointing are outside the windows (this hook runs first in
    ``after_train_epoch``). One record per window and a summary after the run go to
    ``runner.logger`` and, when a ``TextLoggerHook`` is registered, to its
    ``.log.json`` as ``mode='throughput'`` records.

    Args:
        skip_epochs (int): Leading warm-up windows (graph compilation) excluded from the
            average images/s. Defaults to 1.
        by_epoch (bool): Windows are epochs (``EpochBasedRunner``). If False, windows
            are ``window_iters`` iterations (``IterBasedRunner``). Defaults to True.
        window_iters (int, optional): Window length with ``by_epoch=False``.
            Defaults to None: ``len(runner.data_loader)``.

    Raises:
        ValueError: If ``skip_epochs < 0`` or ``window_iters <= 0``.
    """

    def __init__(self,
                 skip_epochs: int = 1,
                 by_epoch: bool = True,
                 window_iters: Optional[int] = None) -> None:
        if not isinstance(skip_epochs, int) or skip_epochs < 0:
            raise ValueError(f'skip_epochs must be an int >= 0, but got {skip_epochs!r}')
        if window_iters is not None and window_iters <= 0:
            raise ValueError(f'window_iters must be > 0, but got {window_iters!r}')
        self.skip_epochs = skip_epochs
        self.by_epoch = by_epoch
        self.window_iters = window_iters
        self.records: List[Dict] = []
        self._start: Optional[float] = None
        self._run_start = 0.0
        self._images = 0
        self._iters = 0

    def before_run(self, runner) -> None:
        """Start the total-time clock."""
        self.records = []
        self._run_start = time.perf_counter()

    def before_train_epoch(self, runner) -> None:
        """Open an epoch window (epoch-based runners)."""
        self._open(runner)

    def before_train_iter(self, runner) -> None:
        """Open a window if none is open (iteration-based runners)."""
        if self._start is None:
            self._open(runner)

    def after_train_iter(self, runner) -> None:
        """Count the images of this iteration; close full iteration windows."""
        self._images += self._batch_images(runner) * runner.world_size
        self._iters += 1
        if not self.by_epoch and self._iters >= self._window_len(runner):
            self._close(runner)

    def after_train_epoch(self, runner) -> None:
        """Close the epoch window."""
        self._close(runner)

    def after_epoch(self, runner) -> None:
        """Close a partial last window (``IterBasedRunner`` calls this once at the end)."""
        self._close(runner)

    def after_run(self, runner) -> None:
        """Log the summary: total time, best epoch time, mean images/s after warm-up."""
        summary = self.summary(time.perf_counter() - self._run_start)
        _log(runner, summary, self._summary_text(summary))

    def summary(self, total_time: float) -> Dict:
        """Statistics over the closed windows.

        Args:
            total_time (float): Wall time of the whole run in seconds.

        Returns:
            dict: ``total_time``, ``total_train_time``, ``best_epoch_time``,
            ``avg_epoch_time``, ``imgs_per_sec`` (mean over non-warm-up windows, None
            when all windows are warm-up), ``skip_epochs`` and ``num_epochs``.
        """
        times = [r['epoch_time'] for r in self.records]
        steady = [r['imgs_per_sec'] for r in self.records[self.skip_epochs:]]
        return dict(
            mode='throughput', total_time=total_time, total_train_time=sum(times),
            best_epoch_time=min(times) if times else None,
            avg_epoch_time=sum(times) / len(times) if times else None,
            imgs_per_sec=sum(steady) / len(steady) if steady else None,
            skip_epochs=self.skip_epochs, num_epochs=len(times))

    def _summary_text(self, summary: Dict) -> str:
        text = (f'Throughput summary: total time {summary["total_time"]:.2f} s, total train '
                f'time {summary["total_train_time"]:.2f} s')
        if summary['best_epoch_time'] is not None:
            text += f', best epoch time {summary["best_epoch_time"]:.2f} s'
        if summary['imgs_per_sec'] is None:
            return text + (f'; all {summary["num_epochs"]} epoch(s) are warm-up '
                           f'(skip_epochs={self.skip_epochs}): no steady-state images/s')
        return text + (f', mean {summary["imgs_per_sec"]:.2f} images/s over epochs after the '
                       f'first {self.skip_epochs}')

    def _open(self, runner) -> None:
        dev = _model_device(runner)
        device.synchronize(dev)
        device.reset_peak_memory_stats(dev)
        self._images, self._iters = 0, 0
        self._start = time.perf_counter()

    def _close(self, runner) -> None:
        if self._start is None or self._iters == 0:
            self._start = None
            return
        dev = _model_device(runner)
        device.synchronize(dev)
        elapsed = time.perf_counter() - self._start
        self._start = None
        record = dict(mode='throughput', epoch=len(self.records) + 1, iters=self._iters,
                      images=self._images, epoch_time=elapsed,
                      imgs_per_sec=self._images / elapsed if elapsed > 0 else 0.0,
                      warmup=len(self.records) < self.skip_epochs,
                      max_mem_mb=device.max_memory_allocated(dev) // (1024 * 1024))
        self.records.append(record)
        _log(runner, record, (
            f'Epoch {record["epoch"]} throughput: {record["iters"]} iters, '
            f'{record["images"]} images in {elapsed:.3f} s = {record["imgs_per_sec"]:.2f} '
            f'images/s{" (warm-up)" if record["warmup"] else ""}'))

    def _window_len(self, runner) -> int:
        return self.window_iters or len(runner.data_loader)

    @staticmethod
    def _batch_images(runner) -> int:
        num = getattr(runner, 'outputs', {}).get('num_samples')
        if isinstance(num, int):
            return num
        return getattr(runner.data_loader, 'batch_size', None) or 1


def _model_device(runner) -> torch.device:
    param = next(runner.model.parameters(), None)
    return param.device if param is not None else torch.device('cpu')


def _log(runner, record: Dict, text: str) -> None:
    """Write ``text`` to the text log and ``record`` to the JSON log (rank 0)."""
    runner.logger.info(text)
    if runner.rank != 0:
        return
    for hook in runner.hooks:
        if isinstance(hook, TextLoggerHook) and getattr(hook, 'json_log_path', None):
            rounded = {k: round(v, 5) if isinstance(v, float) else v for k, v in record.items()}
            with open(hook.json_log_path, 'a+') as f:
                f.write(json.dumps(rounded) + '\n')
            return
