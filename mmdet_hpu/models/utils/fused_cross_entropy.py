"""Softmax cross-entropy straight from channel-first class maps, with an analytic gradient.

``F.cross_entropy`` on a (N, C, L) view of a head's class map (B, n * C, h, w) avoids the
permuted copy of the map, but autograd then keeps the full log-softmax plus a zero-filled NLL
gradient and runs a generic log-softmax backward. Here the forward is one ``log_softmax`` over
the class axis (kept, one full buffer) and the loss of every anchor is ``-log_softmax[label]``;
the backward turns the kept buffer into the gradient ``(softmax(x) - onehot(label)) * g`` in
place (``exp``, scale, one scatter).
"""
import torch


class _CrossEntropyMaps(torch.autograd.Function):
    """See :func:`cross_entropy_maps`."""

    @staticmethod
    def forward(ctx, logits, labels):
        log_probs = torch.log_softmax(logits, dim=1)
        index = labels[:, None]
        loss = log_probs.gather(1, index).neg_().squeeze(1)
        # The backward turns ``log_probs`` into the gradient in place: a second backward
        # through the same graph (retain_graph) fails autograd's version check instead of
        # giving a wrong gradient.
        ctx.save_for_backward(log_probs, index)
        return loss

    @staticmethod
    def backward(ctx, grad_output):
        log_probs, index = ctx.saved_tensors
        grad_output = grad_output[:, None]
        grad = log_probs.exp_().mul_(grad_output)
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
