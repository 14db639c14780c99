"""Per-prior loss terms of dense heads over the whole batch, image-major, without host reads.

Stock heads gather the positives of each level (``nonzero`` + indexing) and call the loss
modules once per level. These compute the element losses of every prior of the batch at once
(fixed shapes, positives selected by weights) and reduce them per level afterwards, which is
the same arithmetic per element and the same sums up to float summation order.
"""
from typing import List, Sequence

import torch
import torch.nn.functional as F
from mmdet.models.losses import GIoULoss
from mmdet.models.losses.iou_loss import giou_loss, iou_loss

EPS = torch.finfo(torch.float32).eps  # mmdet's weight_reduce_loss: sum / (avg_factor + EPS)


def image_major(maps: Sequence[torch.Tensor], channels: int) -> torch.Tensor:
    """Per-level (B, P * K, h, w) maps to (B, sum h * w * P, K), levels concatenated per image.

    The prior order within a level is stock's ``permute(0, 2, 3, 1).reshape(-1, K)``.
    """
    return torch.cat([m.permute(0, 2, 3, 1).reshape(m.shape[0], -1, channels) for m in maps],
                     dim=1)


def level_sums(values: torch.Tensor, num_level_priors: Sequence[int]) -> List[torch.Tensor]:
    """0-dim sums of (B, A) ``values`` over each level's (B, A_l) block."""
    return [part.sum() for part in values.split(list(num_level_priors), dim=1)]


def iou_loss_elements(loss_module, pred_boxes: torch.Tensor, target_boxes: torch.Tensor
                      ) -> torch.Tensor:
    """Unweighted element losses of ``IoULoss``/``GIoULoss`` (before ``loss_weight``).

    Args:
        loss_module (IoULoss | GIoULoss): The head's box loss (``eps``, ``mode``).
        pred_boxes (Tensor): (..., 4) decoded predicted boxes.
        target_boxes (Tensor): (..., 4) decoded target boxes (well formed everywhere).

    Returns:
        Tensor: (...) losses.
    """
    shape = pred_boxes.shape[:-1]
    pred, target = pred_boxes.reshape(-1, 4), target_boxes.reshape(-1, 4)
    if type(loss_module) is GIoULoss:
        loss = giou_loss(pred, target, eps=loss_module.eps, reduction='none')
    else:
        loss = iou_loss(pred, target, mode=loss_module.mode, eps=loss_module.eps,
                        reduction='none')
    return loss.reshape(shape)


def centerness_bce_elements(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Element losses of sigmoid ``CrossEntropyLoss`` (no class weight, targets in [0, 1])."""
    return F.binary_cross_entropy_with_logits(logits, targets, reduction='none')
