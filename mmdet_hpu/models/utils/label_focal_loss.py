"""Sigmoid focal loss of class labels on the head's own (B, C, h, w) layout, analytic gradient.

mmdet's ``py_sigmoid_focal_loss`` (what ``FocalLoss`` runs on every device but CUDA) needs the
logits flattened to (N, C) (a permute copy and a ``cat`` over the levels, plus their backward),
a one-hot (N, C) target, and ~15 elementwise ops that autograd records. Here a level's output
(B, P * C, h, w) is viewed as (B, P, C, L) (no copy; its gradient comes back in that layout,
so accumulating it is a contiguous add) and the labels stay indices. Each element's loss is
``a_t * sigmoid(q)^gamma * softplus(q)`` with ``q = x``, ``a_t = 1 - alpha`` for target 0 and
``q = -x``, ``a_t = alpha`` for target 1 (``softplus(q)`` is the BCE with logits term), and
``dL/dq = a_t * sigmoid(q)^gamma * (gamma * (1 - sigmoid(q)) * softplus(q) + sigmoid(q))``.
"""
from typing import Optional

import torch
import torch.nn.functional as F


def _pow(values: torch.Tensor, gamma: float) -> torch.Tensor:
    return torch.mul(values, values) if gamma == 2.0 else values.pow(gamma)


def _scaled(values: torch.Tensor, weights: Optional[torch.Tensor], scale: float) -> torch.Tensor:
    """``values *= weights * scale`` in place (``weights`` None: all ones)."""
    return values.mul_(scale) if weights is None else values.mul_(weights * scale)


def _focal_grad(prob, soft, focal, gamma: float, out: torch.Tensor) -> torch.Tensor:
    """``focal * (gamma * (1 - prob) * soft + prob)`` written into ``out`` (may be ``soft``)."""
    out = torch.addcmul(soft, prob, soft, value=-1.0, out=out)
    return torch.add(prob, out, alpha=gamma, out=out).mul_(focal)


class _LabelFocalLossSum(torch.autograd.Function):
    """Focal-loss sum of (B, P, C, L) logits against (B, P, 1, L) labels.

    Every element is first taken as a negative (target 0, ``q = x``): sigmoid, softplus and
    ``p^gamma`` (three fresh buffers), the weights and a dot product give the loss, and when a
    gradient is wanted it is computed right away into the softplus buffer (three more passes);
    only that buffer is kept for the backward. The one positive element per prior (if any) is
    gathered, recomputed with target 1 on a tensor ``C`` times smaller, and scattered over its
    negative value, so no one-hot, ``where`` or layout copy touches the full tensor.
    """

    @staticmethod
    def forward(ctx, logits, labels, weights, gamma: float, alpha: float, with_grad: bool):
        num_classes = logits.shape[2]
        positive = labels < num_classes
        index = labels.clamp(max=num_classes - 1)
        prob = logits.sigmoid()
        soft = F.softplus(logits)
        focal = _scaled(_pow(prob, gamma), weights, 1.0 - alpha)
        # Positive elements leave the negative-target sum (focal weight 0) ...
        focal.scatter_(2, index, focal.gather(2, index).masked_fill_(positive, 0.0))
        loss = torch.dot(focal.reshape(-1), soft.reshape(-1))
        # ... and come back with target 1 (q = -x).
        pos_q = logits.gather(2, index).neg_()
        pos_prob = pos_q.sigmoid()
        pos_soft = F.softplus(pos_q)
        pos_focal = _scaled(_pow(pos_prob, gamma), weights, alpha).masked_fill_(~positive, 0.0)
        loss = loss + torch.dot(pos_focal.reshape(-1), pos_soft.reshape(-1))
        if with_grad:
            # dL/dq = focal * (gamma * (1 - prob) * soft + prob); dL/dx = -dL/dq for target 1.
            grad = _focal_grad(prob, soft, focal, gamma, out=soft)
            pos_grad = _focal_grad(pos_prob, pos_soft, pos_focal, gamma, out=pos_soft)
            grad.scatter_(2, index, torch.where(positive, pos_grad.neg_(), grad.gather(2, index)))
            # Scaled in place by the backward: a second backward through the same graph
            # (retain_graph) fails autograd's version check instead of scaling twice.
            ctx.save_for_backward(grad)
        return loss

    @staticmethod
    def backward(ctx, grad_output):
        (grad,) = ctx.saved_tensors
        return grad.mul_(grad_output), None, None, None, None, None


def label_focal_loss_sum(logits: torch.Tensor, labels: torch.Tensor,
                         weights: Optional[torch.Tensor], gamma: float, alpha: float
                         ) -> torch.Tensor:
    """Sum of ``py_sigmoid_focal_loss`` over a level's logits, one-hot targets from labels.

    The gradient is computed in the forward when ``logits`` requires one (and grad mode is
    on), and the backward may run once (a second one through a retained graph raises).

    Args:
        logits (Tensor): (B, P * C, h, w) class logits of one level (P priors per location,
            channel ``p * C + c`` as dense heads lay them out). Logits already flattened to
            (N, C) go in as ``logits.reshape(1, -1, 1, 1)`` with labels (1, N).
        labels (Tensor): (B, h * w * P) long labels in [0, C] (C: background), in the order
            stock flattens them (location, then prior).
        weights (Tensor | None): Per-prior weights shaped like ``labels``; None for all ones.
        gamma (float): Focusing parameter.
        alpha (float): Weight of the positive class.

    Returns:
        Tensor: 0-dim sum, equal to ``py_sigmoid_focal_loss(flat_logits, one_hot, weights,
        gamma, alpha, reduction='sum')`` up to float summation order; gradient to ``logits``.
    """
    num_imgs, _, feat_h, feat_w = logits.shape
    cells = feat_h * feat_w
    num_priors = labels.numel() // (num_imgs * cells)
    logits = logits.reshape(num_imgs, num_priors, -1, cells)
    with_grad = torch.is_grad_enabled() and logits.requires_grad

    def channel_first(values):  # (B, L * P) -> (B, P, 1, L)
        if values is None:
            return None
        return values.reshape(num_imgs, cells, num_priors).transpose(1, 2)[:, :, None]

    return _LabelFocalLossSum.apply(logits, channel_first(labels), channel_first(weights),
                                    gamma, alpha, with_grad)
