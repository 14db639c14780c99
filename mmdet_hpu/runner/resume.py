"""Exact resume: RNG states and the data position, saved in checkpoint ``meta``.

A checkpoint written by an HPU runner holds ``meta['resume_state']``::

    dict(version=1,
         epoch=E,          # 0-based epoch the next iteration belongs to
         inner_iter=K,     # batches of epoch E already consumed (0: epoch start)
         iter=I,           # iterations done
         world_size=W,
         rng=[...],        # per rank: RNG states when the checkpoint was written
         epoch_rng=[...])  # per rank: RNG states right before ``iter(data_loader)`` of E

Each RNG state is ``dict(python=..., numpy=..., torch=..., [cuda=...], [hpu=...])``
made of plain Python values and CPU ``uint8`` tensors only, so safe
(``weights_only``) loading accepts it.

To resume in the middle of epoch ``E`` the runner sets the ``epoch_rng`` states,
creates the data loader iterator (``GroupSampler`` draws the same permutation from
numpy's global RNG, the ``DataLoader`` draws the same base seed from torch's),
**fetches and discards** the ``K`` consumed batches, then sets the ``rng`` states.
Fetching (not only skipping sampler indices) replays the data pipeline, so
augmentations drawn in loader workers (``worker_init_fn`` seeds them again every
epoch) come out as in the uninterrupted run. See ``docs/resume.md`` for the limits
(``persistent_workers``, a changed world size).
"""
import contextlib
import logging
import random
from typing import Dict, Iterator, List, Optional

import numpy as np
import torch
import torch.distributed as dist

META_KEY = 'resume_state'
VERSION = 1

logger = logging.getLogger('mmdet')


def _hpu_module():
    """``torch.hpu`` when ``habana_frameworks`` was already loaded (never imports it)."""
    hpu = getattr(torch, 'hpu', None)
    if hpu is None or not hasattr(hpu, 'get_rng_state'):
        return None
    try:
        return hpu if hpu.is_available() else None
    except Exception:  # a half-initialised bridge: no HPU RNG to save
        return None


def capture_rng_state() -> Dict:
    """RNG states of ``random``, ``numpy``, torch (CPU) and cuda/hpu when in use.

    Returns:
        dict: Plain Python values and CPU tensors (safe to ``torch.save``/load with
        ``weights_only=True``).
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = dict(python=random.getstate(),
                 numpy=(name, keys.tolist(), int(pos), int(has_gauss), float(cached)),
                 torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    hpu = _hpu_module()
    if hpu is not None:
        state['hpu'] = hpu.get_rng_state()
    return state


def restore_rng_state(state: Dict) -> None:
    """Set the RNG states captured by :func:`capture_rng_state`.

    Device states are restored only where that device is in use now (a checkpoint
    written on CUDA resumes on the CPU with the host states).
    """
    random.setstate(_as_tuple(state['python']))
    name, keys, pos, has_gauss, cached = state['numpy']
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
    hpu = _hpu_module()
    if 'hpu' in state and hpu is not None:
        hpu.set_rng_state(state['hpu'])


def _as_tuple(value):
    """``random.setstate`` needs tuples; a round trip may have made lists of them."""
    if isinstance(value, list):
        return tuple(_as_tuple(v) for v in value)
    if isinstance(value, tuple):
        return tuple(_as_tuple(v) for v in value)
    return value


@contextlib.contextmanager
def preserved_rng_state():
    """Run the body without changing the RNG states seen after it (e.g. evaluation).

    An evaluation data loader draws its base seed from torch's global RNG; without
    this, a run that evaluates after a checkpoint would continue with other random
    numbers than the run resumed from that checkpoint.
    """
    state = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(state)


def _rank_and_world() -> tuple:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_per_rank(state) -> List:
    """``[state of rank 0, state of rank 1, ...]`` (a collective when distributed).

    Called by every rank at the same point (before a checkpoint is written), so the
    ``all_gather_object`` lines up across ranks.
    """
    _, world_size = _rank_and_world()
    if world_size == 1:
        return [state]
    gathered = [None] * world_size
    dist.all_gather_object(gathered, state)
    return gathered


def build_resume_state(epoch: int, inner_iter: int, iteration: int,
                       epoch_rng: Optional[Dict]) -> Dict:
    """The ``meta['resume_state']`` dict for the current position (collective if distributed).

    Args:
        epoch (int): 0-based epoch the next iteration belongs to.
        inner_iter (int): Batches of ``epoch`` already consumed (0 at an epoch start).
        iteration (int): Iterations done.
        epoch_rng (dict, optional): This rank's RNG states at the start of ``epoch``
            (needed when ``inner_iter > 0``).

    Returns:
        dict: See the module docstring.
    """
    _, world_size = _rank_and_world()
    per_rank = gather_per_rank(dict(rng=capture_rng_state(), epoch_rng=epoch_rng))
    return dict(version=VERSION, epoch=int(epoch), inner_iter=int(inner_iter),
                iter=int(iteration), world_size=world_size,
                rng=[s['rng'] for s in per_rank], epoch_rng=[s['epoch_rng'] for s in per_rank])


class ResumePoint:
    """Where and how one rank continues: parsed from ``meta['resume_state']``.

    Attributes:
        epoch (int): Epoch to continue.
        inner_iter (int): Batches of that epoch to skip.
        iteration (int): Iterations done.
        rng (dict): RNG states to set once the position is reached.
        epoch_rng (dict | None): RNG states to set before creating the loader iterator.
    """

    def __init__(self, state: Dict, rank: int) -> None:
        self.epoch = state['epoch']
        self.inner_iter = state['inner_iter']
        self.iteration = state['iter']
        self.rng = state['rng'][rank]
        self.epoch_rng = state['epoch_rng'][rank]

    @property
    def mid_epoch(self) -> bool:
        """Whether batches of the epoch were already consumed."""
        return self.inner_iter > 0


def parse_resume_state(meta: Dict, log=logger) -> Optional[ResumePoint]:
    """Take ``resume_state`` out of checkpoint ``meta`` and check it fits this job.

    Args:
        meta (dict): Checkpoint meta; ``resume_state`` is removed from it (a fresh one
            is written with every checkpoint).
        log (logging.Logger): Where to warn.

    Returns:
        ResumePoint | None: None for checkpoints without it (written by stock mmcv or
        an older mmdet-hpu) or when the world size changed; resuming is then
        epoch-granular as in mmcv.
    """
    state = meta.pop(META_KEY, None)
    if not isinstance(state, dict) or state.get('version') != VERSION:
        log.warning('the checkpoint has no exact-resume state (written by stock mmcv or an older '
                    'mmdet-hpu): model, optimizer, epoch and iteration are restored, the RNG '
                    'states and the position inside the epoch are not.')
        return None
    rank, world_size = _rank_and_world()
    if state['world_size'] != world_size:
        log.warning(f"the checkpoint was written by {state['world_size']} process(es), this "
                    f'job has {world_size}: each rank now reads other samples, so the RNG states '
                    'and the position inside the epoch cannot be restored; training continues '
                    'at the start of the next epoch. Resume with the same number of devices for '
                    'an exact continuation.')
        return None
    return ResumePoint(state, rank)


def skip_batches(batches: Iterator, count: int) -> int:
    """Fetch and discard ``count`` batches of ``batches``.

    Returns:
        int: Batches actually skipped (fewer when the iterator ended first).
    """
    for skipped in range(count):
        try:
            next(batches)
        except StopIteration:
            return skipped
    return count


__all__ = [
    'META_KEY', 'ResumePoint', 'build_resume_state', 'capture_rng_state', 'gather_per_rank',
    'parse_resume_state', 'preserved_rng_state', 'restore_rng_state', 'skip_batches'
]
