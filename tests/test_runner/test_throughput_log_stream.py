"""HPUThroughputHook puts images/s and device memory into the runner's log buffer.

Every mmcv logger hook reads ``runner.log_buffer.output``; these tests check the values
are there when the loggers run (per log interval and per epoch), that device memory comes
from ``mmdet_hpu.device``, and that time/memory are read only at log points.
"""
import pytest
from mmcv.runner import HOOKS, LoggerHook
from runner_helpers import json_records, register_default_hooks, toy_batches, toy_runner

from mmdet_hpu import device


@HOOKS.register_module(force=True)
class _RecordingLoggerHook(LoggerHook):
    """A logger hook that keeps a copy of every output it is asked to log."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.logged = []

    def log(self, runner):
        self.logged.append((self.get_mode(runner), runner.iter,
                            dict(runner.log_buffer.output)))


def _run(tmp_path, epochs=2, iters=4, log_interval=2):
    runner = toy_runner(str(tmp_path), max_epochs=epochs)
    register_default_hooks(runner, log_interval=log_interval)
    recorder = _RecordingLoggerHook(interval=log_interval)
    runner.register_hook(recorder, priority='VERY_LOW')
    runner.run([toy_batches(iters)], [('train', 1)])
    return runner, recorder


def test_any_logger_hook_gets_images_per_sec_memory_and_loss(tmp_path):
    _, recorder = _run(tmp_path)
    train = [out for mode, _, out in recorder.logged if mode == 'train']
    assert len(train) == 4  # 2 epochs x 2 log points
    for out in train:
        assert out['imgs_per_sec'] > 0 and out['max_mem_mb'] == 0 and 'loss' in out
    epoch_ends = [out for mode, _, out in recorder.logged if mode == 'val']
    assert len(epoch_ends) == 2
    for out in epoch_ends:
        assert out['epoch_imgs_per_sec'] > 0 and out['epoch_time'] > 0
        assert out['epoch_max_mem_mb'] == 0


def test_memory_is_the_device_modules_peak_per_interval(tmp_path, monkeypatch):
    """Peaks come from device.max_memory_allocated, reset after every read."""
    peaks = iter([3, 7, 5, 2, 4, 9, 1, 1, 1, 1])
    reads = []

    def fake_peak(dev):
        reads.append(dev)
        return next(peaks) * 1024 * 1024

    monkeypatch.setattr(device, 'max_memory_allocated', fake_peak)
    _run(tmp_path, epochs=2, iters=4, log_interval=2)
    train = json_records(str(tmp_path), 'train')
    epochs = json_records(str(tmp_path), 'val')
    # Epoch 1: log points read 3, 7; the close reads 5 -> epoch peak 7. Epoch 2: 2, 4, 9.
    assert [r['max_mem_mb'] for r in train] == [3, 7, 2, 4]
    assert [r['epoch_max_mem_mb'] for r in epochs] == [7, 9]
    assert len(reads) == 6  # only at the 4 log points and the 2 epoch ends


def test_time_and_memory_read_only_at_log_points(tmp_path, monkeypatch):
    import mmdet_hpu.runner.hooks.throughput as module

    clock_reads, syncs = [], []
    real_clock = module.time.perf_counter
    monkeypatch.setattr(module.time, 'perf_counter',
                        lambda: clock_reads.append(1) or real_clock())
    monkeypatch.setattr(device, 'synchronize', lambda dev: syncs.append(dev))
    _run(tmp_path, epochs=1, iters=6, log_interval=3)
    # before_run + open + 2 log points + close + after_run; syncs: open + 2 + close.
    assert len(clock_reads) == 6 and len(syncs) == 4


@pytest.mark.parametrize('runner_priority', ['ABOVE_NORMAL', 'NORMAL'])
def test_values_are_there_before_loggers_run(tmp_path, runner_priority):
    """From custom_hooks (NORMAL priority) the values still reach the VERY_LOW loggers."""
    runner = toy_runner(str(tmp_path), max_epochs=1)
    register_default_hooks(runner, log_interval=2, custom_hooks=[
        dict(type='HPUThroughputHook', priority=runner_priority)])
    runner.run([toy_batches(2)], [('train', 1)])
    (record,) = json_records(str(tmp_path), 'train')
    assert record['imgs_per_sec'] > 0
