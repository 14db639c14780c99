"""Sigmoid focal loss of class labels on the head's own (B, C, h, w) layout, analytic gradient.

mmdet's ``py_sigmoid_focal_loss`` (what ``FocalLoss`` runs on every device but CUDA) needs the
logits flattened to (N, C) (a permute copy and a ``cat`` over the levels, plus their backward),
a one-hot (N, C) target, and ~15 elementwise ops that autograd records. With one-hot targets
almost every element is a negative, so here the loss of every element is computed as if its
target were 0, straight on the (B, P, C, L) view of a level's output (no copy), and the N
positive elements are corrected afterwards (a gather over N, not N * C). For target 0 the
element loss is ``(1 - alpha) * sigmoid(x)^gamma * softplus(x)`` (``softplus(x)`` is the BCE
with logits), for target 1 ``alpha * sigmoid(-x)^gamma * softplus(-x)``; their derivatives are
``(1 - alpha) * p^gamma * (gamma * (1 - p) * softplus(x) + p)`` and
``-alpha * (1 - p)^gamma * (gamma * p * softplus(-x) + (1 - p))`` with ``p = sigmoid(x)``.
When a gradient is wanted the forward pass computes it too (sigmoid, softplus, then five
in-place passes and two buffers for gamma = 2); the backward pass scales a copy of it (so a
second backward through a retained graph gives the same gradient) and writes the positives'
gradients with one ``scatter``. Without one (``no_grad``, or logits not requiring grad) only
the loss is computed.
"""
from typing import Optional

import torch
import torch.nn.functional as F


def _pow(values: torch.Tensor, gamma: float) -> torch.Tensor:
    return values.square() if gamma == 2.0 else values.pow(gamma)


def _all_negative(logits: torch.Tensor, weights: Optional[torch.Tensor], gamma: float,
                  with_grad: bool):
    """Sum of ``w * p^gamma * softplus(x)`` over every element, and its gradient / scale.

    Returns:
        tuple[Tensor, Tensor | None, float]: the 0-dim sum, ``grad / scale`` (B, P, C, L;
        None without ``with_grad``), scale.
    """
    prob = logits.sigmoid()
    weights = None if weights is None else weights[:, :, None, :]
    if not with_grad:
        focal = _pow(prob, gamma)
        if weights is not None:
            focal.mul_(weights)
        return torch.dot(focal.reshape(-1), F.softplus(logits).reshape(-1)), None, 1.0
    if gamma == 2.0:  # the usual case: two buffers, five passes after the two activations
        soft_prob = F.softplus(logits).mul_(prob)  # p * s
        prob_weight = prob if weights is None else prob * weights  # w * p
        total = torch.dot(prob_weight.reshape(-1), soft_prob.reshape(-1))  # sum w p^2 s
        # grad = 2 w p^2 ((1 - p) s + p / 2) = 2 * (w p) * (p s (1 - p) + p^2 / 2)
        half = soft_prob.addcmul_(soft_prob, prob, value=-1.0).addcmul_(prob, prob, value=0.5)
        return total, half.mul_(prob_weight), 2.0
    soft = F.softplus(logits)
    focal = prob.pow(gamma)
    if weights is not None:
        focal.mul_(weights)
    total = torch.dot(focal.reshape(-1), soft.reshape(-1))
    # grad = w p^gamma (gamma (1 - p) s + p)
    soft.addcmul_(soft, prob, value=-1.0)
    return total, prob.add_(soft, alpha=gamma).mul_(focal), 1.0


class _LabelFocalLossSum(torch.autograd.Function):
    """Weighted sum of the focal loss of (B, P, C, L) logits against (B, P, L) labels."""

    @staticmethod
    def forward(ctx, logits, labels, weights, gamma: float, alpha: float, with_grad: bool):
        num_classes = logits.shape[2]
        positive = labels < num_classes
        index = labels.clamp(max=num_classes - 1)[:, :, None, :]  # (B, P, 1, L)
        # Every element as a negative: the loss and grad_scale * its gradient (no 1 - alpha).
        negatives, grad, grad_scale = _all_negative(logits, weights, gamma, with_grad)
        negatives = negatives * (1.0 - alpha)
        # The positive element of each prior: replace its negative loss by the positive one.
        pos_logits = logits.gather(2, index).squeeze(2)  # (B, P, L)
        pos_prob = pos_logits.sigmoid()
        pos_comp = 1.0 - pos_prob
        pos_weight = positive.to(logits.dtype)
        if weights is not None:
            pos_weight = pos_weight * weights
        as_negative = (1.0 - alpha) * _pow(pos_prob, gamma) * F.softplus(pos_logits)
        soft_neg = F.softplus(pos_logits.neg())
        as_positive = alpha * _pow(pos_comp, gamma) * soft_neg
        correction = ((as_positive - as_negative) * pos_weight).sum()
        if not with_grad:
            return negatives + correction
        pos_grad = -alpha * _pow(pos_comp, gamma) * (gamma * pos_prob * soft_neg + pos_comp)
        ctx.save_for_backward(grad, index, positive, pos_grad * pos_weight)
        ctx.grad_scale = grad_scale * (1.0 - alpha)
        return negatives + correction

    @staticmethod
    def backward(ctx, grad_output):
        grad, index, positive, pos_grad = ctx.saved_tensors
        out = grad * (grad_output * ctx.grad_scale)
        current = out.gather(2, index).squeeze(2)
        value = torch.where(positive, pos_grad * grad_output, current)
        out.scatter_(2, index, value[:, :, None, :])
        return out, None, None, None, None, None


def label_focal_loss_sum(logits: torch.Tensor, labels: torch.Tensor,
                         weights: Optional[torch.Tensor], gamma: float, alpha: float
                         ) -> torch.Tensor:
    """Sum of ``py_sigmoid_focal_loss`` over a level's logits, one-hot targets from labels.

    Args:
        logits (Tensor): (B, P * C, h, w) class logits of one level (P priors per location,
            channel ``p * C + c`` as dense heads lay them out). Logits already flattened to
            (N, C) go in as ``logits.reshape(1, -1, 1, 1)`` with labels (1, N).
        labels (Tensor): (B, P, L) or (B, L * P) long labels in [0, C] (C: background), in the
            order stock flattens them (location, then prior).
        weights (Tensor | None): Per-prior weights shaped like ``labels``; None for all ones.
        gamma (float): Focusing parameter.
        alpha (float): Weight of the positive class.

    Returns:
        Tensor: 0-dim sum, equal to ``py_sigmoid_focal_loss(flat_logits, one_hot, weights,
        gamma, alpha, reduction='sum')`` up to float summation order; gradient to ``logits``.
    """
    num_imgs, _, feat_h, feat_w = logits.shape
    num_priors = labels.numel() // (num_imgs * feat_h * feat_w)
    logits = logits.reshape(num_imgs, num_priors, -1, feat_h * feat_w)
    with_grad = torch.is_grad_enabled() and logits.requires_grad

    def prior_major(values):
        if values is None or values.dim() == 3:
            return values
        return values.reshape(num_imgs, -1, logits.shape[1]).transpose(1, 2)

    return _LabelFocalLossSum.apply(logits, prior_major(labels), prior_major(weights), gamma,
                                    alpha, with_grad)
