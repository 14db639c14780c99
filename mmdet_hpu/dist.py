"""Distributed initialisation for hpu (hccl), cuda (nccl) and cpu (gloo).

Replaces ``mmcv.runner.init_dist`` for this plugin's entry points without
patching it: mmcv's version calls ``torch.cuda.set_device(rank % 0)`` on machines
without CUDA (ZeroDivisionError) and knows nothing of HCCL.
"""
import os
from typing import Optional

import torch
import torch.distributed as dist
from mmcv.utils import get_logger

from . import device as hpu_device

BACKENDS = {'hpu': 'hccl', 'cuda': 'nccl', 'cpu': 'gloo'}
LAUNCHERS = ('pytorch', 'mpi')
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
        **kwargs: Passed to ``torch.distributed.init_process_group``.

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
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size, **kwargs)
    return rank, world_size, local_rank


def _choose_backend(kind: str, backend: Optional[str]) -> str:
    wanted = default_backend(kind)
    if backend is None or backend == wanted:
        return wanted
    if backend == 'nccl':  # the stock default_runtime.py value
        get_logger('mmdet').warning(f'dist backend "nccl" cannot run on {kind}; using {wanted}.')
        return wanted
    return backend
