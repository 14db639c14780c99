"""Softmax cross-entropy straight from channel-first class maps, with an analytic gradient.

``F.cross_entropy`` on a (N, C, L) view of a head's class map (B, n * C, h, w) avoids the
permuted copy of the map, but on the CPU its softmax along a non-last axis is slow and autograd
keeps the full log-softmax plus a zero-filled NLL gradient. Here the loss of every anchor is
``logsumexp(x) - x[label]``; the forward keeps ``exp(x - max)`` (one full buffer) and the
backward turns it into the gradient ``(softmax(x) - onehot(label)) * g`` in place.
In eager mode on the CPU the forward runs over blocks of rows that stay in a core's cache
(see :func:`_exp_and_sums`).
"""
from typing import Tuple

import torch

from . import cpu_speedups

# Bytes of logits per block of the CPU forward: its max, exp and sum passes then read a block
# from a core's L2 cache (2 MB here) instead of memory.
CPU_BLOCK_BYTES = 1 << 19


def _rows_per_block(logits: torch.Tensor) -> int:
    """Rows of (N, C, L) logits per block: ~512 KB in eager mode on the CPU; the whole tensor
    on devices and while ``torch.compile`` traces (a compiler fuses the passes itself)."""
    if not cpu_speedups.use_cpu_speedups(logits) or torch.compiler.is_compiling():
        return logits.shape[0]
    row_bytes = logits[0].numel() * logits.element_size()
    return max(1, CPU_BLOCK_BYTES // max(1, row_bytes))


def _exp_and_sums(logits: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Class maximum, ``exp(logits - max)`` and its class sum.

    The difference is formed first, so the best class gets exactly 1 (log-softmax's order: a
    dominant label's loss keeps its rounding). On the CPU the passes run block by block
    (:data:`CPU_BLOCK_BYTES` of logits at a time, :func:`_block_peak_into`): the exp and sum
    passes find the block still in cache. For an SSD300 batch of 8 (5.7 M logits) a training
    step took 2-3 ms less than with whole-tensor passes (alternating stock / HPU benchmark on this
    project's 2-core VM). Devices and ``torch.compile`` take whole-tensor ops
    (:mod:`~mmdet_hpu.models.utils.cpu_speedups`).

    Args:
        logits (Tensor): (N, C, L).

    Returns:
        tuple[Tensor, Tensor, Tensor]: peak (N, 1, L), exp (N, C, L), total (N, 1, L).
    """
    rows = _rows_per_block(logits)
    if rows >= logits.shape[0] or logits.shape[1] < 2:
        peak = logits.amax(dim=1, keepdim=True)
        exp = torch.sub(logits, peak).exp_()
        return peak, exp, exp.sum(dim=1, keepdim=True)
    num_rows, num_classes, length = logits.shape
    peak = logits.new_empty(num_rows, 1, length)
    exp = torch.empty_like(logits)
    total = logits.new_empty(num_rows, 1, length)
    halves = logits.new_empty(rows, num_classes // 2, length)
    for start in range(0, num_rows, rows):
        block = slice(start, start + rows)
        _block_peak_into(logits[block], halves, peak[block])
        torch.sub(logits[block], peak[block], out=exp[block]).exp_()
        torch.sum(exp[block], dim=1, keepdim=True, out=total[block])
    return peak, exp, total


def _block_peak_into(block: torch.Tensor, halves: torch.Tensor, peak: torch.Tensor) -> None:
    """``peak = block.amax(dim=1, keepdim=True)``, reading the block as two contiguous streams.

    ``amax`` over the class axis reads C rows L apart at once; from memory that took twice as
    long as the elementwise maximum of the two halves of the classes (two sequential streams)
    followed by ``amax`` over the cached halves. The result is the same (max is exact, NaN
    propagates in both).

    Args:
        block (Tensor): (n, C, L) logits, C >= 2.
        halves (Tensor): (>= n, C // 2, L) scratch.
        peak (Tensor): (n, 1, L) output.
    """
    half = block.shape[1] // 2
    both = torch.maximum(block[:, :half], block[:, half:2 * half], out=halves[:block.shape[0]])
    torch.amax(both, dim=1, keepdim=True, out=peak)
    if block.shape[1] % 2:
        torch.maximum(peak, block[:, 2 * half:], out=peak)


class _CrossEntropyMaps(torch.autograd.Function):
    """See :func:`cross_entropy_maps`."""

    @staticmethod
    def forward(ctx, logits, labels):
        peak, exp, total = _exp_and_sums(logits)
        index = labels[:, None]
        # log(sum) - (x[label] - max): log-softmax's order (exact for a dominant label).
        loss = total.log().sub_(logits.gather(1, index).sub_(peak)).squeeze(1)
        # The backward scales ``exp`` in place: a second backward through the same graph
        # (retain_graph) fails autograd's version check instead of giving a wrong gradient.
        ctx.save_for_backward(exp, total, index)
        return loss

    @staticmethod
    def backward(ctx, grad_output):
        exp, total, index = ctx.saved_tensors
        grad_output = grad_output[:, None]
        grad = exp.mul_(grad_output / total)
        return grad.scatter_add_(1, index, grad_output.neg()), None


def cross_entropy_maps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``F.cross_entropy(logits, labels, reduction='none')`` of channel-first logits.

    Args:
        logits (Tensor): (N, C, L), classes on axis 1 (e.g. a class map viewed as
            (B * n, C, h * w)).
        labels (Tensor): (N, L) long class indices in [0, C).

    Returns:
        Tensor: (N, L) losses. The backward may run once.
    """
    return _CrossEntropyMaps.apply(logits, labels)
