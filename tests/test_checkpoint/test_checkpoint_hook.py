"""HPUCheckpointHook: mmcv CheckpointHook behaviour, written atomically."""
import logging
import os
import os.path as osp

import mmcv
import pytest
import torch
from ckpt_helpers import TinyNet
from mmcv.runner import HOOKS, EpochBasedRunner, IterBasedRunner

from mmdet_hpu.checkpoint import HPUCheckpointHook, load_checkpoint_safe, use_atomic_checkpoints


@pytest.fixture(autouse=True)
def _no_epoch_sleep(monkeypatch):
    """mmcv runners sleep 1-2 s per epoch 'to prevent deadlocks'; not needed here."""
    from mmcv.runner import epoch_based_runner, iter_based_runner

    for module in (epoch_based_runner, iter_based_runner):
        monkeypatch.setattr(module.time, 'sleep', lambda seconds: None)


class _Loader(list):
    sampler = None  # IterBasedRunner looks for sampler.set_epoch


def _loader():
    return _Loader(torch.rand(2, 3, 8, 8) for _ in range(2))


def _runner(cls, work_dir, **kwargs):
    model = TinyNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return cls(model, optimizer=optimizer, work_dir=work_dir, logger=logging.getLogger('t'),
               meta=dict(seed=1), **kwargs)


def test_epoch_checkpoints_latest_and_max_keep(tmp_path):
    work_dir = str(tmp_path)
    stale = tmp_path / '.epoch_1.pth.abc.partial'
    stale.write_bytes(b'half a checkpoint from a killed run')
    runner = _runner(EpochBasedRunner, work_dir, max_epochs=3)
    runner.register_hook(HOOKS.build(dict(type='HPUCheckpointHook', interval=1,
                                          max_keep_ckpts=2, meta=dict(CLASSES=('a', 'b')))))
    runner.run([_loader()], [('train', 1)])
    assert sorted(os.listdir(work_dir)) == ['epoch_2.pth', 'epoch_3.pth', 'latest.pth']
    assert os.readlink(osp.join(work_dir, 'latest.pth')) == 'epoch_3.pth'
    checkpoint = load_checkpoint_safe(osp.join(work_dir, 'latest.pth'))
    meta = checkpoint['meta']
    assert (meta['epoch'], meta['iter'], meta['seed']) == (3, 6, 1)
    assert meta['CLASSES'] == ('a', 'b') and 'optimizer' in checkpoint
    assert runner.meta['hook_msgs']['last_ckpt'] == osp.join(work_dir, 'epoch_3.pth')
    # The runner resumes from it (mmcv's loader is the safe one).
    resumed = _runner(EpochBasedRunner, work_dir, max_epochs=4)
    resumed.resume(osp.join(work_dir, 'latest.pth'))
    assert (resumed.epoch, resumed.iter) == (3, 6)


def test_iteration_checkpoints_without_optimizer(tmp_path):
    work_dir = str(tmp_path)
    runner = _runner(IterBasedRunner, work_dir, max_iters=4)
    runner.register_hook(HPUCheckpointHook(interval=2, by_epoch=False, save_optimizer=False,
                                           create_symlink=False))
    runner.run([_loader()], [('train', 1)])
    assert sorted(os.listdir(work_dir)) == ['iter_2.pth', 'iter_4.pth']
    checkpoint = load_checkpoint_safe(osp.join(work_dir, 'iter_4.pth'))
    assert checkpoint['meta']['iter'] == 4 and 'optimizer' not in checkpoint


def test_use_atomic_checkpoints():
    cfg = mmcv.Config(dict(checkpoint_config=dict(interval=1)))
    assert use_atomic_checkpoints(cfg).checkpoint_config.type == 'HPUCheckpointHook'
    cfg = mmcv.Config(dict(checkpoint_config=dict(type='CheckpointHook', interval=1)))
    assert use_atomic_checkpoints(cfg).checkpoint_config.type == 'HPUCheckpointHook'
    cfg = mmcv.Config(dict(checkpoint_config=dict(type='MyHook')))
    assert use_atomic_checkpoints(cfg).checkpoint_config.type == 'MyHook'
    assert use_atomic_checkpoints(mmcv.Config(dict(checkpoint_config=None)))
