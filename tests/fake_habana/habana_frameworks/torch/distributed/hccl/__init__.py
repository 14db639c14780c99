"""Fake ``habana_frameworks.torch.distributed.hccl``.

As in the real module, importing it registers the ``hccl`` process-group backend
(here: gloo underneath) and runs :func:`initialize_distributed_hpu` once.
"""
import os

import torch.distributed as dist
from fake_habana_recorder import RECORDER

from ... import core  # noqa: F401


def _create_hccl(store, rank, world_size, timeout):
    RECORDER.record('hccl.create_process_group', rank=rank, world_size=world_size)
    return dist.ProcessGroupGloo(store, rank, world_size, timeout)


def initialize_distributed_hpu(world_size=None, rank=None, local_rank=None):
    """Map ``OMPI_COMM_WORLD_*`` to torch's variables and return the ranks."""
    for ompi, var in (('OMPI_COMM_WORLD_SIZE', 'WORLD_SIZE'), ('OMPI_COMM_WORLD_RANK', 'RANK'),
                      ('OMPI_COMM_WORLD_LOCAL_RANK', 'LOCAL_RANK')):
        if ompi in os.environ:
            os.environ[var] = os.environ[ompi]
            os.environ.setdefault('MASTER_ADDR', 'localhost')
            os.environ.setdefault('MASTER_PORT', '12345')
    world_size = int(os.environ.get('WORLD_SIZE', 1)) if world_size is None else world_size
    rank = int(os.environ.get('RANK', 0)) if rank is None else rank
    local_rank = int(os.environ.get('LOCAL_RANK', 0)) if local_rank is None else local_rank
    RECORDER.record('hccl.initialize_distributed_hpu', world_size=world_size, rank=rank,
                    local_rank=local_rank)
    return world_size, rank, local_rank


# The real module is imported once per process; the ``fake_habana`` fixture re-imports
# this one for every test, but torch's backend registry is process-wide and torch < 2.7
# asserts that a backend is registered only once ("HCCL c10d backend already exist").
# The creator registered first stays: it records to the same RECORDER.
if not hasattr(dist.Backend, 'HCCL'):
    dist.Backend.register_backend('hccl', _create_hccl, devices=['cpu'])
initialize_distributed_hpu()
