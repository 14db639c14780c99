"""An unwritable work dir, found before training instead of at the first checkpoint."""
import os
import os.path as osp
import tempfile

from .errors import ValidationError


def _nearest_existing(path):
    while path and not osp.exists(path):
        parent = osp.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _fix(path, option):
    return (f' Fix: pass {option} with a directory you can write to, or fix the permissions '
            f'of {_nearest_existing(path)!r}.')


def check_work_dir(path, what='work dir', option='--work-dir'):
    """Create ``path`` if needed and prove it is writable with a probe file.

    Nothing already in the directory is touched; the probe is a new hidden file that
    is removed at once.

    Args:
        path (str): The directory.
        what (str): How messages name it (``'work dir'``, ``'--out folder'``).
        option (str): The command-line option that sets it, for the fix.

    Returns:
        str: The absolute path.

    Raises:
        ValidationError: The path is a file, cannot be created or cannot be written.
    """
    abspath = osp.abspath(path)
    if osp.exists(abspath) and not osp.isdir(abspath):
        raise ValidationError(f'{what} {path!r} exists but is not a directory.'
                              f'{_fix(abspath, option)}')
    try:
        os.makedirs(abspath, exist_ok=True)
    except OSError as err:
        raise ValidationError(f'cannot create the {what} {path!r}: {err.strerror or err}.'
                              f'{_fix(abspath, option)}') from None
    try:
        fd, probe = tempfile.mkstemp(prefix='.mmdet-hpu-write-probe-', dir=abspath)
        try:
            os.write(fd, b'ok')
            os.fsync(fd)
        finally:
            os.close(fd)
            os.remove(probe)
    except OSError as err:
        saved = 'checkpoints and logs' if what == 'work dir' else 'results'
        raise ValidationError(f'the {what} {path!r} is not writable ({err.strerror or err}), so '
                              f'{saved} could not be saved.{_fix(abspath, option)}') from None
    return abspath
