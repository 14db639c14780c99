"""One training per work dir: a lock file that names its holder.

Two trainings into the same work dir would interleave checkpoints and logs. Before
``mmdet-hpu-train`` writes anything into the work dir, it takes an exclusive
``flock`` on ``<work_dir>/.mmdet-hpu.lock`` and writes its PID, host, start time and
command into it. A second training finds the lock held and stops with
:class:`WorkDirBusyError` naming that process. The kernel releases a ``flock`` when
its process dies, so a lock left by a killed run (the file remains) is stale: the
next run takes it over and logs whose it was. The lock is re-entrant within a process
and released (the file removed) at exit. In distributed runs rank 0 holds it and
every rank gets the same decision.
"""
import atexit
import contextlib
import fcntl
import json
import logging
import os
import os.path as osp
import socket
import sys
import time
from typing import Dict, Optional

from mmdet_hpu.errors import UserError

LOCK_NAME = '.mmdet-hpu.lock'
_held: Dict[str, 'WorkDirLock'] = {}


class WorkDirBusyError(UserError):
    """Another live training holds the work dir's lock; the message names it."""


def _record() -> Dict:
    return dict(pid=os.getpid(), host=socket.gethostname(),
                started=time.strftime('%Y-%m-%d %H:%M:%S %Z'),
                command=' '.join(sys.argv)[:300])


def _read(fd: int) -> Optional[Dict]:
    os.lseek(fd, 0, os.SEEK_SET)
    data = b''
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    try:
        record = json.loads(data.decode() or 'null')
    except (ValueError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def _describe(record: Optional[Dict]) -> str:
    if not record:
        return 'another process (its lock file gives no details)'
    return (f"process {record.get('pid')} on host {record.get('host')!r} (started "
            f"{record.get('started')}: {record.get('command')})")


class WorkDirLock:
    """The exclusive lock of one work dir (see the module docstring).

    Args:
        work_dir (str): The work dir; must exist.
    """

    def __init__(self, work_dir: str) -> None:
        self.path = osp.join(osp.abspath(work_dir), LOCK_NAME)
        self._fd: Optional[int] = None
        self.previous: Optional[Dict] = None

    def acquire(self) -> 'WorkDirLock':
        """Take the lock, or raise :class:`WorkDirBusyError` naming the holder.

        Returns:
            WorkDirLock: ``self``; :attr:`previous` is the record of a stale lock taken over.
        """
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read(fd)
                os.close(fd)
                raise WorkDirBusyError(
                    f'the work dir {osp.dirname(self.path)!r} is in use by '
                    f'{_describe(holder)}: two trainings in one work dir would overwrite '
                    'each other\'s checkpoints and logs. Wait for it to finish or stop it, or '
                    'pass another --work-dir. If that process is gone (e.g. on another host '
                    f'that crashed), delete {self.path!r}.') from None
            # The file may have been removed by a holder releasing it after our open.
            if osp.exists(self.path) and os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                break
            os.close(fd)
        self.previous = _read(fd)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(_record()).encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file and drop the lock (no-op when not held)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.remove(self.path)
        os.close(self._fd)
        self._fd = None
        _held.pop(self.path, None)


def _release_all() -> None:
    for lock in list(_held.values()):
        lock.release()


atexit.register(_release_all)


def _acquire_here(work_dir: str, logger: logging.Logger) -> Optional[str]:
    """Take the lock in this process; the error message, or None on success."""
    path = osp.join(osp.abspath(work_dir), LOCK_NAME)
    if path in _held:
        return None
    try:
        lock = WorkDirLock(work_dir).acquire()
    except WorkDirBusyError as err:
        return str(err)
    _held[path] = lock
    if lock.previous:
        logger.warning(f'took over the lock of the work dir {work_dir} left by '
                       f'{_describe(lock.previous)}, which is no longer running')
    return None


def lock_work_dir(work_dir: str, distributed: bool = False,
                  logger: Optional[logging.Logger] = None) -> None:
    """Hold ``work_dir`` for this training (rank 0); raise on every rank if it is busy.

    Call it before anything is written into the work dir (the directory itself may be
    created). A collective when ``distributed``.

    Raises:
        WorkDirBusyError: Another live training holds it.
    """
    logger = logger or logging.getLogger('mmdet')
    os.makedirs(work_dir, exist_ok=True)
    rank = 0
    if distributed:
        import torch.distributed as dist

        rank = dist.get_rank()
    message = _acquire_here(work_dir, logger) if rank == 0 else None
    if distributed:
        gathered = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, message)
        message = gathered[0]
    if message:
        raise WorkDirBusyError(message)


def release_work_dir(work_dir: str) -> None:
    """Release this process's lock of ``work_dir`` (no-op if it holds none)."""
    lock = _held.get(osp.join(osp.abspath(work_dir), LOCK_NAME))
    if lock is not None:
        lock.release()


__all__ = ['LOCK_NAME', 'WorkDirBusyError', 'WorkDirLock', 'lock_work_dir', 'release_work_dir']
