"""HPU runners: registration, log interval, --steps cap, throughput, iteration runner."""
import pytest
import torch
from mmcv.runner import HOOKS, RUNNERS, TextLoggerHook
from runner_helpers import json_records, register_default_hooks, toy_batches, toy_runner

from mmdet_hpu import device
from mmdet_hpu.runner import (
    DeviceLogBuffer,
    HPUDistEvalHook,
    HPUEpochBasedRunner,
    HPUEvalHook,
    HPUIterBasedRunner,
    HPUOptimizerHook,
    HPUThroughputHook,
)


def test_registered_names():
    assert RUNNERS.get('HPUEpochBasedRunner') is HPUEpochBasedRunner
    assert RUNNERS.get('HPUIterBasedRunner') is HPUIterBasedRunner
    for hook in (HPUOptimizerHook, HPUThroughputHook, HPUEvalHook, HPUDistEvalHook):
        assert HOOKS.get(hook.__name__) is hook


def _hooks_of(runner, cls):
    return [hook for hook in runner.hooks if isinstance(hook, cls)]


def test_runner_setup(tmp_path):
    runner = toy_runner(str(tmp_path))
    register_default_hooks(runner, log_interval=3)
    assert isinstance(runner.log_buffer, DeviceLogBuffer)
    assert runner.log_interval == 3
    assert len(_hooks_of(runner, HPUOptimizerHook)) == 1
    assert len(_hooks_of(runner, HPUThroughputHook)) == 1


def test_throughput_hook_from_custom_hooks_is_not_duplicated(tmp_path):
    runner = toy_runner(str(tmp_path))
    register_default_hooks(runner, 2, custom_hooks=[dict(type='HPUThroughputHook',
                                                         skip_epochs=0)])
    (hook,) = _hooks_of(runner, HPUThroughputHook)
    assert hook.skip_epochs == 0


def test_steps_cap_ends_epochs_early(tmp_path):
    runner = toy_runner(str(tmp_path), max_epochs=2, max_iters_per_epoch=2)
    register_default_hooks(runner, log_interval=1)
    runner.run([toy_batches(5)], [('train', 1)])
    assert runner.iter == 4 and runner.max_iters == 4 and runner.epoch == 2
    train = json_records(str(tmp_path), 'train')
    assert [(r['epoch'], r['iter']) for r in train] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    (hook,) = _hooks_of(runner, HPUThroughputHook)
    assert [r['iters'] for r in hook.records] == [2, 2]


@pytest.mark.parametrize('bad', [0, -1, 1.5, True, '3'])
def test_steps_cap_is_validated(tmp_path, bad):
    with pytest.raises(ValueError, match='max_iters_per_epoch'):
        toy_runner(str(tmp_path), max_iters_per_epoch=bad)


def test_throughput_in_text_and_json_log(tmp_path, runner_log):
    runner = toy_runner(str(tmp_path), max_epochs=3, skip_epochs=1)
    register_default_hooks(runner, log_interval=2)
    runner.run([toy_batches(3, batch_size=4)], [('train', 1)])
    (hook,) = _hooks_of(runner, HPUThroughputHook)
    assert [(r['epoch'], r['images'], r['warmup']) for r in hook.records] == [
        (1, 12, True), (2, 12, False), (3, 12, False)]
    # Per log interval (iteration 2 of each epoch) in the train records...
    train = json_records(str(tmp_path), 'train')
    assert [r['iter'] for r in train] == [2, 2, 2]
    assert all(r['imgs_per_sec'] > 0 and r['max_mem_mb'] == 0 for r in train)
    # ...and per epoch in mmcv's end-of-epoch record.
    epochs = json_records(str(tmp_path), 'val')
    assert [r['epoch'] for r in epochs] == [1, 2, 3]
    for record, kept in zip(epochs, hook.records):
        assert record['epoch_imgs_per_sec'] == pytest.approx(kept['imgs_per_sec'], rel=1e-4)
        assert record['epoch_time'] == pytest.approx(kept['epoch_time'], abs=1e-4)
        assert record['epoch_max_mem_mb'] == 0
    summary = json_records(str(tmp_path), 'throughput')[-1]
    assert summary['num_epochs'] == 3 and summary['skip_epochs'] == 1
    steady = [epochs[1]['epoch_imgs_per_sec'], epochs[2]['epoch_imgs_per_sec']]
    assert summary['imgs_per_sec'] == pytest.approx(sum(steady) / 2, rel=1e-3)
    assert summary['best_epoch_time'] == pytest.approx(
        min(r['epoch_time'] for r in epochs), abs=1e-4)
    assert 'total_time' in summary and 'total_train_time' in summary
    text = runner_log.text
    assert 'Epoch 1 throughput: 3 iters, 12 images' in text and '(warm-up)' in text
    assert 'imgs_per_sec: ' in text and 'epoch_imgs_per_sec: ' in text
    assert 'Throughput summary' in text and 'images/s over epochs after the first 1' in text


def test_all_epochs_warmup_is_reported_not_crashing(tmp_path, runner_log):
    runner = toy_runner(str(tmp_path), max_epochs=1, skip_epochs=2)
    register_default_hooks(runner, log_interval=2)
    runner.run([toy_batches(2)], [('train', 1)])
    summary = json_records(str(tmp_path), 'throughput')[-1]
    assert summary['imgs_per_sec'] is None and summary['num_epochs'] == 1
    assert 'all 1 epoch(s) are warm-up (skip_epochs=2)' in runner_log.text


def test_device_synchronized_at_epoch_boundaries(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(device, 'synchronize', lambda dev: synced.append(torch.device(dev)))
    runner = toy_runner(str(tmp_path), max_epochs=2)
    register_default_hooks(runner, log_interval=2)
    runner.run([toy_batches(3)], [('train', 1)])
    # Per epoch: window open, the log point at iteration 2, window close.
    assert synced == [torch.device('cpu')] * 6


def test_iter_runner_same_buffer_and_throughput_windows(tmp_path):
    runner = toy_runner(str(tmp_path), 'HPUIterBasedRunner', max_iters=5)
    runner.register_training_hooks(
        lr_config=None, optimizer_config=dict(grad_clip=dict(max_norm=1.0)),
        log_config=dict(interval=2, hooks=[dict(type='TextLoggerHook', by_epoch=False)]))
    assert isinstance(runner.log_buffer, DeviceLogBuffer) and runner.log_interval == 2
    loader = torch.utils.data.DataLoader(torch.cat(toy_batches(2)), batch_size=4)
    runner.run([loader], [('train', 1)])
    assert runner.iter == 5
    train = json_records(str(tmp_path), 'train')
    assert [r['iter'] for r in train] == [2, 4]
    assert all(isinstance(r['loss'], float) and 'grad_norm' in r for r in train)
    (hook,) = _hooks_of(runner, HPUThroughputHook)
    assert [r['iters'] for r in hook.records] == [2, 2, 1]
    assert all('imgs_per_sec' in r for r in train)
    # Window values join the next log line (window 1 closes at iteration 2: same line).
    assert 'epoch_imgs_per_sec' in train[0]
    assert json_records(str(tmp_path), 'throughput')[-1]['num_epochs'] == 3


def test_iter_runner_rejects_epoch_cap(tmp_path):
    with pytest.raises(ValueError, match='max_iters'):
        toy_runner(str(tmp_path), 'HPUIterBasedRunner', max_iters=2, max_iters_per_epoch=1)


def test_iter_runner_resume_without_cuda(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    runner = toy_runner(str(tmp_path), 'HPUIterBasedRunner', max_iters=1)
    runner._iter = 3
    runner.save_checkpoint(str(tmp_path), filename_tmpl='iter_{}.pth')
    fresh = toy_runner(str(tmp_path), 'HPUIterBasedRunner', max_iters=1)
    fresh.resume(str(tmp_path / 'iter_4.pth'))
    assert fresh.iter == 3  # meta stores iter, the file name iter + 1


def test_json_goes_to_the_text_logger_file(tmp_path):
    runner = toy_runner(str(tmp_path))
    register_default_hooks(runner, log_interval=1)
    runner.run([toy_batches(1)], [('train', 1)])
    (logger_hook,) = _hooks_of(runner, TextLoggerHook)
    with open(logger_hook.json_log_path) as f:
        lines = f.readlines()
    assert sum('"throughput"' in line for line in lines) == 1  # the summary
    assert sum('"epoch_imgs_per_sec"' in line for line in lines) == 1


def test_capped_loader_forwards_loader_attributes(tmp_path):
    loader = torch.utils.data.DataLoader(torch.cat(toy_batches(3)), batch_size=4)
    runner = toy_runner(str(tmp_path), max_iters_per_epoch=2)
    register_default_hooks(runner, log_interval=1)
    runner.run([loader], [('train', 1)])
    assert len(runner.data_loader) == 2 and runner.data_loader.batch_size == 4
    assert runner.data_loader.dataset is loader.dataset and runner.iter == 2


def test_epoch_sleep_is_configurable(tmp_path, monkeypatch):
    import mmdet_hpu.runner.epoch_based_runner as module

    slept = []
    monkeypatch.setattr(module.time, 'sleep', slept.append)
    runner = toy_runner(str(tmp_path), max_epochs=2, epoch_sleep=0)
    register_default_hooks(runner, log_interval=1)
    runner.run([toy_batches(2)], [('train', 1)])
    # One 0 s sleep per epoch instead of 2 s; mmcv's run() adds its own 1 s at the end.
    assert slept == [0, 0, 1]
    with pytest.raises(ValueError, match='epoch_sleep'):
        toy_runner(str(tmp_path), epoch_sleep=-1)
