"""``--auto-resume`` picks the newest checkpoint that loads and says which ones it skipped."""
import logging
import os
import os.path as osp

import pytest
import torch

from mmdet_hpu.apis.auto_resume import find_resume_checkpoint, resume_candidates
from mmdet_hpu.checkpoint import save_checkpoint_atomic, update_latest
from mmdet_hpu.errors import UserError

LOGGER = 'mmdet_hpu.tests.auto_resume'


def _save(work_dir, name, mtime, iteration):
    path = osp.join(work_dir, name)
    save_checkpoint_atomic(torch.nn.Linear(2, 1), path, meta=dict(iter=iteration, epoch=1))
    os.utime(path, (mtime, mtime))
    return path


def _truncate(path):
    size = osp.getsize(path)
    with open(path, 'r+b') as f:
        f.truncate(size // 2)


@pytest.fixture
def work_dir(tmp_path):
    """epoch_1 (oldest), iter_6, iter_9 (newest, latest.pth points at it)."""
    _save(str(tmp_path), 'epoch_1.pth', 1000, 4)
    _save(str(tmp_path), 'iter_6.pth', 2000, 6)
    newest = _save(str(tmp_path), 'iter_9.pth', 3000, 9)
    update_latest(newest)
    _save(str(tmp_path), 'best_bbox_mAP_epoch_1.pth', 4000, 4)  # never a candidate
    return str(tmp_path)


def test_candidates_newest_first(work_dir):
    names = [osp.basename(p) for p in resume_candidates(work_dir)]
    assert names == ['iter_9.pth', 'iter_6.pth', 'epoch_1.pth']


def test_picks_newest_when_valid(work_dir):
    assert find_resume_checkpoint(work_dir) == osp.realpath(osp.join(work_dir, 'iter_9.pth'))


def test_skips_truncated_newest_and_says_so(work_dir, caplog):
    _truncate(osp.join(work_dir, 'iter_9.pth'))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        chosen = find_resume_checkpoint(work_dir, logging.getLogger(LOGGER))
    assert chosen == osp.join(work_dir, 'iter_6.pth')
    skipped = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(skipped) == 1
    assert 'skipping' in skipped[0] and 'iter_9.pth' in skipped[0]
    assert 'truncated' in skipped[0]  # the reason, from the checkpoint package
    assert osp.getsize(osp.join(work_dir, 'iter_9.pth')) > 0  # left in place


def test_skips_garbage_and_empty_files(work_dir):
    with open(osp.join(work_dir, 'iter_9.pth'), 'wb') as f:
        f.write(b'not a checkpoint')
    empty = osp.join(work_dir, 'iter_6.pth')
    open(empty, 'wb').close()
    os.utime(empty, (2000, 2000))
    assert find_resume_checkpoint(work_dir) == osp.join(work_dir, 'epoch_1.pth')


def test_all_unreadable_refuses_to_start_afresh(work_dir):
    for name in ('iter_9.pth', 'iter_6.pth', 'epoch_1.pth'):
        _truncate(osp.join(work_dir, name))
    with pytest.raises(UserError, match='none of the 3 checkpoint'):
        find_resume_checkpoint(work_dir)


def test_no_checkpoint_or_no_dir(tmp_path):
    assert find_resume_checkpoint(str(tmp_path)) is None
    assert find_resume_checkpoint(str(tmp_path / 'missing')) is None
