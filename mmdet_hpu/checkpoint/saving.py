"""Crash-safe checkpoint writing.

A checkpoint is written to a hidden temporary file in the destination directory,
flushed and ``fsync``-ed, then renamed over the final name with ``os.replace``
(atomic on POSIX), and the directory is ``fsync``-ed so the rename survives a
power cut. A process killed at any point leaves either the previous file or the
new one under the final name, never a partial file. ``latest.pth`` is switched
the same way (a symlink created under a temporary name, then renamed).

A full disk (``ENOSPC``/``EDQUOT``) while writing raises
:class:`~.errors.CheckpointWriteError` naming the path, the bytes the checkpoint
needs and the bytes free; the temporary file is removed and nothing is replaced.
Every checkpoint records a checksum of its state (:mod:`.checksum`).
"""
import contextlib
import copy
import errno
import glob
import os
import os.path as osp
import shutil
import tempfile
import time

import torch

# The package imports below are inside functions: this module also runs standalone
# (tests load it by path into a bare interpreter to kill it mid-write).

PARTIAL_SUFFIX = '.partial'


def tensors_to_cpu(obj):
    """Return ``obj`` with every tensor in nested dicts/lists/tuples moved to the host.

    Args:
        obj: A tensor, or a (nested) ``dict``/``list``/``tuple`` of them; other values
            are returned unchanged.

    Returns:
        The same structure with detached CPU tensors (dict subclasses keep their type).
    """
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        out = copy.copy(obj)  # keeps dict subclasses and their attributes
        for key, value in obj.items():
            out[key] = tensors_to_cpu(value)
        return out
    if isinstance(obj, tuple) and hasattr(obj, '_fields'):  # namedtuple
        return type(obj)(*(tensors_to_cpu(v) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(tensors_to_cpu(v) for v in obj)
    return obj


def optimizer_state(optimizer):
    """``state_dict()`` of an optimizer (or a dict of them) with every tensor on the host.

    HPU/CUDA checkpoints then load on any machine, whatever ``map_location`` is.
    """
    if isinstance(optimizer, torch.optim.Optimizer):
        return tensors_to_cpu(optimizer.state_dict())
    return {name: tensors_to_cpu(optim.state_dict()) for name, optim in optimizer.items()}


def build_checkpoint(model, optimizer=None, meta=None):
    """The dict ``mmcv.runner.save_checkpoint`` writes, with the optimizer state on the host.

    Args:
        model (torch.nn.Module): The model (a DataParallel-like wrapper is unwrapped).
        optimizer (Optimizer | dict[str, Optimizer], optional): Saved as ``'optimizer'``.
        meta (dict, optional): Extra metadata; ``mmcv_version``, ``time`` and the
            model's ``CLASSES`` are added (in place, as mmcv does).

    Returns:
        dict: ``{'meta', 'state_dict'[, 'optimizer'], 'mmdet_hpu_checksum'}``.
    """
    import mmcv
    from mmcv.parallel import is_module_wrapper
    from mmcv.runner.checkpoint import get_state_dict, weights_to_cpu

    from .checksum import add_checksum

    if meta is None:
        meta = {}
    elif not isinstance(meta, dict):
        raise TypeError(f'meta must be a dict or None, but got {type(meta)}')
    meta.update(mmcv_version=mmcv.__version__, time=time.asctime())
    if is_module_wrapper(model):
        model = model.module
    if getattr(model, 'CLASSES', None) is not None:
        meta.update(CLASSES=model.CLASSES)
    checkpoint = {'meta': meta, 'state_dict': weights_to_cpu(get_state_dict(model))}
    if isinstance(optimizer, (torch.optim.Optimizer, dict)):
        checkpoint['optimizer'] = optimizer_state(optimizer)
    return add_checksum(checkpoint)


def fsync_dir(path):
    """``fsync`` a directory so that a rename inside it is durable (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _default_file_mode():
    """Permissions ``open()`` would give a new file (``mkstemp`` uses 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_write(filename):
    """Yield a binary file object whose content appears under ``filename`` only when complete.

    The temporary file is removed if the body raises; ``filename`` is untouched then.
    """
    directory = osp.dirname(osp.abspath(filename))
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(filename)}.', suffix=PARTIAL_SUFFIX,
                               dir=directory)
    try:
        os.chmod(tmp, _default_file_mode())
        with os.fdopen(fd, 'wb') as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, filename)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    fsync_dir(directory)


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class _ByteCounter:
    """A write-only file object that only counts bytes (to size a failed save)."""

    def __init__(self):
        self.size = 0

    def write(self, data):
        self.size += len(data)
        return len(data)

    def flush(self):
        pass


def serialized_size(obj):
    """Bytes ``torch.save(obj, ...)`` writes (serialised again, nothing kept in memory)."""
    counter = _ByteCounter()
    torch.save(obj, counter)
    return counter.size


def _disk_full_error(filename, needed):
    from .errors import CheckpointWriteError

    directory = osp.dirname(osp.abspath(filename))
    free = shutil.disk_usage(directory).free
    return CheckpointWriteError(
        f'no space left on the device to write the checkpoint {filename!r}: it needs '
        f'{needed} bytes ({needed / 2 ** 20:.1f} MiB), {free} bytes are free in {directory!r}. '
        'Nothing was replaced: the previous checkpoints and latest.pth are intact and no '
        'partial file is left. Free some space (or choose a --work-dir on a larger disk) and '
        'continue with --auto-resume.')


def atomic_torch_save(obj, filename):
    """``torch.save(obj, filename)`` through :func:`atomic_write`.

    Raises:
        CheckpointWriteError: The disk (or quota) is full; ``filename`` is untouched.
    """
    try:
        with atomic_write(filename) as file:
            torch.save(obj, file)
    except (OSError, RuntimeError) as err:  # torch's zip writer wraps OSError in RuntimeError
        if not _is_disk_full(err):
            raise
        raise _disk_full_error(filename, serialized_size(obj)) from None


def _is_disk_full(err):
    if isinstance(err, OSError):
        return err.errno in _DISK_FULL
    cause = err.__cause__ or err.__context__
    return (isinstance(cause, OSError) and cause.errno in _DISK_FULL) or \
        'No space left on device' in str(err)


def save_checkpoint_atomic(model, filename, optimizer=None, meta=None):
    """Crash-safe drop-in for ``mmcv.runner.save_checkpoint`` (local paths only).

    Args:
        model (torch.nn.Module): The model to save.
        filename (str): Destination path; its directory must exist.
        optimizer (Optimizer | dict[str, Optimizer], optional): Saved with host tensors.
        meta (dict, optional): Metadata, see :func:`build_checkpoint`.
    """
    atomic_torch_save(build_checkpoint(model, optimizer, meta), filename)


def update_latest(filename, link_name='latest.pth', use_symlink=True):
    """Point ``link_name`` (next to ``filename``) at ``filename`` atomically.

    A relative symlink is created under a temporary name and renamed over the link;
    where symlinks are unsupported the file is copied through :func:`atomic_write`.

    Returns:
        str: The path of the link.
    """
    directory = osp.dirname(osp.abspath(filename))
    dst = osp.join(directory, link_name)
    if use_symlink:
        tmp = osp.join(directory, f'.{link_name}.{os.getpid()}{PARTIAL_SUFFIX}')
        try:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            os.symlink(osp.basename(filename), tmp)
            os.replace(tmp, dst)
            fsync_dir(directory)
            return dst
        except (OSError, NotImplementedError):
            with contextlib.suppress(OSError):
                os.remove(tmp)
    with open(filename, 'rb') as src, atomic_write(dst) as out:
        shutil.copyfileobj(src, out)
    return dst


def remove_partial_files(directory):
    """Delete temporary files left by interrupted saves in ``directory``.

    Returns:
        list[str]: The removed paths.
    """
    removed = []
    for path in glob.glob(osp.join(glob.escape(directory), f'.*{PARTIAL_SUFFIX}')):
        with contextlib.suppress(OSError):
            os.remove(path)
            removed.append(path)
    return removed
