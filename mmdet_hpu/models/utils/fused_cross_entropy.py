"""Softmax cross-entropy straight from channel-first class maps, with an analytic gradient.

``F.cross_entropy`` on a (N, C, L) view of a head's class map (B, n * C, h, w) avoids the
permuted copy of the map, but on the CPU its softmax along a non-last axis is slow and autograd
keeps the full log-softmax plus a zero-filled NLL gradient. Here the loss of every anchor is
``logsumexp(x) - x[label]``; the forward keeps ``exp(x - max)`` (one full buffer) and the
backward turns it into the gradient ``(softmax(x) - onehot(label)) * g`` in place.
On the CPU the exponential is taken as ``exp2((x - max) * log2(e))`` (see :func:`_shifted_exp`).
"""
import torch

from . import cpu_speedups

LOG2_E = 1.4426950408889634


def _shifted_exp(logits: torch.Tensor, peak: torch.Tensor) -> torch.Tensor:
    """``exp(logits - peak)`` in a new buffer.

    On the CPU, ``exp2`` is about 1.8x faster than ``exp`` (vectorised AVX2 kernels) and one
    in-place scale by log2(e) costs less than the difference: the cross-entropy forward of an
    SSD300 batch of 8 takes 15.5 instead of 17.5 ms (one thread, measured alternately). The
    difference ``x - max`` is formed first, so the best class still gets exactly 1 (a dominant
    label's loss keeps log-softmax's rounding); each other term moves by ~1e-7 relative. Other
    devices take ``exp`` (:mod:`~mmdet_hpu.models.utils.cpu_speedups`).

    Args:
        logits (Tensor): (N, C, L).
        peak (Tensor): (N, 1, L) class maximum.

    Returns:
        Tensor: (N, C, L).
    """
    shifted = torch.sub(logits, peak)
    if cpu_speedups.use_cpu_speedups(shifted):
        return shifted.mul_(LOG2_E).exp2_()
    return shifted.exp_()


class _CrossEntropyMaps(torch.autograd.Function):
    """See :func:`cross_entropy_maps`."""

    @staticmethod
    def forward(ctx, logits, labels):
        peak = logits.amax(dim=1, keepdim=True)
        exp = _shifted_exp(logits, peak)
        total = exp.sum(dim=1, keepdim=True)
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
