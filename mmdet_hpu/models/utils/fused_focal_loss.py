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
