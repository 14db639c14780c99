"""Every checkpoint write is atomic: ``runner.save_checkpoint`` and ``save_best``."""
import logging
import os
import os.path as osp

import pytest
import torch
from mmcv.runner import EpochBasedRunner, build_runner
from runner_helpers import ToyModel

from mmdet_hpu.checkpoint import load_checkpoint_safe
from mmdet_hpu.checkpoint import saving as saving_mod
from mmdet_hpu.runner import HPUEvalHook


def _runner(work_dir, runner_type='HPUEpochBasedRunner'):
    model = ToyModel()
    cfg = dict(type=runner_type, max_epochs=3) if 'Epoch' in runner_type else \
        dict(type=runner_type, max_iters=9)
    return build_runner(cfg, default_args=dict(
        model=model, work_dir=work_dir, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        logger=logging.getLogger('test_atomic_runner_saves'), meta=dict(seed=1)))


def _partials(directory):
    return [f for f in os.listdir(directory) if f.endswith('.partial')]


def _die_mid_write(monkeypatch):
    real_save = torch.save

    def half_then_die(obj, file):
        real_save(obj, file)
        file.seek(0)
        file.truncate(100)  # part of the bytes are on disk ...
        raise KeyboardInterrupt('killed mid-write')  # ... when the process dies

    monkeypatch.setattr(saving_mod.torch, 'save', half_then_die)


def test_runner_save_checkpoint_matches_stock_and_is_atomic(tmp_path, monkeypatch):
    ours, stock_dir = _runner(str(tmp_path / 'ours')), str(tmp_path / 'stock')
    os.makedirs(stock_dir)
    ours._epoch, ours._iter = 1, 6
    ours.save_checkpoint(ours.work_dir, meta=dict(extra=3))
    stock = _runner(stock_dir, 'EpochBasedRunner')
    stock._epoch, stock._iter = 1, 6
    EpochBasedRunner.save_checkpoint(stock, stock_dir, meta=dict(extra=3))
    mine = load_checkpoint_safe(osp.join(ours.work_dir, 'latest.pth'))
    theirs = load_checkpoint_safe(osp.join(stock_dir, 'latest.pth'))
    assert os.readlink(osp.join(ours.work_dir, 'latest.pth')) == 'epoch_2.pth'
    for key in ('epoch', 'iter', 'extra', 'seed'):
        assert mine['meta'][key] == theirs['meta'][key]
    assert mine.keys() == theirs.keys() and mine['state_dict'].keys() == theirs['state_dict'].keys()

    ours._epoch = 2
    _die_mid_write(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        ours.save_checkpoint(ours.work_dir)
    monkeypatch.undo()
    assert _partials(ours.work_dir) == [] and not osp.exists(osp.join(ours.work_dir,
                                                                      'epoch_3.pth'))
    assert load_checkpoint_safe(osp.join(ours.work_dir, 'latest.pth'))['meta']['epoch'] == 2


def test_iter_runner_save_checkpoint(tmp_path):
    runner = _runner(str(tmp_path), 'HPUIterBasedRunner')
    runner._iter = 4
    runner.save_checkpoint(str(tmp_path), 'it_{}.pth', dict(note=1))  # IterBasedRunner's order
    checkpoint = load_checkpoint_safe(str(tmp_path / 'latest.pth'))
    assert os.readlink(tmp_path / 'latest.pth') == 'it_5.pth'
    assert checkpoint['meta']['iter'] == 4 and checkpoint['meta']['epoch'] == 1  # stock values
    assert checkpoint['meta']['note'] == 1 and 'optimizer' in checkpoint


def test_kill_during_save_best_keeps_the_previous_best(tmp_path, monkeypatch):
    runner = _runner(str(tmp_path))
    hook = HPUEvalHook(torch.utils.data.DataLoader([0, 1]), save_best='bbox_mAP')
    hook.before_run(runner)
    hook._save_ckpt(runner, 0.5)
    first = osp.join(str(tmp_path), 'best_bbox_mAP_epoch_1.pth')
    assert runner.meta['hook_msgs']['best_ckpt'] == first
    before = open(first, 'rb').read()

    runner._epoch = 1
    _die_mid_write(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        hook._save_ckpt(runner, 0.7)
    monkeypatch.undo()
    assert _partials(str(tmp_path)) == []
    assert not osp.exists(tmp_path / 'best_bbox_mAP_epoch_2.pth')
    assert open(first, 'rb').read() == before and load_checkpoint_safe(first)['meta']['epoch'] == 1

    runner._epoch = 2
    hook._save_ckpt(runner, 0.7)  # a later evaluation: the new best, then the old one goes
    assert sorted(f for f in os.listdir(tmp_path) if f.startswith('best_')) == [
        'best_bbox_mAP_epoch_3.pth']
    assert runner.meta['hook_msgs']['best_score'] == 0.7
    hook._save_ckpt(runner, 0.6)  # not better: nothing written
    assert runner.meta['hook_msgs']['best_ckpt'].endswith('best_bbox_mAP_epoch_3.pth')
