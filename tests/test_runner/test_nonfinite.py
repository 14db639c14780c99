"""Non-finite losses: ``stop`` (default, no extra host read) and ``skip`` modes."""
import logging
import os.path as osp

import mmcv
import pytest
import torch
from runner_helpers import PerIterHostReads, json_records, toy_runner

from mmdet_hpu.checkpoint import load_checkpoint_safe
from mmdet_hpu.cli.overrides import ConfigError, set_nonfinite_loss
from mmdet_hpu.cli.train import apply_args_to_config, parse_args
from mmdet_hpu.runner import HPUOptimizerHook
from mmdet_hpu.runner.host_reads import HostReadCounter
from mmdet_hpu.runner.nonfinite import NonFiniteLossError, NonFiniteMonitor


class TwoTermModel(torch.nn.Module):
    """``loss = loss_a + loss_b``; ``loss_b`` is NaN for batches that contain a NaN."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)

    def train_step(self, data, optimizer=None):
        out = self.linear(torch.nan_to_num(data))
        loss_a = out.pow(2).mean()
        loss_b = (out * data.sum(dim=1, keepdim=True)).mean().abs()
        loss = loss_a + loss_b
        log_vars = dict(loss_a=loss_a.detach(), loss_b=loss_b.detach(), loss=loss.detach())
        return dict(loss=loss, log_vars=log_vars, num_samples=data.shape[0])


def _batches(num, bad=()):
    """``num`` batches; those at the 1-based iterations in ``bad`` hold a NaN."""
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(4, 2, generator=gen) for _ in range(num)]
    for it in bad:
        batches[it - 1][0, 0] = float('nan')
    return batches


def _runner(work_dir, mode='stop', log_interval=4, checkpoint=None, max_epochs=1):
    torch.manual_seed(0)
    model = TwoTermModel()
    runner = toy_runner(str(work_dir), model=model, max_epochs=max_epochs)
    runner.register_training_hooks(
        lr_config=None, optimizer_config=dict(grad_clip=None, nonfinite_loss=mode),
        checkpoint_config=checkpoint,
        log_config=dict(interval=log_interval, hooks=[dict(type='TextLoggerHook')]))
    return runner, model


def _finite(model):
    return all(torch.isfinite(p).all() for p in model.parameters())


def test_stop_names_iteration_and_terms_and_keeps_last_good_checkpoint(tmp_path):
    ckpt = dict(type='HPUCheckpointHook', interval=2, by_epoch=False)
    runner, _ = _runner(tmp_path, checkpoint=ckpt)
    with pytest.raises(NonFiniteLossError) as err:
        runner.run([_batches(8, bad=[3])], [('train', 1)])
    message = str(err.value)
    assert 'iteration 3 ' in message and 'loss_b, loss' in message and 'loss_a' not in message
    last = osp.join(str(tmp_path), 'iter_2.pth')
    assert f'the last good checkpoint, {last}, is kept' in message
    # iteration 4 is both a checkpoint and a log iteration: the check runs before the save
    assert not osp.exists(tmp_path / 'iter_4.pth')
    assert osp.realpath(tmp_path / 'latest.pth') == last
    weights = load_checkpoint_safe(last)['state_dict']
    assert all(torch.isfinite(v).all() for v in weights.values())


def test_stop_before_epoch_checkpoint_between_log_reads(tmp_path):
    """A bad last iteration (not a log iteration) never reaches an epoch checkpoint."""
    runner, model = _runner(tmp_path, log_interval=4, checkpoint=dict(interval=1))
    with pytest.raises(NonFiniteLossError, match='iteration 5 '):
        runner.run([_batches(5, bad=[5])], [('train', 1)])
    assert not osp.exists(tmp_path / 'epoch_1.pth')
    assert not _finite(model)  # the bad step did run: nothing was saved after it


def test_stop_reports_earliest_bad_iteration_at_log_read(tmp_path):
    runner, _ = _runner(tmp_path, log_interval=4)
    with pytest.raises(NonFiniteLossError, match=r'iteration 2 \(1-based.*noticed at iteration 4'):
        runner.run([_batches(8, bad=[2, 3])], [('train', 1)])


def test_stop_adds_no_host_read_per_iteration(tmp_path):
    runner, _ = _runner(tmp_path, log_interval=3)
    counter = HostReadCounter()
    probe = PerIterHostReads(counter)
    runner.register_hook(probe, priority='HIGHEST')
    with counter:
        runner.run([_batches(6)], [('train', 1)])
    log_read = {'scalar': 0, 'bulk': 1, 'dynamic': 0}
    none = {'scalar': 0, 'bulk': 0, 'dynamic': 0}
    assert probe.per_iter == [none, none, log_read, none, none, log_read]
    assert counter.snapshot() == {'scalar': 0, 'bulk': 2, 'dynamic': 0}  # no epoch-end read


def test_stop_reads_once_at_epoch_end_when_last_window_unread(tmp_path):
    runner, _ = _runner(tmp_path, log_interval=4)
    with HostReadCounter() as counter:
        runner.run([_batches(6)], [('train', 1)])
    assert counter.snapshot()['bulk'] == 2  # 1 log read + 1 epoch-end read of the record
    monitor = next(h.nonfinite_monitor for h in runner.hooks
                   if isinstance(h, HPUOptimizerHook))
    assert monitor.host_reads == 1 and monitor.found is None


def test_skip_skips_the_step_and_counts_it(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger='mmdet_hpu.tests.runner')
    runner, model = _runner(tmp_path, mode='skip', log_interval=2)
    runner.run([_batches(6, bad=[3])], [('train', 1)])
    assert _finite(model)
    warnings = [r.getMessage() for r in caplog.records if 'skipped' in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith('iteration 3: non-finite loss')
    assert 'loss_b=nan' in warnings[0] and '1 skipped so far' in warnings[0]
    assert [r['nonfinite_skipped'] for r in json_records(str(tmp_path), 'train')] == [0, 1, 1]


def test_skip_leaves_weights_as_before_the_bad_step(tmp_path):
    runner, model = _runner(tmp_path, mode='skip', log_interval=10)
    runner.run([_batches(3, bad=[3])], [('train', 1)])
    reference, ref_model = _runner(tmp_path / 'ref', mode='skip', log_interval=10)
    reference.run([_batches(2)], [('train', 1)])
    for a, b in zip(model.parameters(), ref_model.parameters()):
        assert torch.equal(a, b)


def test_monitor_window_offsets():
    monitor = NonFiniteMonitor()
    finite, bad = torch.tensor(1.0), torch.tensor(float('inf'))
    monitor.record(1000, {'loss_x': finite}, finite)
    monitor.record(1001, {'loss_x': bad}, bad)
    monitor.record(1002, {'loss_x': bad}, finite)
    monitor.check_now()
    assert monitor.found == (1001, ['loss_x', 'loss'])


def test_bad_mode_is_refused():
    with pytest.raises(ValueError, match="nonfinite_loss must be one of"):
        HPUOptimizerHook(nonfinite_loss='ignore')


def test_cli_flag_sets_optimizer_config():
    args = parse_args(['configs/demo/yolov3_mobilenetv2-half_128_shapes.py',
                       '--on-nonfinite-loss', 'skip'])
    cfg = mmcv.Config(dict(optimizer_config=dict(grad_clip=None), log_config=dict(interval=1)))
    apply_args_to_config(cfg, args)
    assert cfg.optimizer_config == dict(type='HPUOptimizerHook', grad_clip=None,
                                        nonfinite_loss='skip')
    custom = mmcv.Config(dict(optimizer_config=dict(type='GradientCumulativeOptimizerHook')))
    with pytest.raises(ConfigError, match='--on-nonfinite-loss needs the plugin optimizer hook'):
        set_nonfinite_loss(custom, 'stop')
