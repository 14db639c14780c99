"""weights_only loading with the mmcv/mmdet allow-list, and the explicit opt-in."""
import logging
import os
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from ckpt_helpers import CustomThing, Payload, TinyNet, stepped_optimizer
from mmcv.runner import EpochBasedRunner, load_checkpoint, save_checkpoint

from mmdet_hpu.checkpoint import (
    OPT_IN_FLAG,
    CheckpointReadError,
    UnsafeCheckpointError,
    load_checkpoint_safe,
    set_trust_legacy_checkpoints,
)
from mmdet_hpu.checkpoint.allowlist import describe
from mmdet_hpu.errors import UserError

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CONFIG = osp.join(REPO, 'configs', 'demo', 'yolov3_mobilenetv2-half_128_shapes.py')


@pytest.fixture(autouse=True)
def _untrusted():
    set_trust_legacy_checkpoints(False)
    yield
    set_trust_legacy_checkpoints(False)


def _runner_checkpoint(directory):
    """What EpochBasedRunner + mmdet hooks write, numpy values in meta included."""
    model = TinyNet()
    optimizer = stepped_optimizer(model, 'sgd')
    meta = dict(seed=np.int64(7), env_info='env', config='model = dict()', exp_name='x.py',
                hook_msgs=dict(last_ckpt='epoch_1.pth', best_score=np.float64(0.25),
                               best_ckpt='best_bbox_mAP_epoch_1.pth'),
                rng=dict(numpy=np.random.get_state(), torch=torch.get_rng_state()))
    runner = EpochBasedRunner(model, optimizer=optimizer, work_dir=directory,
                              logger=logging.getLogger('test'), meta=meta)
    runner.save_checkpoint(directory, meta=dict(mmdet_version='2.28.2', CLASSES=model.CLASSES))
    return osp.join(directory, 'epoch_1.pth')


def test_runner_checkpoint_with_numpy_meta_loads(tmp_path):
    path = _runner_checkpoint(str(tmp_path))
    with pytest.raises(Exception, match='numpy'):  # torch's plain weights_only load refuses
        torch.load(path, weights_only=True)
    checkpoint = load_checkpoint_safe(path)
    meta = checkpoint['meta']
    assert meta['hook_msgs']['best_score'] == np.float64(0.25) and meta['seed'] == 7
    assert meta['rng']['numpy'][1].dtype == np.uint32 and meta['CLASSES'] == ('a', 'b')
    assert (meta['epoch'], meta['iter']) == (1, 0)
    assert checkpoint['optimizer']['param_groups'][0]['momentum'] == 0.9
    # Every extra global in the file is one of the documented allow-listed names.
    assert set(torch.serialization.get_unsafe_globals_in_checkpoint(path)) <= set(describe())


def test_mmdet_detector_checkpoint_loads(tmp_path):
    from mmdet.models import build_detector

    cfg = mmcv.Config.fromfile(DEMO_CONFIG)
    model = build_detector(cfg.model)
    model.CLASSES = ('circle', 'square', 'triangle')
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.001)
    path = str(tmp_path / 'yolo.pth')
    save_checkpoint(model, path, optimizer=optimizer, meta=dict(mmdet_version='2.28.2'))
    checkpoint = load_checkpoint_safe(path)
    assert checkpoint['meta']['CLASSES'] == model.CLASSES
    assert checkpoint['state_dict'].keys() == model.state_dict().keys()


def test_mmcv_loaders_use_the_safe_loader(tmp_path):
    """runner.resume / load_from go through mmcv's CheckpointLoader: it is ours now."""
    path = _runner_checkpoint(str(tmp_path))
    model = TinyNet()
    checkpoint = load_checkpoint(model, path, map_location='cpu')  # numpy meta: fine
    assert checkpoint['meta']['seed'] == 7
    evil = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'x': Payload(str(tmp_path / 'ran'))}, evil)
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(model, evil, map_location='cpu')
    assert not osp.exists(tmp_path / 'ran')


def test_reduce_payload_fails_safely_then_loads_with_opt_in(tmp_path):
    marker = str(tmp_path / 'ran')
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': TinyNet().state_dict(), 'meta': {'x': Payload(marker)}}, path)
    with pytest.raises(UnsafeCheckpointError) as err:
        load_checkpoint_safe(path)
    assert 'ckpt_helpers.mark' in str(err.value) and OPT_IN_FLAG in str(err.value)
    assert isinstance(err.value, UserError)  # the CLI prints it without a traceback
    assert not osp.exists(marker)
    assert load_checkpoint_safe(path, allow_unsafe=True)['meta']['x'] == 'payload'
    assert osp.exists(marker)


def test_os_system_payload_is_named(tmp_path):
    class SystemCall:
        def __reduce__(self):
            return (os.system, ('echo should-never-run',))

    path = str(tmp_path / 'evil.pth')
    torch.save({'meta': SystemCall()}, path)
    with pytest.raises(UnsafeCheckpointError, match=r'(posix|os)\.system'):
        load_checkpoint_safe(path)


def test_custom_class_needs_process_wide_opt_in(tmp_path):
    path = str(tmp_path / 'custom.pth')
    torch.save({'meta': {'thing': CustomThing()}}, path)
    with pytest.raises(UnsafeCheckpointError, match='ckpt_helpers.CustomThing'):
        load_checkpoint(TinyNet(), path)
    set_trust_legacy_checkpoints(True)
    assert load_checkpoint_safe(path)['meta']['thing'].value == 3


def test_truncated_and_missing_files_are_read_errors(tmp_path):
    path = str(tmp_path / 'epoch_1.pth')
    save_checkpoint(TinyNet(), path)
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(CheckpointReadError, match='truncated, corrupt'):
        load_checkpoint_safe(path)
    with pytest.raises(CheckpointReadError, match='not found'):
        load_checkpoint_safe(str(tmp_path / 'nope.pth'))
    (tmp_path / 'text.pth').write_text('not a checkpoint')
    with pytest.raises(CheckpointReadError):
        load_checkpoint_safe(str(tmp_path / 'text.pth'))


def test_allow_list_covers_both_numpy_spellings():
    names = describe()
    for func in ('scalar', '_reconstruct'):
        assert f'numpy.core.multiarray.{func}' in names
        assert f'numpy._core.multiarray.{func}' in names
    assert not any('Object' in n or 'Void' in n for n in names)
