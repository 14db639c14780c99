"""HPUOptimizerHook: mark_step placement, grad clip logging, config upgrade, fp16 refusal."""
import pytest
import torch
from mmcv.runner import (
    Fp16OptimizerHook,
    GradientCumulativeOptimizerHook,
    OptimizerHook,
)
from runner_helpers import ToyModel, json_records, register_default_hooks, toy_batches, toy_runner

from mmdet_hpu import device
from mmdet_hpu.runner import HPUOptimizerHook, upgrade_optimizer_config

STEP_EVENTS = ('backward', 'core.mark_step', 'optimizer.step')


def _run_recorded(tmp_path, recorder, iters=3):
    model = ToyModel(on_backward=lambda: recorder.record('backward'))
    runner = toy_runner(str(tmp_path), model=model)
    register_default_hooks(runner, log_interval=2, grad_clip=dict(max_norm=1.0))
    step = runner.optimizer.step

    def spy_step(*args, **kwargs):
        recorder.record('optimizer.step')
        return step(*args, **kwargs)

    runner.optimizer.step = spy_step
    runner.run([toy_batches(iters)], [('train', 1)])
    return [name for name in recorder.names() if name in STEP_EVENTS]


def test_lazy_mark_step_after_backward_and_after_step(tmp_path, fake_habana):
    device.set_execution_mode('lazy')
    events = _run_recorded(tmp_path, fake_habana)
    assert events == ['backward', 'core.mark_step', 'optimizer.step', 'core.mark_step'] * 3


@pytest.mark.parametrize('mode', ['eager', 'compile'])
def test_no_mark_step_outside_lazy_mode(tmp_path, fake_habana, mode):
    device.set_execution_mode(mode)
    events = _run_recorded(tmp_path, fake_habana)
    assert events == ['backward', 'optimizer.step'] * 3


def test_grad_norm_only_at_log_interval(tmp_path):
    runner = toy_runner(str(tmp_path))
    register_default_hooks(runner, log_interval=2, grad_clip=dict(max_norm=1.0))
    logged = []
    update = runner.log_buffer.update

    def spy_update(values, count=1):
        if 'grad_norm' in values:
            assert isinstance(values['grad_norm'], torch.Tensor)
            logged.append(runner.inner_iter)
        update(values, count)

    runner.log_buffer.update = spy_update
    runner.run([toy_batches(5)], [('train', 1)])
    assert logged == [1, 3]
    assert all(isinstance(r['grad_norm'], float) for r in json_records(str(tmp_path), 'train'))


def test_grad_clip_none_works(tmp_path):
    runner = toy_runner(str(tmp_path))
    register_default_hooks(runner, log_interval=1, grad_clip=None)
    before = [p.detach().clone() for p in runner.model.parameters()]
    runner.run([toy_batches(2)], [('train', 1)])
    assert all(not torch.equal(b, p) for b, p in zip(before, runner.model.parameters()))
    assert all('grad_norm' not in r for r in json_records(str(tmp_path), 'train'))


def test_with_stock_runner_and_log_buffer(tmp_path):
    runner = toy_runner(str(tmp_path), 'EpochBasedRunner')
    runner.register_training_hooks(
        lr_config=None, optimizer_config=HPUOptimizerHook(grad_clip=dict(max_norm=1.0)),
        log_config=dict(interval=2, hooks=[dict(type='TextLoggerHook')]))
    runner.run([toy_batches(2)], [('train', 1)])
    assert isinstance(json_records(str(tmp_path), 'train')[0]['grad_norm'], float)


def test_detect_anomalous_params(tmp_path, runner_log):
    runner = toy_runner(str(tmp_path), model=ToyModel(unused_param=True))
    runner.register_optimizer_hook(dict(type='HPUOptimizerHook', detect_anomalous_params=True))
    runner.run([toy_batches(1)], [('train', 1)])
    assert 'unused.weight with shape torch.Size([1, 1]) is not in the computational graph' \
        in runner_log.text


@pytest.mark.parametrize('cfg', [dict(grad_clip=None), dict(type='OptimizerHook'),
                                 dict(type=OptimizerHook, grad_clip=dict(max_norm=35))])
def test_stock_optimizer_config_is_upgraded(tmp_path, cfg):
    original = dict(cfg)
    assert upgrade_optimizer_config(cfg)['type'] == 'HPUOptimizerHook'
    assert cfg == original  # the user's config is not modified
    runner = toy_runner(str(tmp_path))
    runner.register_optimizer_hook(cfg)
    assert type(runner.hooks[0]) is HPUOptimizerHook


def test_stock_optimizer_hook_instance_is_upgraded():
    stock = OptimizerHook(grad_clip=dict(max_norm=35), detect_anomalous_params=True)
    hook = upgrade_optimizer_config(stock)
    assert type(hook) is HPUOptimizerHook
    assert hook.grad_clip == dict(max_norm=35) and hook.detect_anomalous_params


@pytest.mark.parametrize('other', [
    None, dict(type='HPUOptimizerHook'), dict(type='GradientCumulativeOptimizerHook'),
    GradientCumulativeOptimizerHook(cumulative_iters=2)])
def test_other_optimizer_configs_are_kept(other):
    assert upgrade_optimizer_config(other) == other


@pytest.mark.parametrize('fp16', [dict(type='Fp16OptimizerHook', loss_scale=512.),
                                  Fp16OptimizerHook(loss_scale=512.)])
def test_fp16_optimizer_hook_points_to_autocast(tmp_path, fp16):
    runner = toy_runner(str(tmp_path))
    with pytest.raises(ValueError, match='--autocast'):
        runner.register_training_hooks(lr_config=None, optimizer_config=fp16)


@pytest.mark.parametrize('bad', [0, -2, 1.5])
def test_log_interval_is_validated(bad):
    with pytest.raises(ValueError, match='log_interval'):
        HPUOptimizerHook(log_interval=bad)
