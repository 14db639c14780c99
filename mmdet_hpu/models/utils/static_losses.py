"""Dense-head losses over every prior with weights, without host syncs or dynamic shapes.

Stock heads gather the positives (``nonzero`` + indexing) before the box losses, and mmdet's IoU
loss modules start with ``if weight is not None and not torch.any(weight > 0)`` (a host sync).
The functions here call the same element-wise mmdet loss functions on all priors, with the
positives selected by a weight, so the values equal stock's while every shape is fixed.
"""
import torch
from mmdet.models.losses import CrossEntropyLoss, FocalLoss, GIoULoss, IoULoss
from mmdet.models.losses.iou_loss import giou_loss, iou_loss

STATIC_IOU_LOSSES = (IoULoss, GIoULoss)


def check_static_losses(head_name: str, loss_cls, loss_bbox, loss_centerness) -> None:
    """Refuse loss configs whose static versions are not implemented.

    Args:
        head_name (str): Head type named in the messages.
        loss_cls (nn.Module): Built classification loss.
        loss_bbox (nn.Module): Built box loss.
        loss_centerness (nn.Module): Built centerness loss.

    Raises:
        TypeError: Naming the option and the supported alternative.
    """
    if type(loss_cls) is not FocalLoss or loss_cls.activated or not loss_cls.use_sigmoid:
        raise TypeError(f"{head_name}: loss_cls must be dict(type='FocalLoss', use_sigmoid=True) "
                        f'(activated=False) for static targets, got {type(loss_cls).__name__}; '
                        'use the stock head for other classification losses')
    if type(loss_bbox) not in STATIC_IOU_LOSSES:
        raise TypeError(f"{head_name}: loss_bbox must be 'IoULoss' or 'GIoULoss' for static "
                        f'targets, got {type(loss_bbox).__name__}; use the stock head for it')
    if (type(loss_centerness) is not CrossEntropyLoss or not loss_centerness.use_sigmoid
            or loss_centerness.class_weight is not None
            or getattr(loss_centerness, 'avg_non_ignore', False)):
        raise TypeError(f"{head_name}: loss_centerness must be dict(type='CrossEntropyLoss', "
                        'use_sigmoid=True) without class_weight/avg_non_ignore, got '
                        f'{type(loss_centerness).__name__}; use the stock head for it')
    for name, loss in (('loss_cls', loss_cls), ('loss_bbox', loss_bbox),
                       ('loss_centerness', loss_centerness)):
        if loss.reduction != 'mean':
            raise ValueError(f"{head_name}: {name}.reduction must be 'mean' (stock heads pass "
                             f'avg_factor), got {loss.reduction!r}')


def static_iou_loss(loss_module, pred_boxes: torch.Tensor, target_boxes: torch.Tensor,
                    weight: torch.Tensor, avg_factor) -> torch.Tensor:
    """``IoULoss``/``GIoULoss`` with a weight, minus the ``torch.any(weight > 0)`` host sync.

    With every weight zero, stock returns ``(pred * weight).sum()`` (zero); this returns
    ``0 / (avg_factor + eps)``: also zero, with a zero gradient as long as the losses of the
    zero-weight rows are finite (callers give them well-formed target boxes).

    Args:
        loss_module (IoULoss | GIoULoss): The head's box loss.
        pred_boxes (Tensor): (N, 4) decoded predicted boxes.
        target_boxes (Tensor): (N, 4) decoded target boxes.
        weight (Tensor): (N,) weights (0 for non-positives).
        avg_factor (Tensor | float): Normaliser.

    Returns:
        Tensor: The scalar loss.
    """
    if type(loss_module) is GIoULoss:
        loss = giou_loss(pred_boxes, target_boxes, weight, eps=loss_module.eps,
                         reduction=loss_module.reduction, avg_factor=avg_factor)
    else:
        loss = iou_loss(pred_boxes, target_boxes, weight, mode=loss_module.mode,
                        eps=loss_module.eps, reduction=loss_module.reduction,
                        avg_factor=avg_factor)
    return loss_module.loss_weight * loss


def static_centerness_loss(loss_module: CrossEntropyLoss, logits: torch.Tensor,
                           targets: torch.Tensor, weight: torch.Tensor, avg_factor
                           ) -> torch.Tensor:
    """Sigmoid cross-entropy of the centerness over all priors, positives picked by ``weight``.

    Args:
        loss_module (CrossEntropyLoss): The head's centerness loss (``use_sigmoid=True``).
        logits (Tensor): (N,) centerness logits.
        targets (Tensor): (N,) targets in [0, 1] (any finite value where ``weight`` is 0).
        weight (Tensor): (N,) 1 for positives, 0 elsewhere.
        avg_factor (Tensor | float): Normaliser.

    Returns:
        Tensor: The scalar loss.
    """
    return loss_module(logits, targets, weight=weight, avg_factor=avg_factor)
