"""Exact resume: a run killed mid-epoch and resumed ends with the weights of an uninterrupted run.

* ``test_cli_sigkill_then_auto_resume_is_bit_exact``: the real ``mmdet-hpu-train`` in
  subprocesses (CPU, ``--deterministic --seed 0``, demo shapes data, 8 images, batch 2,
  2 epochs, ``workers_per_gpu=0``, a checkpoint every 3 iterations). Run B is killed by
  a real ``SIGKILL`` that :class:`failure_hooks.DieAtIterHook` sends to its own process
  right after ``iter_3.pth`` was written (mid-epoch 1: 3 of 4 batches), then resumed
  with ``--auto-resume``. Its ``iter_8.pth`` must equal run A's bit for bit.
* In-process tests with a toy model and a shuffling ``DataLoader`` (also with 2 loader
  workers, whose seeds come from torch's global RNG) cover the runner alone.
"""
import glob
import os
import os.path as osp
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmcv.runner import EvalHook, Hook
from runner_helpers import ToyModel, toy_runner
from torch.utils.data import DataLoader, Dataset

from mmdet_hpu.checkpoint import load_checkpoint_safe
from mmdet_hpu.datasets.demo_data import generate_demo_dataset
from mmdet_hpu.runner.resume import META_KEY, capture_rng_state, restore_rng_state

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
DEMO_CFG = osp.join(REPO, 'configs', 'demo', 'yolov3_mobilenetv2-half_128_shapes.py')
TRAIN = osp.join(osp.dirname(sys.executable), 'mmdet-hpu-train')


# ----------------------------------------------------------------------------- helpers
class NoisyDataset(Dataset):
    """Points plus numpy/python/torch noise drawn in ``__getitem__`` (like augmentations)."""

    def __len__(self):
        return 10

    def __getitem__(self, index):
        noise = np.random.rand() + torch.rand(()).item()
        return torch.tensor([float(index), noise], dtype=torch.float32)


class StopAt(Hook):
    """Raise after iteration ``iteration`` (1-based): an in-process stand-in for a kill."""

    def __init__(self, iteration):
        self.iteration = iteration

    def after_train_iter(self, runner):
        if runner.iter + 1 == self.iteration:
            raise KeyboardInterrupt


def _toy_run(work_dir, num_workers, stop_at=None, resume_from=None, max_epochs=2, interval=3):
    torch.manual_seed(0)
    np.random.seed(0)
    model = ToyModel()
    runner = toy_runner(str(work_dir), model=model, max_epochs=max_epochs)
    runner.register_training_hooks(
        lr_config=dict(policy='step', step=[1], warmup='linear', warmup_iters=4),
        optimizer_config=dict(grad_clip=None),
        checkpoint_config=dict(type='HPUCheckpointHook', interval=interval, by_epoch=False),
        log_config=dict(interval=2, hooks=[dict(type='TextLoggerHook')]))
    if stop_at is not None:
        runner.register_hook(StopAt(stop_at), priority='LOWEST')
    loader = DataLoader(NoisyDataset(), batch_size=2, shuffle=True, num_workers=num_workers)
    if resume_from is not None:
        runner.resume(resume_from)
    try:
        runner.run([loader], [('train', 1)])
    except KeyboardInterrupt:
        pass
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _state_dict(path):
    return load_checkpoint_safe(path)['state_dict']


def _assert_same_weights(path_a, path_b):
    a, b = _state_dict(path_a), _state_dict(path_b)
    assert list(a) == list(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key


# ------------------------------------------------------------------------ unit tests
def test_rng_state_round_trip():
    state = capture_rng_state()
    first = (np.random.rand(), torch.rand(()).item(), __import__('random').random())
    restore_rng_state(state)
    assert (np.random.rand(), torch.rand(()).item(), __import__('random').random()) == first


@pytest.mark.parametrize('num_workers', [0, 2])
def test_toy_mid_epoch_resume_is_exact(tmp_path, num_workers):
    full = _toy_run(tmp_path / 'a', num_workers)
    _toy_run(tmp_path / 'b', num_workers, stop_at=3)  # 5 batches/epoch: mid-epoch 1
    ckpt = str(tmp_path / 'b' / 'iter_3.pth')
    assert not osp.exists(tmp_path / 'b' / 'iter_6.pth')
    meta = load_checkpoint_safe(ckpt)['meta']  # weights_only accepts the resume state
    state = meta[META_KEY]
    assert (state['epoch'], state['inner_iter'], state['iter']) == (0, 3, 3)
    resumed = _toy_run(tmp_path / 'b', num_workers, resume_from=ckpt)
    assert torch.equal(full, resumed)


def test_toy_resume_after_last_batch_of_epoch(tmp_path):
    """A checkpoint at the last batch of an epoch resumes at the next epoch's start."""
    full = _toy_run(tmp_path / 'a', 0, max_epochs=3, interval=5)
    _toy_run(tmp_path / 'b', 0, stop_at=5, max_epochs=3, interval=5)  # 5 batches per epoch
    ckpt = str(tmp_path / 'b' / 'iter_5.pth')
    state = load_checkpoint_safe(ckpt)['meta'][META_KEY]
    assert (state['epoch'], state['inner_iter'], state['iter']) == (1, 0, 5)
    resumed = _toy_run(tmp_path / 'b', 0, resume_from=ckpt, max_epochs=3, interval=5)
    assert torch.equal(full, resumed)


def test_stock_checkpoint_resumes_with_a_warning(tmp_path, caplog):
    _toy_run(tmp_path / 'a', 0, stop_at=3)
    ckpt = str(tmp_path / 'a' / 'iter_3.pth')
    checkpoint = load_checkpoint_safe(ckpt)
    del checkpoint['meta'][META_KEY]
    torch.save(checkpoint, ckpt)
    runner = toy_runner(str(tmp_path / 'a'), model=ToyModel(), max_epochs=2)
    runner.resume(ckpt)
    assert 'no exact-resume state' in caplog.text
    assert runner.take_resume_point() is None


# --------------------------------------------------------------------- end to end (CLI)
def write_config(path, die_at=None):
    """The demo config, plus :class:`failure_hooks.DieAtIterHook` when ``die_at`` is set."""
    lines = [f'_base_ = [{DEMO_CFG!r}]']
    if die_at is not None:
        lines += ["custom_imports = dict(imports=['mmdet_hpu', 'failure_hooks'], "
                  'allow_failed_imports=False)',
                  f"custom_hooks = [dict(type='DieAtIterHook', priority='LOWEST', **{die_at!r})]"]
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


def train_cli(config, work_dir, data_root, *extra, check=True, timeout=300):
    """Run ``mmdet-hpu-train`` (tiny, CPU, deterministic) and return the finished process."""
    args = [TRAIN, config, '--work-dir', str(work_dir), '--device', 'cpu', '--no-validate',
            '--deterministic', '--seed', '0', '--epochs', '2',
            '--cfg-options', f'data_root={data_root}/', 'data.samples_per_gpu=2',
            'data.workers_per_gpu=0', 'data.train_dataloader.persistent_workers=False',
            'log_config.interval=2', 'checkpoint_config.interval=3',
            'checkpoint_config.by_epoch=False', 'lr_config.warmup_iters=3', *extra]
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=HERE + os.pathsep
               + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_cli_sigkill_then_auto_resume_is_bit_exact(tmp_path):
    data = tmp_path / 'data'
    generate_demo_dataset(str(data), num_train=8, num_val=2, img_size=64, max_objects=2, seed=0)
    train_cli(DEMO_CFG, tmp_path / 'a', data)
    killing = write_config(tmp_path / 'die.py', dict(iteration=3, how='sigkill'))
    killed = train_cli(killing, tmp_path / 'b', data, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert sorted(osp.basename(p) for p in glob.glob(str(tmp_path / 'b' / '*.pth'))) == \
        ['iter_3.pth', 'latest.pth']
    resumed = train_cli(DEMO_CFG, tmp_path / 'b', data, '--auto-resume')
    assert 'skipped 3 batch(es) already trained in epoch 1' in resumed.stderr + resumed.stdout
    _assert_same_weights(tmp_path / 'a' / 'iter_8.pth', tmp_path / 'b' / 'iter_8.pth')
    _assert_same_weights(tmp_path / 'a' / 'iter_6.pth', tmp_path / 'b' / 'iter_6.pth')


class RngEatingEvalHook(EvalHook):
    """An evaluation whose test function draws from every global RNG."""

    def __init__(self):
        super().__init__(DataLoader([0]), interval=1, by_epoch=True)
        self.test_fn = self._eat

    @staticmethod
    def _eat(model, loader):
        np.random.rand()
        torch.rand(3)
        return []

    def evaluate(self, runner, results):
        return None


def test_evaluation_does_not_change_training_randomness(tmp_path):
    def run(work_dir, evaluate):
        torch.manual_seed(0)
        np.random.seed(0)
        model = ToyModel()
        runner = toy_runner(str(work_dir), model=model, max_epochs=2)
        runner.register_training_hooks(lr_config=None, optimizer_config=dict(grad_clip=None),
                                       log_config=dict(interval=5, hooks=[]))
        if evaluate:
            runner.register_hook(RngEatingEvalHook(), priority='LOW')
        runner.run([DataLoader(NoisyDataset(), batch_size=2, shuffle=True)], [('train', 1)])
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(run(tmp_path / 'a', False), run(tmp_path / 'b', True))
