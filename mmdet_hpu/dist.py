"""Distributed initialisation for hpu (hccl), cuda (nccl) and cpu (gloo).

Replaces ``mmcv.runner.init_dist`` for this plugin's entry points without
patching it: mmcv's version calls ``torch.cuda.set_device(rank % 0)`` on machines
without CUDA (ZeroDivisionError) and knows nothing of HCCL.
"""
import contextlib
import datetime
import logging
import os
import re
import sys
from typing import Optional, Union

import torch
import torch.distributed as dist
from mmcv.utils import get_logger

from . import device as hpu_device

BACKENDS = {'hpu': 'hccl', 'cuda': 'nccl', 'cpu': 'gloo'}
#: Seconds a collective may wait for the other ranks (``--dist-timeout``).
DEFAULT_TIMEOUT_S = 1800
LAUNCHERS = ('pytorch', 'mpi')
#: A collective failed because a peer is gone or silent (gloo/NCCL/HCCL messages).
_PEER_FAILURE = re.compile(r'gloo|nccl|hccl|connection (reset|closed|refused)|broken pipe|'
                           r'timed? ?out|timeout', re.IGNORECASE)
_state = {'timeout': None}
_OMPI_VARS = (('OMPI_COMM_WORLD_SIZE', 'WORLD_SIZE'), ('OMPI_COMM_WORLD_RANK', 'RANK'),
              ('OMPI_COMM_WORLD_LOCAL_RANK', 'LOCAL_RANK'))


def default_backend(device: str) -> str:
    """``'hccl'`` on hpu, ``'nccl'`` on cuda, ``'gloo'`` on cpu."""
    return BACKENDS[hpu_device.device_type(device)]


def _export_mpi_env() -> None:
    missing = [ompi for ompi, _ in _OMPI_VARS if ompi not in os.environ]
    if missing:
        raise KeyError(f'--launcher mpi needs {", ".join(missing)} (start the job with mpirun)')
    for ompi, var in _OMPI_VARS:
        os.environ[var] = os.environ[ompi]
    os.environ.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in os.environ:
        raise KeyError('--launcher mpi needs MASTER_ADDR (the address of rank 0)')


def _ranks_from_env() -> tuple:
    try:
        return (int(os.environ['WORLD_SIZE']), int(os.environ['RANK']),
                int(os.environ.get('LOCAL_RANK', os.environ['RANK'])))
    except KeyError as err:
        raise KeyError(f'--launcher pytorch needs the environment variable {err} '
                       '(start the job with torchrun)') from None


def _set_first_bucket(bucket_cap_mb: Optional[int]) -> None:
    if bucket_cap_mb is not None:
        # Private torch knob (default 1 MiB); Habana's YOLOv3 port sets it to the
        # bucket size so the first all-reduce is not tiny.
        dist._DEFAULT_FIRST_BUCKET_BYTES = int(bucket_cap_mb) * 1024 * 1024


def init_dist(launcher: str, backend: Optional[str] = None, bucket_cap_mb: Optional[int] = None,
              device: Optional[str] = None, **kwargs) -> tuple:
    """Initialise the default process group for the current device.

    Args:
        launcher (str): ``'pytorch'`` (torchrun: ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``,
            ``MASTER_ADDR``/``MASTER_PORT``) or ``'mpi'`` (``OMPI_COMM_WORLD_*``).
        backend (str, optional): Process-group backend. None picks it from the device
            (hccl / nccl / gloo). The stock ``dist_params=dict(backend='nccl')`` is
            ignored off CUDA, with a warning, since it cannot work there.
        bucket_cap_mb (int, optional): Also used as the size of DDP's first bucket.
        device (str, optional): ``'hpu'``, ``'cuda'``, ``'cpu'``; None resolves ``'auto'``.
        **kwargs: Passed to ``torch.distributed.init_process_group``. ``timeout`` may
            be seconds (int/float) or a ``timedelta``; it defaults to
            :data:`DEFAULT_TIMEOUT_S`. It bounds how long a rank waits in a collective
            for a peer that died or hangs (see :func:`fail_fast_env` and
            ``docs/resume.md``).

    Returns:
        tuple[int, int, int]: ``(rank, world_size, local_rank)``.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f'launcher must be one of {LAUNCHERS} on mmdet-hpu, got {launcher!r}')
    kind = hpu_device.resolve_device(device or 'auto')
    backend = _choose_backend(kind, backend)
    if kind == 'hpu':
        world_size, rank, local_rank = hpu_device.init_hccl()
    else:
        if launcher == 'mpi':
            _export_mpi_env()
        world_size, rank, local_rank = _ranks_from_env()
    if kind == 'cuda':
        torch.cuda.set_device(local_rank)
    _set_first_bucket(bucket_cap_mb)
    kwargs['timeout'] = _state['timeout'] = as_timedelta(kwargs.get('timeout'))
    fail_fast_env(backend)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size, **kwargs)
    return rank, world_size, local_rank


def as_timedelta(timeout: Union[None, int, float, datetime.timedelta]) -> datetime.timedelta:
    """``timeout`` (seconds or ``timedelta``; None: :data:`DEFAULT_TIMEOUT_S`) as a timedelta.

    Raises:
        ValueError: If it is not positive.
    """
    if timeout is None:
        timeout = DEFAULT_TIMEOUT_S
    if not isinstance(timeout, datetime.timedelta):
        timeout = datetime.timedelta(seconds=float(timeout))
    if timeout.total_seconds() <= 0:
        raise ValueError(f'the distributed timeout must be > 0 seconds, got {timeout}')
    return timeout


def fail_fast_env(backend: str) -> None:
    """Make a rank whose peer died raise within the timeout instead of hanging.

    * gloo: a closed peer connection fails the next collective at once; a hung
      peer fails it after ``timeout``. Nothing to set.
    * nccl: ``TORCH_NCCL_ASYNC_ERROR_HANDLING=1`` (set unless already set) makes the
      watchdog abort the communicator and end the process after ``timeout``.
    * hccl: the ``timeout`` is passed to the process group; Habana's documentation
      is the reference for its watchdog (not verified here, see docs/resume.md).
    """
    if backend == 'nccl':
        os.environ.setdefault('TORCH_NCCL_ASYNC_ERROR_HANDLING', '1')


def _choose_backend(kind: str, backend: Optional[str]) -> str:
    wanted = default_backend(kind)
    if backend is None or backend == wanted:
        return wanted
    if backend == 'nccl':  # the stock default_runtime.py value
        get_logger('mmdet').warning(f'dist backend "nccl" cannot run on {kind}; using {wanted}.')
        return wanted
    return backend


def is_peer_failure(err: BaseException) -> bool:
    """Whether ``err`` is a collective failing because another rank died or hangs."""
    dist_error = getattr(dist, 'DistError', ())
    if dist_error and isinstance(err, dist_error):
        return True
    return isinstance(err, RuntimeError) and bool(_PEER_FAILURE.search(str(err)))


def peer_failure_message(err: BaseException) -> str:
    """The one-paragraph error printed by :func:`exit_on_peer_failure`."""
    rank, world = dist.get_rank(), dist.get_world_size()
    timeout = _state['timeout']
    seconds = f'{timeout.total_seconds():g} s' if timeout else 'the timeout'
    detail = (str(err).strip().splitlines() or [''])[-1][:300]
    return (f'rank {rank} of {world} lost contact with the other ranks ({type(err).__name__}: '
            f'{detail}). Another rank exited or crashed, or did not answer for {seconds} '
            '(--dist-timeout); its own log shows the first error. Checkpoints already written '
            'are kept: restart every rank with --auto-resume to continue from the newest one.')


@contextlib.contextmanager
def exit_on_peer_failure(exit_code: int = 1):
    """Turn a failed collective into ``error: <message>`` on stderr and a prompt exit.

    Only while a process group is initialised; other exceptions pass through. The
    process leaves with ``os._exit(exit_code)`` after flushing the logs and stdio:
    a normal interpreter exit may block in the process group's destructor waiting
    for the dead peer (NCCL/HCCL), which is the hang this avoids.
    """
    try:
        yield
    except Exception as err:
        if not (dist.is_available() and dist.is_initialized() and is_peer_failure(err)):
            raise
        get_logger('mmdet').error(peer_failure_message(err))
        print(f'error: {peer_failure_message(err)}', file=sys.stderr)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exit_code)
