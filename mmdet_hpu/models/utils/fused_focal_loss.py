"""Sigmoid focal loss of one-hot targets in a few fused passes, with an analytic gradient.

mmdet's ``py_sigmoid_focal_loss`` (what ``FocalLoss`` runs on every device but CUDA) builds the
loss from ~15 elementwise ops over the (N, C) logits and autograd records all of them; for a
RetinaNet head that is most of the training step's target/loss time. Here each element is
``a_t * sigmoid(q)^gamma * softplus(q)`` with ``q = x`` for target 0 and ``q = -x`` for target 1
(``a_t = 1 - alpha`` / ``alpha``): the same value (``softplus(q)`` is the BCE-with-logits
term), one custom backward:
``dL/dq = a_t * sigmoid(q)^gamma * (gamma * (1 - sigmoid(q)) * softplus(q) + sigmoid(q))``.
"""
import torch
import torch.nn.functional as F


class _FocalLossSum(torch.autograd.Function):
    """Weighted sum of the element losses; see the module docstring (in-place where possible)."""

    @staticmethod
    def forward(ctx, logits, targets, weights, gamma: float, alpha: float):
        q = torch.where(targets, logits.neg(), logits)
        prob = q.sigmoid()
        soft = F.softplus(q)
        focal = prob.square() if gamma == 2.0 else prob.pow(gamma)
        alpha_t = torch.where(targets, alpha, 1.0 - alpha).to(logits.dtype)
        focal.mul_(alpha_t.mul_(weights))
        ctx.save_for_backward(prob, soft, focal, targets)
        ctx.gamma = gamma
        return torch.dot(focal.reshape(-1), soft.reshape(-1))

    @staticmethod
    def backward(ctx, grad_output):
        prob, soft, focal, targets = ctx.saved_tensors
        # focal * (gamma * (1 - prob) * soft + prob), sign flipped for target 1.
        grad = prob.neg().add_(1).mul_(soft).mul_(ctx.gamma).add_(prob).mul_(focal)
        grad = torch.where(targets, grad.neg(), grad)
        return grad.mul_(grad_output), None, None, None, None


def sigmoid_focal_loss_sum(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor,
                           gamma: float, alpha: float) -> torch.Tensor:
    """Sum over every element of the weighted sigmoid focal loss (gradient to the logits only).

    Args:
        logits (Tensor): (N, C).
        targets (Tensor): (N, C) bool one-hot.
        weights (Tensor): (N, 1) or (N, C) element weights.
        gamma (float): focusing parameter.
        alpha (float): weight of the positive class.

    Returns:
        Tensor: 0-dim sum, equal to ``py_sigmoid_focal_loss(..., reduction='sum')``.
    """
    return _FocalLossSum.apply(logits, targets, weights, gamma, alpha)



class _FocalLossMaps(torch.autograd.Function):
    """Focal-loss sum over channel-first class maps, labels given as indices.

    Every element is first taken as a negative (target 0, ``q = x``): sigmoid, softplus and
    ``p^gamma`` (three fresh buffers), the weights and a dot product give the loss, and when a
    gradient is wanted it is computed right away into the softplus buffer (three more passes);
    only that buffer is kept for the backward. The one positive element per anchor (if any) is
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
        focal = torch.mul(prob, prob) if gamma == 2.0 else prob.pow(gamma)
        focal.mul_(weights * (1.0 - alpha))
        # Positive elements leave the negative-target sum (focal weight 0) ...
        focal.scatter_(2, index, focal.gather(2, index).masked_fill_(positive, 0.0))
        loss = torch.dot(focal.reshape(-1), soft.reshape(-1))
        # ... and come back with target 1 (q = -x).
        pos_q = logits.gather(2, index).neg_()
        pos_prob = pos_q.sigmoid()
        pos_soft = F.softplus(pos_q)
        pos_focal = torch.mul(pos_prob, pos_prob) if gamma == 2.0 else pos_prob.pow(gamma)
        pos_focal.mul_(weights * alpha).masked_fill_(~positive, 0.0)
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


def _focal_grad(prob, soft, focal, gamma: float, out: torch.Tensor) -> torch.Tensor:
    """``focal * (gamma * (1 - prob) * soft + prob)`` written into ``out`` (may be ``soft``)."""
    out = torch.addcmul(soft, prob, soft, value=-1.0, out=out)
    return torch.add(prob, out, alpha=gamma, out=out).mul_(focal)


def sigmoid_focal_loss_maps(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor,
                            gamma: float, alpha: float) -> torch.Tensor:
    """Weighted sigmoid focal-loss sum straight from channel-first prediction maps.

    A head's class map (B, n * C, h, w) viewed as (B, n, C, h * w) needs no permuted copy, and
    its gradient comes back in the map's own layout (accumulating it is a contiguous add).
    Equal to :func:`sigmoid_focal_loss_sum` of the permuted logits and the one-hot labels, up
    to the order of the summation. The gradient is computed in the forward when ``logits``
    requires one (a loss is backpropagated), and the backward may run once.

    Args:
        logits (Tensor): (B, n, C, L) contiguous.
        labels (Tensor): (B, n, 1, L) long; values >= C (background) have no positive class.
        weights (Tensor): (B, n, 1, L) per-anchor weights.
        gamma (float): focusing parameter.
        alpha (float): weight of the positive class.

    Returns:
        Tensor: 0-dim sum.
    """
    with_grad = torch.is_grad_enabled() and logits.requires_grad
    return _FocalLossMaps.apply(logits, labels, weights, gamma, alpha, with_grad)
