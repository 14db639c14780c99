"""Training throughput (images/s), peak device memory and epoch times, in the log stream."""
import json
import time
from typing import Dict, List, Optional, Tuple

import torch
from mmcv.runner import HOOKS, Hook, LoggerHook, TextLoggerHook

from mmdet_hpu import device

#: ``runner.log_buffer.output`` keys written at each log point (every logger gets them).
INTERVAL_KEYS = ('imgs_per_sec', 'max_mem_mb')
#: Keys written at the end of each epoch (each window with ``by_epoch=False``).
EPOCH_KEYS = ('epoch_imgs_per_sec', 'epoch_time', 'epoch_max_mem_mb')
_MIB = 1024 * 1024


@HOOKS.register_module()
class HPUThroughputHook(Hook):
    """Training images/s and peak device memory, in the runner's log stream.

    Like mmcv's own hooks, it writes its values into ``runner.log_buffer.output``, so
    every logger hook (Text, Json, TensorBoard, W&B, MLflow...) gets them:

    * at each log point of the logger hooks (every ``log_config.interval`` iterations):
      ``imgs_per_sec`` since the previous log point and ``max_mem_mb``, the peak device
      memory allocated in that time (``mmdet_hpu.device.max_memory_allocated``; 0 on cpu);
    * at the end of each epoch: ``epoch_imgs_per_sec``, ``epoch_time`` and
      ``epoch_max_mem_mb``, in mmcv's end-of-epoch record (mmcv names its mode ``val``,
      as for evaluation metrics, which join the same record; TensorBoard tag
      ``val/epoch_imgs_per_sec``). With ``by_epoch=False`` the window values join the
      next log line instead.

    Time, memory and the device synchronisation that makes the time include queued
    device work are read only at log points and window boundaries, never in other
    iterations. Images are ``num_samples`` of every iteration times the world size;
    memory is this rank's. The hook must run before the logger hooks (the runners
    register it with priority ``ABOVE_NORMAL``; loggers are ``VERY_LOW``), and runs
    before evaluation and checkpointing in ``after_train_epoch``, so they are not timed.
    A one-line record per window goes to the text log, and a summary after the run to
    the text log and, as a ``mode='throughput'`` record, to the ``.log.json``.

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
        self._log_every: Optional[Tuple[int, bool]] = None
        self._mark = 0.0
        self._mark_images = 0
        self._window_peak = 0

    def before_run(self, runner) -> None:
        """Start the total-time clock; find the log interval of the logger hooks."""
        self.records = []
        self._run_start = time.perf_counter()
        self._log_every = _logger_interval(runner)

    def before_train_epoch(self, runner) -> None:
        """Open an epoch window (epoch-based runners)."""
        self._open(runner)

    def before_train_iter(self, runner) -> None:
        """Open a window if none is open (iteration-based runners)."""
        if self._start is None:
            self._open(runner)

    def after_train_iter(self, runner) -> None:
        """Count the images; at a log point, publish images/s and memory; close windows."""
        self._images += self._batch_images(runner) * runner.world_size
        self._iters += 1
        if self._is_log_point(runner):
            self._publish_interval(runner)
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
        self._images, self._iters, self._window_peak = 0, 0, 0
        self._start = self._mark = time.perf_counter()
        self._mark_images = 0

    def _is_log_point(self, runner) -> bool:
        """Whether the logger hooks average and log after this iteration (mmcv's rule)."""
        if self._log_every is None:
            return False
        interval, by_epoch = self._log_every
        if by_epoch:
            return self.every_n_inner_iters(runner, interval)
        return self.every_n_iters(runner, interval)

    def _publish_interval(self, runner) -> None:
        """Put images/s and peak memory since the last log point into the log buffer."""
        dev = _model_device(runner)
        device.synchronize(dev)
        now = time.perf_counter()
        elapsed = now - self._mark
        peak = self._read_peak(dev)
        images = self._images - self._mark_images
        output = runner.log_buffer.output
        output['imgs_per_sec'] = images / elapsed if elapsed > 0 else 0.0
        output['max_mem_mb'] = peak
        self._mark, self._mark_images = now, self._images

    def _read_peak(self, dev) -> int:
        """Peak MiB allocated since the last read; also kept as the window's peak."""
        peak = device.max_memory_allocated(dev) // _MIB
        device.reset_peak_memory_stats(dev)
        self._window_peak = max(self._window_peak, peak)
        return peak

    def _close(self, runner) -> None:
        if self._start is None or self._iters == 0:
            self._start = None
            return
        dev = _model_device(runner)
        device.synchronize(dev)
        elapsed = time.perf_counter() - self._start
        self._start = None
        self._read_peak(dev)
        record = dict(mode='throughput', epoch=len(self.records) + 1, iters=self._iters,
                      images=self._images, epoch_time=elapsed,
                      imgs_per_sec=self._images / elapsed if elapsed > 0 else 0.0,
                      warmup=len(self.records) < self.skip_epochs,
                      max_mem_mb=self._window_peak)
        self.records.append(record)
        self._publish_window(runner, record)
        runner.logger.info(
            f'Epoch {record["epoch"]} throughput: {record["iters"]} iters, '
            f'{record["images"]} images in {elapsed:.3f} s = {record["imgs_per_sec"]:.2f} '
            f'images/s{" (warm-up)" if record["warmup"] else ""}, peak device memory '
            f'{record["max_mem_mb"]} MiB')

    def _publish_window(self, runner, record: Dict) -> None:
        """Put the window's values into the log buffer (logged at the epoch end)."""
        output = runner.log_buffer.output
        output['epoch_imgs_per_sec'] = record['imgs_per_sec']
        output['epoch_time'] = record['epoch_time']
        output['epoch_max_mem_mb'] = record['max_mem_mb']
        if self.by_epoch:
            runner.log_buffer.ready = True  # as mmcv's EvalHook: loggers log it next

    def _window_len(self, runner) -> int:
        return self.window_iters or len(runner.data_loader)

    @staticmethod
    def _batch_images(runner) -> int:
        num = getattr(runner, 'outputs', {}).get('num_samples')
        if isinstance(num, int):
            return num
        return getattr(runner.data_loader, 'batch_size', None) or 1


def _logger_interval(runner) -> Optional[Tuple[int, bool]]:
    """``(interval, by_epoch)`` of the first logger hook, or None without loggers."""
    for hook in runner.hooks:
        if isinstance(hook, LoggerHook):
            return hook.interval, hook.by_epoch
    return None


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
