"""Weighted smooth-L1 / L1 box-loss sums with an analytic gradient built in the forward.

mmdet's ``smooth_l1_loss`` / ``l1_loss`` record about ten element-wise ops (and autograd ten
more in the backward) over every anchor's four deltas, although only the positives carry
weight. Here the loss takes four passes and its gradient three, computed in the forward
(the loss is always backpropagated in training) and scaled in place by the backward.
"""
from typing import Sequence

import torch


class _BoxLossSum(torch.autograd.Function):
    """See :func:`smooth_l1_sum`."""

    @staticmethod
    def forward(ctx, pred, target, weight, beta: float, dims: tuple, with_grad: bool):
        diff = torch.sub(pred, target)  # pred's layout
        loss = diff.abs()
        if beta > 0:
            # |d| < beta: 0.5 * d^2 / beta; else |d| - 0.5 * beta (mmdet's smooth_l1_loss).
            inner = loss.clamp(max=beta)
            loss.sub_(inner).add_(inner.mul_(inner).mul_(0.5 / beta))
        sums = loss.mul_(weight).sum(dim=dims)
        if with_grad:
            grad = diff.div_(beta).clamp_(-1.0, 1.0) if beta > 0 else diff.sign_()
            # Scaled in place by the backward: a second backward through the same graph
            # (retain_graph) fails autograd's version check instead of scaling twice.
            ctx.save_for_backward(grad.mul_(weight))
        ctx.dims = dims
        return sums

    @staticmethod
    def backward(ctx, grad_output):
        (grad,) = ctx.saved_tensors
        for dim in sorted(ctx.dims):
            grad_output = grad_output.unsqueeze(dim)
        return grad.mul_(grad_output), None, None, None, None, None


def smooth_l1_sum(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, beta: float,
                  dims: Sequence[int]) -> torch.Tensor:
    """``(smooth_l1_loss(pred, target, beta, reduction='none') * weight).sum(dims)``.

    ``beta == 0`` gives the L1 loss (mmdet's ``l1_loss``). The gradient goes to ``pred``
    only, in ``pred``'s layout; it is computed in the forward when ``pred`` requires one, and
    the backward may run once.

    Args:
        pred (Tensor): (..., ) predictions, e.g. a box map viewed as (B, n, 4, h * w).
        target (Tensor): same shape (any strides).
        weight (Tensor): broadcastable to ``pred``.
        beta (float): smooth-L1 transition point, >= 0.
        dims (Sequence[int]): the dims summed (non-negative).

    Returns:
        Tensor: the weighted sums over ``dims``.
    """
    with_grad = torch.is_grad_enabled() and pred.requires_grad
    return _BoxLossSum.apply(pred, target, weight, float(beta), tuple(dims), with_grad)
