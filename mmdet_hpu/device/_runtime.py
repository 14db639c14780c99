"""Per-step device operations with one code path for hpu, cuda and cpu."""
import contextlib
import logging
from typing import Optional, Tuple

import torch

from . import _bridge, _modes, _probe
from ._probe import DeviceLike, device_type
from .compile_counter import COMPILED_GRAPHS, raise_recompile_limit

logger = logging.getLogger(__name__)


def mark_step() -> None:
    """Flush the lazy graph (``htcore.mark_step()``) in lazy HPU mode; no-op otherwise.

    Nothing is imported when not on HPU.
    """
    if _modes.is_lazy():
        _bridge.bridge('core').mark_step()


def synchronize(device: DeviceLike) -> None:
    """Wait for all queued work on ``device`` (no-op on cpu)."""
    kind = device_type(device)
    if kind == 'hpu':
        _bridge.bridge('hpu').synchronize()
    elif kind == 'cuda':
        torch.cuda.synchronize(_probe.torch_device(device))


def max_memory_allocated(device: DeviceLike) -> int:
    """Peak bytes allocated on ``device`` since the last reset.

    Returns 0 on cpu: PyTorch keeps no allocator statistics for host memory, and the
    process RSS would mix in Python, datasets and workers.
    """
    kind = device_type(device)
    if kind == 'hpu':
        return int(_bridge.bridge('hpu').max_memory_allocated())
    if kind == 'cuda':
        return int(torch.cuda.max_memory_allocated(_probe.torch_device(device)))
    return 0


def reset_peak_memory_stats(device: DeviceLike) -> None:
    """Reset the peak counter read by :func:`max_memory_allocated` (no-op on cpu)."""
    kind = device_type(device)
    if kind == 'hpu':
        _bridge.bridge('hpu').reset_peak_memory_stats()
    elif kind == 'cuda':
        torch.cuda.reset_peak_memory_stats(_probe.torch_device(device))


def profiler_activities(device: DeviceLike) -> list:
    """``torch.profiler`` activities that record host ops and the work of ``device``.

    CPU always; plus ``ProfilerActivity.CUDA`` on cuda, or ``ProfilerActivity.HPU`` on
    hpu, after loading the bridge (it registers the HPU profiler with torch).

    Raises:
        RuntimeError: On hpu, if this torch has no ``ProfilerActivity.HPU``.
    """
    from torch.profiler import ProfilerActivity

    activities = [ProfilerActivity.CPU]
    kind = device_type(device)
    if kind == 'cuda':
        activities.append(ProfilerActivity.CUDA)
    elif kind == 'hpu':
        _bridge.bridge('core')
        hpu = getattr(ProfilerActivity, 'HPU', None)
        if hpu is None:
            raise RuntimeError(f'torch {torch.__version__} has no ProfilerActivity.HPU; use the '
                               'torch of the Intel Gaudi software stack to profile on HPU')
        activities.append(hpu)
    return activities


def autocast(device_type: str, enabled: bool = True, dtype: torch.dtype = torch.bfloat16):
    """``torch.autocast`` for hpu / cuda / cpu (bf16 by default, no GradScaler needed).

    On HPU this is ``torch.autocast(device_type='hpu', ...)``, the native API since
    SynapseAI 1.10. Under the fake bridge (HPU backed by a host device) the backing
    device is autocast as well, so the tests compute in bf16 like the device would.

    Args:
        device_type (str): ``'hpu'``, ``'cuda'``, ``'cpu'`` (an index suffix is ignored).
        enabled (bool): If False, a context that changes nothing.
        dtype (torch.dtype): Lower-precision dtype. Defaults to ``torch.bfloat16``.

    Returns:
        contextlib.AbstractContextManager: The autocast context.
    """
    kind = _probe.device_type(device_type)
    if not enabled:
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    stack.enter_context(torch.autocast(device_type=kind, dtype=dtype))
    backing = _bridge.backing_device() if kind == 'hpu' and _probe.is_hpu_available() else None
    if backing is not None:
        stack.enter_context(torch.autocast(device_type=backing, dtype=dtype))
    return stack


def compile_model(model: torch.nn.Module, **kwargs) -> torch.nn.Module:
    """Compile ``model`` (a module or function) for the current device, counting its graphs.

    HPU: backend ``'hpu_backend'`` (needs ``PT_HPU_LAZY_MODE=0``); elsewhere ``'inductor'``;
    ``backend=...`` overrides. The backend is wrapped by
    :data:`~mmdet_hpu.device.compile_counter.COMPILED_GRAPHS` (see :func:`compiled_graphs`),
    ``dynamic`` defaults to False (static shapes: one graph per input signature, as a graph
    compiler sees them) and dynamo's recompile limit is raised so that it fails instead of
    falling back to eager silently (:func:`raise_recompile_limit`). Extra kwargs go to
    ``torch.compile``.

    Raises:
        RuntimeError: On HPU in lazy mode, where hpu_backend does not work.
    """
    backend = kwargs.pop('backend', None)
    if _probe.is_hpu_available():
        if _modes.is_lazy():
            raise RuntimeError('torch.compile(backend="hpu_backend") needs eager/compile mode '
                               '(PT_HPU_LAZY_MODE=0), but lazy mode is active.')
        _bridge.bridge('core')  # registers the hpu_backend dynamo backend
        backend = backend or 'hpu_backend'
    kwargs.setdefault('dynamic', False)
    raise_recompile_limit()
    return torch.compile(model, backend=COMPILED_GRAPHS.wrap(backend or 'inductor'), **kwargs)


def init_hccl() -> Tuple[int, int, int]:
    """Register the ``hccl`` process-group backend and read the launcher's ranks.

    Imports ``habana_frameworks.torch.distributed.hccl`` and calls its
    ``initialize_distributed_hpu()``, which also maps ``OMPI_COMM_WORLD_*`` to
    ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` under mpirun.

    Returns:
        tuple[int, int, int]: ``(world_size, rank, local_rank)``.
    """
    hccl = _bridge.bridge('distributed.hccl')
    world_size, rank, local_rank = hccl.initialize_distributed_hpu()
    return int(world_size), int(rank), int(local_rank)


def hpex_optimizer(name: str) -> Optional[type]:
    """Habana fused optimizer class (``'FusedSGD'``, ``'FusedAdamW'``), or None if unavailable."""
    if not _probe.is_hpu_available():
        return None
    try:
        return getattr(_bridge.bridge('hpex.optimizers'), name, None)
    except ImportError as err:
        logger.warning('habana_frameworks.torch.hpex.optimizers unavailable: %s', err)
        return None
