"""Corrupt files, the recorded checksum and a full disk (issue 9, sections 2 and 3)."""
import errno
import os
import os.path as osp
import subprocess
import zipfile

import numpy as np
import pytest
import torch
from ckpt_helpers import TinyNet, stepped_optimizer

from mmdet_hpu.apis.auto_resume import find_resume_checkpoint
from mmdet_hpu.checkpoint import (
    CheckpointError,
    CheckpointReadError,
    CheckpointWriteError,
    load_checkpoint_safe,
    loading,
    save_checkpoint_atomic,
    update_latest,
)
from mmdet_hpu.checkpoint.checksum import KEY, PARTS
from mmdet_hpu.errors import UserError


def _save(directory, epoch, model=None, optimizer=True):
    model = model or TinyNet()
    path = osp.join(directory, f'epoch_{epoch}.pth')
    save_checkpoint_atomic(model, path, optimizer=stepped_optimizer(model) if optimizer else None,
                           meta=dict(epoch=epoch, iter=epoch * 4))
    return path


def _flip(data, position, mask=0x10):
    data = bytearray(data)
    data[position] ^= mask
    return bytes(data)


def _entry_ranges(path, keep):
    """Byte ranges of the stored (uncompressed) zip entries whose name ``keep`` accepts."""
    ranges = []
    with zipfile.ZipFile(path) as archive, open(path, 'rb') as raw:
        for info in archive.infolist():
            if not keep(info.filename):
                continue
            raw.seek(info.header_offset + 26)
            name_len, extra_len = np.frombuffer(raw.read(4), dtype='<u2')
            start = info.header_offset + 30 + int(name_len) + int(extra_len)
            ranges.append((start, start + info.file_size))
    return ranges


def _data_ranges(path):
    """Byte ranges of the tensor storages inside the zip (``archive/data/N``)."""
    return _entry_ranges(path, lambda name: '/data/' in name)


def _same(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return a == b


@pytest.mark.parametrize('size', [0, 1, 7, 512, 65536])
def test_random_bytes_raise_checkpoint_error(tmp_path, size):
    for seed in range(5):
        path = tmp_path / f'random_{seed}.pth'
        path.write_bytes(np.random.default_rng(seed).bytes(size))
        with pytest.raises(CheckpointReadError, match='could not be read'):
            load_checkpoint_safe(str(path))


@pytest.mark.parametrize('stride', [
    pytest.param(61, id='sampled'), pytest.param(1, id='every-byte', marks=pytest.mark.slow)])
def test_every_flipped_byte_is_an_error_or_harmless(tmp_path, stride):
    """Any one flipped byte: a CheckpointError, or the same content (zip header padding)."""
    path = _save(str(tmp_path), 1)
    original = open(path, 'rb').read()
    reference = load_checkpoint_safe(path)
    data_positions = [p for start, end in _data_ranges(path)
                      for p in range(start, end, max(1, stride // 3))]
    assert len(data_positions) > 50
    positions = sorted(set(range(0, len(original), stride)) | set(data_positions))
    errors = harmless = 0
    in_data = set(data_positions)
    target = str(tmp_path / 'flipped.pth')
    for position in positions:
        with open(target, 'wb') as f:
            f.write(_flip(original, position))
        try:
            loaded = load_checkpoint_safe(target)
        except CheckpointError:
            errors += 1
            continue
        assert position not in in_data, f'flipped tensor byte {position} loaded silently'
        # The state is what was written (a byte of the checksum record itself may differ).
        state = {k: v for k, v in loaded.items() if k in PARTS}
        assert _same(state, reference), f'byte {position} changed the content silently'
        harmless += 1
    assert errors > len(in_data)


def test_checksum_names_the_changed_part(tmp_path, monkeypatch):
    """The content checksum on its own (the zip CRC check, which fires first, switched off)."""
    monkeypatch.setattr(loading, 'verify_zip_crcs', lambda filename, shown: None)
    path = _save(str(tmp_path), 1)
    start, end = _data_ranges(path)[0]
    with open(path, 'r+b') as f:
        f.seek(start)
        byte = f.read(1)
        f.seek(start)
        f.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(CheckpointReadError) as err:
        load_checkpoint_safe(path)
    assert 'checksum of its state_dict' in str(err.value) and KEY in str(err.value)


def _record_version_position(path):
    """File offset of the checksum record's version number: the record is pickled last, as
    ``dict(version=1, ...)``, so its first ``BININT1 1`` after the key is the version."""
    (start, end), = _entry_ranges(path, lambda name: name.endswith('/data.pkl'))
    pickled = open(path, 'rb').read()[start:end]
    opcode = pickled.index(b'K\x01', pickled.index(KEY.encode()))
    return start + opcode + 1


def test_a_flip_that_still_unpickles_is_refused_by_the_zip_crc(tmp_path, monkeypatch):
    """Version 1 -> 17 in the checksum record unpickles fine and turns the content check off
    (a record of an unknown version is not verified): the entry's CRC-32 still catches it."""
    path = _save(str(tmp_path), 1)
    position = _record_version_position(path)
    flipped = _flip(open(path, 'rb').read(), position)
    with open(path, 'wb') as f:
        f.write(flipped)
    with pytest.raises(CheckpointReadError) as err:
        load_checkpoint_safe(path)
    assert "'archive/data.pkl'" in str(err.value) and 'earlier checkpoint' in str(err.value)
    # Without the zip check the same file loads: the content checksum alone misses it.
    monkeypatch.setattr(loading, 'verify_zip_crcs', lambda filename, shown: None)
    assert load_checkpoint_safe(path)['meta']['epoch'] == 1


def test_every_entry_is_crc_checked_stock_files_too(tmp_path):
    """A plain ``torch.save`` file (no mmdet-hpu checksum): a flipped tensor byte is refused."""
    path = str(tmp_path / 'stock.pth')
    torch.save(dict(state_dict=TinyNet().state_dict(), meta=dict(epoch=1)), path)
    start, _ = _data_ranges(path)[-1]
    flipped = _flip(open(path, 'rb').read(), start, 0x01)
    with open(path, 'wb') as f:
        f.write(flipped)
    with pytest.raises(CheckpointReadError, match='zip archive does not match'):
        load_checkpoint_safe(path)


def test_files_written_without_crcs_still_load(tmp_path):
    """torch writes CRC 0 when ``compute_crc32`` is off: those entries are not checked."""
    config = getattr(getattr(torch.utils, 'serialization', None), 'config', None)
    if config is None or not hasattr(config.save, 'compute_crc32'):
        pytest.skip(f'torch {torch.__version__} has no compute_crc32 switch')
    path = str(tmp_path / 'no_crc.pth')
    config.save.compute_crc32 = False
    try:
        _save(str(tmp_path), 1)
        os.replace(str(tmp_path / 'epoch_1.pth'), path)
    finally:
        config.save.compute_crc32 = True
    with zipfile.ZipFile(path) as archive:
        assert {info.CRC for info in archive.infolist()} == {0}
    assert load_checkpoint_safe(path)['meta']['epoch'] == 1


def test_auto_resume_skips_a_checkpoint_whose_checksum_fails(tmp_path, caplog):
    first = _save(str(tmp_path), 1)
    second = _save(str(tmp_path), 2)
    update_latest(second)
    start, _ = _data_ranges(second)[-1]
    data = _flip(open(second, 'rb').read(), start, 0x01)
    with open(second, 'wb') as f:
        f.write(data)
    assert find_resume_checkpoint(str(tmp_path)) == first
    assert 'does not match its content' in caplog.text and 'epoch_2.pth' in caplog.text


def test_checksum_tolerates_removed_parts_and_is_not_resaved(tmp_path):
    path = _save(str(tmp_path), 1)
    checkpoint = torch.load(path, weights_only=False)
    del checkpoint['optimizer']  # what mmdet's publish_model does
    torch.save(checkpoint, path)
    loaded = load_checkpoint_safe(path)
    assert KEY not in loaded and 'optimizer' not in loaded
    loaded['state_dict']['fc.bias'] += 1  # an edited copy re-saved: no stale checksum
    torch.save(loaded, path)
    assert torch.equal(load_checkpoint_safe(path)['state_dict']['fc.bias'],
                       loaded['state_dict']['fc.bias'])


def test_edited_file_with_stale_checksum_is_refused(tmp_path):
    path = _save(str(tmp_path), 1)
    checkpoint = torch.load(path, weights_only=False)
    checkpoint['meta']['epoch'] = 7
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointReadError, match='checksum of its meta'):
        load_checkpoint_safe(path)


class _FullDiskFile:
    """A file object whose writes fail with ENOSPC after ``room`` bytes."""

    def __init__(self, real, room):
        self.real, self.room = real, room

    def write(self, data):
        if len(data) > self.room:
            self.real.write(bytes(data[:self.room]))
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.real.write(data)

    def __getattr__(self, name):
        return getattr(self.real, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.real.close()


def _assert_previous_intact(directory, first, before):
    assert open(first, 'rb').read() == before
    assert load_checkpoint_safe(osp.join(directory, 'latest.pth'))['meta']['epoch'] == 1
    assert not osp.exists(osp.join(directory, 'epoch_2.pth'))
    assert [f for f in os.listdir(directory) if f.endswith('.partial')] == []


def test_full_disk_during_save(tmp_path, monkeypatch):
    from mmdet_hpu.checkpoint import saving

    first = _save(str(tmp_path), 1)
    update_latest(first)
    before = open(first, 'rb').read()
    real_fdopen = os.fdopen
    monkeypatch.setattr(saving.os, 'fdopen',
                        lambda fd, mode: _FullDiskFile(real_fdopen(fd, mode), room=1000))
    with pytest.raises(CheckpointWriteError) as err:
        _save(str(tmp_path), 2)
    monkeypatch.undo()
    message = str(err.value)
    assert isinstance(err.value, UserError)  # the CLI prints it as one paragraph, exit 2
    assert 'no space left' in message and osp.join(str(tmp_path), 'epoch_2.pth') in message
    needed = int(message.split('it needs ')[1].split(' bytes')[0])
    assert abs(needed - len(before)) < 64  # the same model: about the same size
    _assert_previous_intact(str(tmp_path), first, before)


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 512 KiB tmpfs (needs root and mount rights; skipped otherwise)."""
    mount = tmp_path / 'tmpfs'
    mount.mkdir()
    proc = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', str(mount)],
                          capture_output=True, timeout=30)
    if proc.returncode != 0:
        pytest.skip(f'cannot mount a tmpfs here: {proc.stderr.decode().strip()}')
    try:
        yield str(mount)
    finally:
        subprocess.run(['umount', str(mount)], capture_output=True, timeout=30)


def test_full_disk_on_a_real_tmpfs(tiny_tmpfs):
    model = torch.nn.Linear(300, 300)  # about 360 KB: the second checkpoint does not fit
    first = osp.join(tiny_tmpfs, 'epoch_1.pth')
    save_checkpoint_atomic(model, first, meta=dict(epoch=1, iter=1))
    update_latest(first)
    before = open(first, 'rb').read()
    with pytest.raises(CheckpointWriteError, match='no space left') as err:
        save_checkpoint_atomic(model, osp.join(tiny_tmpfs, 'epoch_2.pth'),
                               meta=dict(epoch=2, iter=2))
    assert 'bytes are free' in str(err.value)
    _assert_previous_intact(tiny_tmpfs, first, before)
