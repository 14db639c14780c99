"""Crash-safe writing: content as mmcv, host optimizer state, interrupted saves."""
import os
import os.path as osp
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from ckpt_helpers import TinyNet, stepped_optimizer
from mmcv.runner import save_checkpoint

from mmdet_hpu.checkpoint import (
    load_checkpoint_safe,
    remove_partial_files,
    save_checkpoint_atomic,
    tensors_to_cpu,
    update_latest,
)
from mmdet_hpu.checkpoint import saving as saving_mod


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _tensors(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _tensors(value)


def _partials(directory):
    return [f for f in os.listdir(directory) if f.endswith('.partial')]


def test_same_content_as_mmcv_save_checkpoint(tmp_path):
    model = TinyNet()
    optimizer = stepped_optimizer(model)
    save_checkpoint(model, str(tmp_path / 'mmcv.pth'), optimizer=optimizer, meta=dict(epoch=1))
    save_checkpoint_atomic(model, str(tmp_path / 'ours.pth'), optimizer=optimizer,
                           meta=dict(epoch=1))
    theirs = torch.load(tmp_path / 'mmcv.pth', weights_only=False)
    ours = load_checkpoint_safe(str(tmp_path / 'ours.pth'))
    assert ours.keys() == theirs.keys() == {'meta', 'state_dict', 'optimizer'}
    assert ours['meta'].keys() == theirs['meta'].keys()
    assert ours['meta']['CLASSES'] == ('a', 'b')
    assert list(ours['state_dict']) == list(theirs['state_dict'])
    for key, value in theirs['state_dict'].items():
        assert torch.equal(ours['state_dict'][key], value)
    assert ours['optimizer']['param_groups'] == theirs['optimizer']['param_groups']
    for a, b in zip(_tensors(ours['optimizer']), _tensors(theirs['optimizer'])):
        assert torch.equal(a, b)
    assert _partials(tmp_path) == []


class _DeviceTensor(torch.Tensor):
    """A tensor that records ``.cpu()`` calls (stands in for an HPU/CUDA tensor)."""

    moved = []

    def cpu(self, *args, **kwargs):
        _DeviceTensor.moved.append(self.shape)
        return torch.Tensor.cpu(self, *args, **kwargs).as_subclass(torch.Tensor)


def test_optimizer_state_is_moved_to_host(tmp_path, monkeypatch):
    model = TinyNet()
    optimizer = stepped_optimizer(model)
    real_state_dict = optimizer.state_dict

    def device_state_dict():
        state = real_state_dict()
        for slot in state['state'].values():
            for name, value in slot.items():
                slot[name] = value.as_subclass(_DeviceTensor)
        return state

    monkeypatch.setattr(optimizer, 'state_dict', device_state_dict)
    _DeviceTensor.moved.clear()
    save_checkpoint_atomic(model, str(tmp_path / 'e.pth'), optimizer=optimizer)
    num_state_tensors = sum(len(s) for s in real_state_dict()['state'].values())
    assert len(_DeviceTensor.moved) == num_state_tensors > 0
    loaded = load_checkpoint_safe(str(tmp_path / 'e.pth'))
    assert all(type(t) is torch.Tensor and t.device.type == 'cpu'
               for t in _tensors(loaded['optimizer']))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_cuda_optimizer_state_saved_on_host(tmp_path):
    model = TinyNet().cuda()
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.rand(2, 3, 8, 8, device='cuda')).sum().backward()
    optimizer.step()
    save_checkpoint_atomic(model, str(tmp_path / 'e.pth'), optimizer=optimizer)
    loaded = torch.load(tmp_path / 'e.pth', map_location=None, weights_only=True)
    assert all(t.device.type == 'cpu' for t in _tensors(loaded))


def test_tensors_to_cpu_keeps_structure():
    state = {'a': [torch.ones(2), (torch.zeros(1), 3)], 'b': 'x'}
    out = tensors_to_cpu(state)
    assert out['b'] == 'x' and isinstance(out['a'][1], tuple) and out['a'][1][1] == 3
    assert torch.equal(out['a'][0], torch.ones(2))


def _save_epoch(model, directory, epoch):
    path = osp.join(directory, f'epoch_{epoch}.pth')
    save_checkpoint_atomic(model, path, meta=dict(epoch=epoch))
    update_latest(path)
    return path


@pytest.mark.parametrize('target', ['epoch_2.pth', 'epoch_1.pth'])
def test_interrupted_save_keeps_previous_checkpoint(tmp_path, monkeypatch, target):
    model = TinyNet()
    first = _save_epoch(model, str(tmp_path), 1)
    before = open(first, 'rb').read()
    real_save = torch.save

    def half_then_die(obj, file):
        real_save(obj, file)
        file.seek(0)
        file.truncate(len(before) // 2)  # half the bytes are on disk ...
        raise KeyboardInterrupt('killed mid-write')  # ... when the process dies

    monkeypatch.setattr(saving_mod.torch, 'save', half_then_die)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint_atomic(model, str(tmp_path / target), meta=dict(epoch=2))
    monkeypatch.undo()
    assert _partials(tmp_path) == []
    assert not osp.exists(tmp_path / 'epoch_2.pth')
    assert open(first, 'rb').read() == before
    assert load_checkpoint_safe(str(tmp_path / 'latest.pth'))['meta']['epoch'] == 1


# Loads saving.py by path: importing the mmdet_hpu package would take seconds.
_KILLED_WRITER = textwrap.dedent('''
    import importlib.util, sys, time
    spec = importlib.util.spec_from_file_location('saving', sys.argv[2])
    saving = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(saving)
    with saving.atomic_write(sys.argv[1]) as f:
        f.write(b'x' * 1000000)
        f.flush()
        print('writing', flush=True)
        time.sleep(60)
''')


def test_killed_process_leaves_previous_latest_loadable(tmp_path):
    model = TinyNet()
    _save_epoch(model, str(tmp_path), 1)
    proc = subprocess.Popen([sys.executable, '-c', _KILLED_WRITER, str(tmp_path / 'epoch_2.pth'),
                             saving_mod.__file__],
                            stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS='1'))
    try:
        assert proc.stdout.readline().strip() == 'writing'
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        proc.stdout.close()
    assert not osp.exists(tmp_path / 'epoch_2.pth')
    assert len(_partials(tmp_path)) == 1  # the dead process could not clean up ...
    assert load_checkpoint_safe(str(tmp_path / 'latest.pth'))['meta']['epoch'] == 1
    assert len(remove_partial_files(str(tmp_path))) == 1  # ... the next run does
    assert _partials(tmp_path) == []


def test_update_latest_switches_symlink_atomically(tmp_path):
    model = TinyNet()
    _save_epoch(model, str(tmp_path), 1)
    _save_epoch(model, str(tmp_path), 2)
    assert os.readlink(tmp_path / 'latest.pth') == 'epoch_2.pth'
    assert _partials(tmp_path) == []


def test_update_latest_copies_without_symlinks(tmp_path, monkeypatch):
    model = TinyNet()
    path = osp.join(str(tmp_path), 'epoch_1.pth')
    save_checkpoint_atomic(model, path)

    def no_symlinks(*args, **kwargs):
        raise OSError('symlinks not supported')

    monkeypatch.setattr(saving_mod.os, 'symlink', no_symlinks)
    update_latest(path)
    assert not osp.islink(tmp_path / 'latest.pth')
    assert open(tmp_path / 'latest.pth', 'rb').read() == open(path, 'rb').read()
    assert _partials(tmp_path) == []


def test_new_checkpoint_has_default_permissions(tmp_path):
    path = str(tmp_path / 'e.pth')
    save_checkpoint_atomic(TinyNet(), path)
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask
