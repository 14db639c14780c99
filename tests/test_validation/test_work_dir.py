"""check_work_dir: fail before training when checkpoints could not be saved."""
import os

import pytest

from mmdet_hpu.validation import ValidationError, check_work_dir
from mmdet_hpu.validation import work_dir as work_dir_mod


def test_creates_missing_dir_and_leaves_no_probe(tmp_path):
    path = tmp_path / 'a' / 'b'
    assert check_work_dir(str(path)) == str(path)
    assert os.listdir(path) == []


def test_existing_files_are_untouched(tmp_path):
    (tmp_path / 'epoch_1.pth').write_bytes(b'weights')
    check_work_dir(str(tmp_path))
    assert os.listdir(tmp_path) == ['epoch_1.pth']
    assert (tmp_path / 'epoch_1.pth').read_bytes() == b'weights'


def test_path_below_a_file_cannot_be_created(tmp_path):
    (tmp_path / 'file').write_text('x')
    with pytest.raises(ValidationError, match='cannot create the work dir .* Fix: pass '
                                              '--work-dir'):
        check_work_dir(str(tmp_path / 'file' / 'work'))


def test_path_that_is_a_file(tmp_path):
    (tmp_path / 'file').write_text('x')
    with pytest.raises(ValidationError, match='exists but is not a directory'):
        check_work_dir(str(tmp_path / 'file'))


def test_unwritable_dir_via_failing_probe(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):
        raise PermissionError(13, 'Permission denied')

    monkeypatch.setattr(work_dir_mod.tempfile, 'mkstemp', read_only)
    with pytest.raises(ValidationError, match=r'is not writable \(Permission denied\)'):
        check_work_dir(str(tmp_path))


@pytest.mark.skipif(os.geteuid() == 0, reason='root can write to read-only directories')
def test_read_only_dir(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(ValidationError, match='not writable'):
            check_work_dir(str(tmp_path))
    finally:
        tmp_path.chmod(0o700)


def test_test_output_folder_names_its_option(tmp_path):
    (tmp_path / 'file').write_text('x')
    with pytest.raises(ValidationError, match="--out folder .* Fix: pass --out with"):
        check_work_dir(str(tmp_path / 'file' / 'sub'), what='--out folder', option='--out')
