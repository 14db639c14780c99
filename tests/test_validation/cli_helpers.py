"""Helpers of the bad-input tests: an earlier run's work dir and a failing console script.

Every case checks exit status 2, one ``error: ...`` paragraph, no Python traceback on
stderr, and that every file of the earlier run (checkpoint, ``latest.pth``, log,
dumped config) is byte-identical afterwards.
"""
import hashlib
import json
import os
import os.path as osp

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CONFIG = osp.join(REPO, 'configs', 'demo', 'yolov3_mobilenetv2-half_128_shapes.py')


def snapshot(root):
    """``{relative path: (link target or sha1 of the bytes, mtime)}`` of a tree."""
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = osp.join(folder, name)
            if osp.islink(path):
                content = 'link:' + os.readlink(path)
            else:
                content = hashlib.sha1(open(path, 'rb').read()).hexdigest()
            out[osp.relpath(path, root)] = (content, os.lstat(path).st_mtime_ns)
    return out


@pytest.fixture
def earlier_run(tmp_path):
    """A work dir of an earlier run: checkpoint, ``latest.pth``, log and dumped config."""
    from mmdet_hpu.checkpoint import save_checkpoint_atomic, update_latest

    path = tmp_path / 'work'
    path.mkdir()
    epoch = str(path / 'epoch_1.pth')
    save_checkpoint_atomic(torch.nn.Linear(2, 2), epoch, meta=dict(epoch=1, iter=4))
    update_latest(epoch)
    (path / '20240101_000000.log').write_text('epoch 1 went fine\n')
    (path / osp.basename(DEMO_CONFIG)).write_text(open(DEMO_CONFIG).read())
    return str(path)


@pytest.fixture
def cli_state(monkeypatch):
    """Keep the environment and device state of this process as they were."""
    from mmdet_hpu import device

    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.delenv('PT_HPU_LAZY_MODE', raising=False)
    device.reset_state()
    yield
    device.reset_state()


def fail(main, argv, capsys, work_dir=None, argparse_error=False):
    """Run a console script's ``main(argv)``; it must exit 2 and leave ``work_dir`` (if
    given; a folder that does not exist must not appear) as it was.

    Args:
        argparse_error (bool): the command line itself is refused: argparse's usage, then one
            ``<prog>: error: ...`` line (docs/failures.md), instead of one ``error: ...``
            paragraph.

    Returns:
        str: stderr.
    """
    before = snapshot(work_dir) if work_dir else None
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert 'Traceback' not in err and 'Exception ignored' not in err, err
    if argparse_error:
        assert err.startswith('usage: '), err
        assert [': error: ' in line for line in err.splitlines()].count(True) == 1, err
        assert ': error: ' in err.rstrip().splitlines()[-1], err
    else:
        assert err.startswith('error: ') and err.count('\nerror') == 0, err
    if work_dir:
        assert snapshot(work_dir) == before, 'a file of the earlier run changed'
    return err


def train_fails(capsys, work_dir, data_root, *options, config=DEMO_CONFIG, flags=(),
                argparse_error=False):
    """``mmdet-hpu-train`` on the demo config must fail cleanly; returns the message."""
    from mmdet_hpu.cli.train import main

    argv = [config, '--device', 'cpu', '--work-dir', work_dir, *flags,
            '--cfg-options', f'data_root={data_root}/', 'data.workers_per_gpu=0', *options]
    return fail(main, argv, capsys, work_dir, argparse_error)


def evaluation_fails(capsys, data_root, checkpoint, work_dir, *flags, config=DEMO_CONFIG):
    """``mmdet-hpu-test --eval bbox`` on the demo config must fail cleanly; returns the
    message."""
    from mmdet_hpu.cli.test import main

    argv = [config, checkpoint, '--device', 'cpu', '--eval', 'bbox', '--work-dir', work_dir,
            *flags, '--cfg-options', f'data_root={data_root}/', 'data.workers_per_gpu=0']
    return fail(main, argv, capsys, work_dir)


def ann_path(data, split='train'):
    return osp.join(data, 'annotations', f'instances_{split}.json')


def edit_coco(data, change, split='train'):
    """Apply ``change(coco_dict)`` to a split's annotation file (in place)."""
    path = ann_path(data, split)
    with open(path) as f:
        coco = json.load(f)
    change(coco)
    with open(path, 'w') as f:
        json.dump(coco, f)
    return coco
