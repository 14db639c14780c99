"""The checkpoint rows of docs/failures.md through the console scripts (issue 9, 1 and 2).

Each case: exit status 2, one ``error:`` paragraph, no traceback, and the files of an
earlier run in the work dir (checkpoints, ``latest.pth``, log, dumped config)
byte-identical afterwards.
"""
import os
import os.path as osp

import pytest
import torch
from cli_helpers import DEMO_CONFIG, cli_state, earlier_run, evaluation_fails, train_fails  # noqa: F401
from payload_helpers import serve_directory, write_payload

from mmdet_hpu.checkpoint import save_checkpoint_atomic, set_trust_legacy_checkpoints


@pytest.fixture
def server(tmp_path):
    """``(base URL, served folder)`` of a local HTTP server, stopped after the test."""
    root = tmp_path / 'served'
    root.mkdir()
    with serve_directory(root) as base:
        yield base, str(root)


@pytest.fixture(autouse=True)
def _no_opt_in():
    set_trust_legacy_checkpoints(False)
    yield
    set_trust_legacy_checkpoints(False)


def _demo_model(**head):
    import mmcv
    from mmdet.models import build_detector

    cfg = mmcv.Config.fromfile(DEMO_CONFIG)
    cfg.model.bbox_head.update(head)
    return build_detector(cfg.model)


def _demo_classes(data):
    import json

    with open(osp.join(data, 'annotations', 'instances_val.json')) as f:
        return tuple(c['name'] for c in json.load(f)['categories'])


class _Other(torch.nn.Module):
    """Weights of another architecture (a small classifier)."""

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Conv2d(3, 8, 3)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 80)


def _other_architecture(path):
    model = _Other()
    model.CLASSES = tuple(f'class{i}' for i in range(80))  # COCO-sized meta
    save_checkpoint_atomic(model, path, meta=dict(epoch=3, iter=30))
    return path


def test_auto_resume_with_only_random_bytes(cli_state, tmp_path, pristine_data, capsys):  # noqa: F811
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'epoch_1.pth').write_bytes(os.urandom(4096))
    (work / '20240101_000000.log').write_text('epoch 1\n')
    (work / osp.basename(DEMO_CONFIG)).write_text('# dumped\n')
    err = train_fails(capsys, str(work), pristine_data, flags=['--auto-resume'])
    assert 'none of the 1 checkpoint(s)' in err and 'epoch_1.pth: checkpoint' in err
    assert 'could not be read' in err and 'nothing there was overwritten' in err


def test_resume_from_bare_tensor(cli_state, earlier_run, pristine_data, tmp_path, capsys):  # noqa: F811
    bare = str(tmp_path / 'bare.pth')
    torch.save(torch.zeros(3, 4), bare)
    err = train_fails(capsys, earlier_run, pristine_data, flags=['--resume-from', bare])
    assert 'a bare tensor of shape (3, 4), not a checkpoint' in err and '--resume-from' in err


def test_load_from_bare_tensor(cli_state, earlier_run, pristine_data, tmp_path, capsys):  # noqa: F811
    bare = str(tmp_path / 'bare.pth')
    torch.save(torch.zeros(3), bare)
    err = train_fails(capsys, earlier_run, pristine_data, f'load_from={bare}')
    assert 'bare tensor' in err and 'load_from' in err


def test_resume_from_other_architecture(cli_state, earlier_run, pristine_data, tmp_path,  # noqa: F811
                                        capsys):
    ckpt = _other_architecture(str(tmp_path / 'other.pth'))
    err = train_fails(capsys, earlier_run, pristine_data, flags=['--resume-from', ckpt])
    assert 'holds the weights of another architecture' in err
    assert 'num_classes' not in err and '80 classes' not in err  # issue 10's wart
    assert 'are not in it' in err and 'are not in the model' in err


def test_test_other_architecture(cli_state, earlier_run, pristine_data, tmp_path, capsys):  # noqa: F811
    ckpt = _other_architecture(str(tmp_path / 'other.pth'))
    err = evaluation_fails(capsys, pristine_data, ckpt, earlier_run)
    assert 'holds the weights of another architecture' in err and 'untrained' in err
    assert 'num_classes' not in err


def test_test_dataset_classes_not_in_checkpoint(cli_state, earlier_run, pristine_data,  # noqa: F811
                                                tmp_path, capsys):
    model = _demo_model()
    model.CLASSES = ('cat', 'dog', 'bird')
    ckpt = str(tmp_path / 'animals.pth')
    save_checkpoint_atomic(model, ckpt, meta=dict(epoch=1, iter=1))
    err = evaluation_fails(capsys, pristine_data, ckpt, earlier_run)
    assert "trained on the classes ['cat', 'dog', 'bird']" in err
    assert 'class(es) the checkpoint was not trained on' in err and 'data.test.classes' in err


def test_test_dataset_classes_in_another_order(cli_state, earlier_run, pristine_data,  # noqa: F811
                                               tmp_path, capsys):
    model = _demo_model()
    model.CLASSES = tuple(reversed(_demo_classes(pristine_data)))
    ckpt = str(tmp_path / 'reversed.pth')
    save_checkpoint_atomic(model, ckpt, meta=dict(epoch=1, iter=1))
    err = evaluation_fails(capsys, pristine_data, ckpt, earlier_run)
    assert 'another order' in err


def test_test_nonfinite_weights(cli_state, earlier_run, pristine_data, tmp_path, capsys):  # noqa: F811
    model = _demo_model()
    model.CLASSES = _demo_classes(pristine_data)
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    bn.running_mean.fill_(float('nan'))
    ckpt = str(tmp_path / 'nan.pth')
    save_checkpoint_atomic(model, ckpt, meta=dict(epoch=1, iter=1))
    err = evaluation_fails(capsys, pristine_data, ckpt, earlier_run)
    assert 'non-finite values (NaN or Inf) in 1 of its' in err and 'running_mean' in err


def test_test_meta_none_evaluates(cli_state, pristine_data, tmp_path, capsys):  # noqa: F811
    """A checkpoint whose ``meta`` is None (stripped) is tested with the dataset's classes."""
    from mmdet_hpu.cli.test import parse_args, run

    model = _demo_model()
    ckpt = str(tmp_path / 'stripped.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': None}, ckpt)
    args = parse_args([DEMO_CONFIG, ckpt, '--device', 'cpu', '--eval', 'bbox',
                       '--cfg-options', f'data_root={pristine_data}/',
                       'data.workers_per_gpu=0'])
    metric = run(args)
    assert 'bbox_mAP' in metric


def test_train_load_from_http_payload(cli_state, earlier_run, pristine_data, server,  # noqa: F811
                                      tmp_path, capsys, monkeypatch):
    base, root = server
    marker = str(tmp_path / 'PAYLOAD_RAN')
    write_payload(osp.join(root, 'evil.pth'), marker)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    err = train_fails(capsys, earlier_run, pristine_data, f'load_from={base}/evil.pth')
    assert not osp.exists(marker)
    assert f'{base}/evil.pth' in err and '--trust-legacy-checkpoint' in err
    err = train_fails(capsys, earlier_run, pristine_data,
                      'model.backbone.init_cfg.type=Pretrained',
                      f'model.backbone.init_cfg.checkpoint={base}/evil.pth')
    assert not osp.exists(marker) and 'arbitrary code' in err
