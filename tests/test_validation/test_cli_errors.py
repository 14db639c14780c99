# ruff: noqa: F811 (the fixtures cli_state and earlier_run come from cli_helpers)
"""Every bad-input row of docs/failures.md through the console scripts.

Each case checks exit status 2, the ``error: ...`` paragraph, that stderr holds no
Python traceback, and that the files already in the work dir are unchanged.
"""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import torch
from cli_helpers import (  # noqa: F401
    DEMO_CONFIG,
    ann_path,
    cli_state,
    earlier_run,
    evaluation_fails,
    fail,
    snapshot,
    train_fails,
)

from mmdet_hpu.checkpoint import save_checkpoint_atomic


class _Evil:
    def __reduce__(self):
        return (os.system, ('echo pwned > /dev/null',))


def test_missing_data_root(cli_state, earlier_run, tmp_path, capsys):
    err = train_fails(capsys, earlier_run, str(tmp_path / 'nowhere'))
    assert err.startswith('error: data_root ') and 'does not exist' in err
    assert '--cfg-options data_root=' in err and 'mmdet-hpu-demo-data' in err


def test_missing_image_folder(cli_state, earlier_run, data, capsys):
    shutil.rmtree(osp.join(data, 'val'))
    err = train_fails(capsys, earlier_run, data)
    assert 'image folder' in err and 'data.val.img_prefix' in err


def test_missing_annotation_file(cli_state, earlier_run, data, capsys):
    os.remove(ann_path(data))
    err = train_fails(capsys, earlier_run, data)
    assert 'instances_train.json' in err and 'data.train.ann_file' in err and 'not found' in err


def test_malformed_json(cli_state, earlier_run, data, capsys):
    with open(ann_path(data), 'w') as f:
        f.write('{"images": [\n  }')
    err = train_fails(capsys, earlier_run, data)
    assert 'is not valid JSON' in err and 'line 2, column 3' in err


def _corrupt_annotations(data):
    with open(ann_path(data)) as f:
        coco = json.load(f)
    coco['annotations'][0]['bbox'] = [5, 5, -3, 4]
    coco['annotations'][1]['category_id'] = 42
    coco['images'][0]['file_name'] = 'missing.png'
    with open(ann_path(data), 'w') as f:
        json.dump(coco, f)
    with open(osp.join(data, 'train', coco['images'][1]['file_name']), 'wb') as f:
        f.write(b'\x89PNG truncated')
    return open(ann_path(data), 'rb').read()


def test_bad_annotations_fail(cli_state, earlier_run, data, capsys):
    original = _corrupt_annotations(data)
    err = train_fails(capsys, earlier_run, data, '--bad-annotations', 'fail')
    for text in ('width or height <= 0', 'category_id 42', 'missing.png', '1 unreadable',
                 '--bad-annotations skip'):
        assert text in err
    assert open(ann_path(data), 'rb').read() == original


def test_bad_annotations_skip_cleans_a_copy(cli_state, earlier_run, data, capsys):
    """Default policy: warn with counts, train on a cleaned copy, keep the user's file."""
    from mmdet_hpu.cli.overrides import merge_cfg_options
    from mmdet_hpu.cli.runtime import load_config
    from mmdet_hpu.cli.train import parse_args
    from mmdet_hpu.validation import preflight_train

    original = _corrupt_annotations(data)
    before = snapshot(earlier_run)
    args = parse_args([DEMO_CONFIG, '--work-dir', earlier_run, '--no-validate'])
    cfg = merge_cfg_options(load_config(DEMO_CONFIG), {'data_root': data + '/'})
    cfg.work_dir = earlier_run
    preflight_train(cfg, args)
    err = capsys.readouterr().err
    assert err.startswith('warning: ') and '1 missing and 1 unreadable image(s)' in err
    assert cfg.data.train.ann_file.startswith(osp.join(earlier_run, 'cleaned_annotations'))
    assert open(ann_path(data), 'rb').read() == original
    after = snapshot(earlier_run)
    assert {k: v for k, v in after.items() if k in before} == before


def test_unknown_config_key(cli_state, earlier_run, data, capsys):
    err = train_fails(capsys, earlier_run, data, 'optimzer.lr=0.1', 'runner.max_epoch=3')
    assert "unknown top-level key 'optimzer'" in err and "Did you mean 'optimizer'?" in err
    assert "Did you mean 'max_epochs'?" in err


def test_unknown_registry_type(cli_state, earlier_run, data, capsys):
    err = train_fails(capsys, earlier_run, data, 'model.bbox_head.type=YOLOV3Hed')
    assert "unknown type 'YOLOV3Hed' at model.bbox_head.type" in err and "'YOLOV3Head'" in err


def test_device_hpu_without_habana(cli_state, earlier_run, data, capsys):
    err = train_fails(capsys, earlier_run, data, flags=['--device', 'hpu'])
    assert 'habana_frameworks is not installed' in err and 'habana-torch-plugin' in err


@pytest.mark.parametrize('mode', ['--lazy', '--eager'])
def test_hpu_mode_on_cpu(cli_state, earlier_run, data, capsys, mode):
    err = train_fails(capsys, earlier_run, data, flags=[mode])
    assert f"execution mode '{mode[2:]}' exists only on HPU" in err and "'cpu'" in err


@pytest.mark.parametrize('value', ['0', '-2'])
def test_batch_size_not_positive(cli_state, earlier_run, data, capsys, value):
    err = train_fails(capsys, earlier_run, data, flags=['--batch-size', value],
                      argparse_error=True)
    assert f'must be a positive integer (>= 1), got {int(value)}' in err


def _five_class_checkpoint(path):
    import mmcv
    from mmdet.models import build_detector

    cfg = mmcv.Config.fromfile(DEMO_CONFIG)
    cfg.model.bbox_head.num_classes = 5
    model = build_detector(cfg.model)
    model.CLASSES = tuple('abcde')
    save_checkpoint_atomic(model, path, meta=dict(epoch=1, iter=1))
    return path


def test_resume_from_checkpoint_with_other_classes(cli_state, earlier_run, data, tmp_path, capsys):
    ckpt = _five_class_checkpoint(str(tmp_path / 'five.pth'))
    err = train_fails(capsys, earlier_run, data, flags=['--resume-from', ckpt])
    assert 'has 5 classes, the config has 3' in err and 'load_from=' in err


def test_resume_from_truncated_checkpoint(cli_state, earlier_run, data, tmp_path, capsys):
    broken = tmp_path / 'broken.pth'
    broken.write_bytes(open(osp.join(earlier_run, 'epoch_1.pth'), 'rb').read()[:100])
    err = train_fails(capsys, earlier_run, data, flags=['--resume-from', str(broken)])
    assert 'could not be read' in err and 'truncated, corrupt' in err


def test_unwritable_work_dir(cli_state, data, tmp_path, capsys):
    blocker = tmp_path / 'not_a_dir'
    blocker.write_text('precious')
    err = train_fails(capsys, str(blocker / 'work'), data)
    assert 'cannot create the work dir' in err and '--work-dir' in err
    assert blocker.read_text() == 'precious'


def test_missing_config_file(cli_state, tmp_path, capsys):
    from mmdet_hpu.cli.train import main

    err = fail(main, [str(tmp_path / 'nope.py'), '--device', 'cpu'], capsys)
    assert 'config file not found' in err


def test_test_checkpoint_with_other_classes(cli_state, earlier_run, pristine_data, tmp_path,
                                            capsys):
    ckpt = _five_class_checkpoint(str(tmp_path / 'five.pth'))
    err = evaluation_fails(capsys, pristine_data, ckpt, earlier_run)
    assert 'has 5 classes, the config has 3' in err
    assert 'model.bbox_head.num_classes=5' in err


def test_test_unsafe_checkpoint_needs_opt_in(cli_state, earlier_run, pristine_data, tmp_path,
                                             capsys):
    evil = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'meta': {'x': _Evil()}}, evil)
    err = evaluation_fails(capsys, pristine_data, evil, earlier_run)
    assert 'system' in err and '--trust-legacy-checkpoint' in err


def test_console_script_prints_one_paragraph(tmp_path, earlier_run):
    """The real process: status 2, one error line, no traceback, work dir intact."""
    before = snapshot(earlier_run)
    proc = subprocess.run(
        [sys.executable, '-m', 'mmdet_hpu.cli.train', DEMO_CONFIG, '--device', 'cpu',
         '--work-dir', earlier_run, '--cfg-options', f'data_root={tmp_path}/nowhere/'],
        capture_output=True, text=True, timeout=300, cwd=str(tmp_path),
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 2
    assert 'Traceback' not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and 'does not exist' in errors[0]
    assert snapshot(earlier_run) == before


def test_trust_flag_help_states_the_risk(capsys, monkeypatch):
    from mmdet_hpu.cli import test as test_cli
    from mmdet_hpu.cli import train as train_cli

    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.setenv('COLUMNS', '200')
    for module, argv in ((train_cli, ['c.py']), (test_cli, ['c.py', 'k.pth', '--eval', 'bbox'])):
        args = module.parse_args(argv + ['--trust-legacy-checkpoint'])
        assert args.trust_legacy_checkpoint and args.bad_annotations == 'skip'
        with pytest.raises(SystemExit):
            module.parse_args(['--help'])
        help_text = capsys.readouterr().out
        assert 'arbitrary code' in help_text and '--bad-annotations {skip,fail,off}' in help_text


def test_test_unwritable_out_folder(cli_state, earlier_run, pristine_data, tmp_path, capsys):
    blocker = tmp_path / 'blocker'
    blocker.write_text('precious')
    err = evaluation_fails(capsys, pristine_data, osp.join(earlier_run, 'epoch_1.pth'),
                           earlier_run, '--out', str(blocker / 'res.pkl'))
    assert '--out folder' in err and 'Fix: pass --out' in err
    assert blocker.read_text() == 'precious'
