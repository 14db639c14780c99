"""Non-finite (NaN/Inf) loss handling for :class:`~.hooks.HPUOptimizerHook`.

Two modes (``optimizer_config.nonfinite_loss``, CLI ``--on-nonfinite-loss``):

``'stop'`` (default): no extra host read per iteration. :class:`NonFiniteMonitor`
keeps one small device tensor that records, with ``torch.where``, the first
iteration whose loss terms were not finite and which terms. The tensor is read
together with the log buffer's single read at the log interval
(:meth:`DeviceLogBuffer.attach`), and on its own only where weights would leave
the device: right before a checkpoint or an evaluation is due and at the end of an
epoch (skipped when the last read already covered every iteration). When it shows
a non-finite loss, training stops with :class:`NonFiniteLossError` naming the
iteration and the terms; no checkpoint is written after the bad step, so the last
good checkpoint stays the newest file in the work dir.

``'skip'``: one host read per iteration (``isfinite(loss)``, all-reduced with MAX
when distributed so every rank takes the same decision): after a non-finite loss,
``backward`` still runs (DDP's gradient all-reduce must happen on every rank) but
the gradients are dropped and ``optimizer.step`` is not called; the LR schedule
still advances. The log shows ``nonfinite_skipped`` (steps skipped so far).
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist

from mmdet_hpu.errors import UserError

MODES = ('stop', 'skip')
ATTACH_KEY = 'nonfinite'
#: Offsets inside a read window stay exact in float32 (``_BIG - offset``).
_BIG = float(2 ** 24)


class NonFiniteLossError(UserError):
    """The training loss became NaN or Inf; the message names the iteration and terms."""


def check_mode(mode: str) -> str:
    """Return ``mode`` if it is one of :data:`MODES`, else raise ``ValueError``."""
    if mode not in MODES:
        raise ValueError(f'nonfinite_loss must be one of {MODES}, but got {mode!r}')
    return mode


def loss_terms(log_vars: Optional[Dict], loss: torch.Tensor) -> Tuple[List[str], torch.Tensor]:
    """Names and stacked float values of the tensor loss terms (``loss`` included).

    Args:
        log_vars (dict, optional): ``runner.outputs['log_vars']``; non-tensor values
            (stock detectors ``.item()`` them) are ignored.
        loss (Tensor): The loss ``backward`` runs on; added as ``'loss'`` when
            ``log_vars`` has no tensor of that name.

    Returns:
        tuple[list[str], Tensor]: Names and a 1-D float tensor on the loss device.
    """
    names, values = [], []
    for name, value in (log_vars or {}).items():
        if isinstance(value, torch.Tensor):
            names.append(name)
            values.append(value.detach().float().reshape(()).to(loss.device))
    if 'loss' not in names:
        names.append('loss')
        values.append(loss.detach().float().reshape(()))
    return names, torch.stack(values)


def _reduce_max(values: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return values


class NonFiniteMonitor:
    """Device-side record of the first non-finite loss (``'stop'`` mode).

    The record is a 1-D float tensor ``[score, bad_0, ..., bad_T]``: ``score`` is 0
    while every loss was finite, else ``2**24 - offset`` where ``offset`` (1-based)
    is the first bad iteration counted from the start of the current read window;
    ``bad_t`` is 1 for the terms that were not finite then. Reducing with MAX across
    ranks gives the earliest bad iteration of any rank and the union of bad terms.

    Attributes:
        found (tuple[int, list[str]] | None): 0-based iteration and bad terms, once read.
        host_reads (int): Reads done by :meth:`check_now` (the log-interval reads are
            the log buffer's).
    """

    def __init__(self) -> None:
        self._record: Optional[torch.Tensor] = None
        self._base = 0
        self._terms: List[str] = []
        self._window = 0
        self.found: Optional[Tuple[int, List[str]]] = None
        self.host_reads = 0

    @property
    def pending(self) -> bool:
        """Whether iterations were recorded since the last read."""
        return self._record is not None

    def record(self, iteration: int, log_vars: Optional[Dict], loss: torch.Tensor) -> torch.Tensor:
        """Record iteration ``iteration`` (device ops only, no host read).

        Args:
            iteration (int): ``runner.iter`` (0-based).
            log_vars (dict, optional): ``runner.outputs['log_vars']``.
            loss (Tensor): The loss of this iteration.

        Returns:
            Tensor: The updated record (to attach to the log buffer).
        """
        names, values = loss_terms(log_vars, loss)
        if self._record is not None and names != self._terms:
            self.check_now()  # other loss keys than in this window (rare): close it
        if self._record is None:
            self._base, self._terms = iteration, names
            self._window += 1
            self._record = torch.zeros(len(names) + 1, device=values.device)
        bad = ~torch.isfinite(values)
        score = torch.full((1,), _BIG - (iteration - self._base + 1), device=values.device)
        current = torch.cat([score, bad.float()])
        first = (self._record[0] == 0) & bad.any()
        self._record = torch.where(first, current, self._record)
        return self._record

    def attach_to(self, buffer) -> None:
        """Have ``buffer`` (a :class:`DeviceLogBuffer`) read the record with its next read."""
        if self._record is not None:
            window = self._window
            buffer.attach(ATTACH_KEY, self._record,
                          lambda values: self.on_read(values, window))

    def on_read(self, values: Sequence[float], window: Optional[int] = None) -> None:
        """Decode a read (reduced) record; open a new window if it was clean.

        Args:
            values (list[float]): The record's values.
            window (int, optional): Window the values belong to; a read of an older,
                already checked window is ignored.
        """
        if window is not None and window != self._window:
            return
        if values[0] > 0:
            offset = int(round(_BIG - values[0]))
            terms = [n for n, bad in zip(self._terms, values[1:]) if bad > 0]
            self.found = (self._base + offset - 1, terms)
        self._record = None

    def check_now(self) -> None:
        """Read the record now (collective when distributed); no-op when nothing is pending."""
        if self._record is None:
            return
        values = _reduce_max(self._record.clone())
        # Host read, only before a checkpoint/evaluation and at epoch end (see module doc).
        self.on_read(values.tolist())
        self.host_reads += 1

    def raise_if_found(self, runner) -> None:
        """Raise :class:`NonFiniteLossError` if a read showed a non-finite loss."""
        if self.found is not None:
            iteration, terms = self.found
            raise NonFiniteLossError(stop_message(runner, iteration, terms))


def _last_checkpoint(runner) -> Optional[str]:
    return ((getattr(runner, 'meta', None) or {}).get('hook_msgs') or {}).get('last_ckpt')


def stop_message(runner, iteration: int, terms: Sequence[str]) -> str:
    """The one-paragraph error of ``'stop'`` mode."""
    last = _last_checkpoint(runner)
    kept = (f'the last good checkpoint, {last}, is kept; resume from it with --resume-from '
            f'{last} once the cause is fixed' if last else 'no checkpoint had been written yet')
    return (f'training stopped: the loss was not finite (NaN or Inf) at iteration '
            f'{iteration + 1} (1-based, as in the log; noticed at iteration {runner.iter + 1}) '
            f'in the term(s) {", ".join(terms) or "loss"}. No checkpoint is written after a '
            f'non-finite step: {kept}. Usual causes: a learning rate too high for the batch '
            'size (lower optimizer.lr or lengthen the warmup), boxes of zero or negative size '
            'in the annotations, or bf16 overflow (try without --autocast). To skip such steps '
            'instead of stopping, pass --on-nonfinite-loss skip (optimizer_config.'
            "nonfinite_loss='skip').")


def step_is_finite(loss: torch.Tensor) -> bool:
    """``'skip'`` mode: whether the loss is finite on every rank (one host read).

    Args:
        loss (Tensor): This rank's loss.

    Returns:
        bool: False if any rank's loss is NaN or Inf.
    """
    bad = (~torch.isfinite(loss.detach().float().reshape(1))).float()
    bad = _reduce_max(bad)
    # Host read every iteration: 'skip' must decide before optimizer.step (documented cost).
    return bad.tolist()[0] == 0


def describe_terms(log_vars: Optional[Dict], loss: torch.Tensor) -> str:
    """``'loss_xy=nan, loss=nan'`` for a warning (host read; only after a bad step)."""
    names, values = loss_terms(log_vars, loss)
    return ', '.join(f'{n}={v:.4g}' for n, v in zip(names, values.tolist()))


__all__ = [
    'ATTACH_KEY', 'MODES', 'NonFiniteLossError', 'NonFiniteMonitor', 'check_mode',
    'describe_terms', 'loss_terms', 'step_is_finite', 'stop_message'
]
