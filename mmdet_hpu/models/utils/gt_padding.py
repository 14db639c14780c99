"""Pad per-image ground truth to one fixed-shape batch tensor.

Dense heads in mmdet receive ground truth as lists with one tensor per image, whose lengths vary
from image to image. A static graph needs one fixed shape instead: the boxes are padded to
``max_num_gt`` rows and a boolean mask says which rows are real.
"""
from typing import List, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

TensorOrList = Union[torch.Tensor, Sequence[torch.Tensor]]


def too_many_gt_message(num_gt: int, max_num_gt: int, where: str) -> str:
    """Build the error message raised when an image has more boxes than ``max_num_gt``.

    Args:
        num_gt (int): Number of boxes in the offending image.
        max_num_gt (int): The configured maximum.
        where (str): The config key(s) to raise, e.g. ``'model.bbox_head.max_num_gt'``.

    Returns:
        str: The message.
    """
    return (f'an image has {num_gt} ground-truth boxes but max_num_gt={max_num_gt}; '
            f'raise {where} to at least {num_gt} (boxes are never silently dropped)')


def pad_gt_list(gt_bboxes: Sequence[torch.Tensor], gt_labels: Sequence[torch.Tensor],
                max_num_gt: int,
                where: str = 'model.bbox_head.max_num_gt'
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad lists of per-image boxes and labels to ``max_num_gt`` rows.

    The row count of each image is a host-side shape, so checking it costs no device sync. The
    padding itself has one shape per distinct box count; use the ``HPUPadGT`` pipeline transform
    to get fixed shapes from the data loader instead.

    Args:
        gt_bboxes (Sequence[Tensor]): B tensors of shape (n_i, 4).
        gt_labels (Sequence[Tensor]): B tensors of shape (n_i,).
        max_num_gt (int): G, the padded number of rows.
        where (str): Config key named in the error message.

    Returns:
        tuple[Tensor, Tensor, Tensor]: boxes (B, G, 4) (padding rows are 0), labels (B, G) long
        (padding rows are 0) and the validity mask (B, G) bool.

    Raises:
        ValueError: If an image has more than ``max_num_gt`` boxes, or the lists differ in length.
    """
    if len(gt_bboxes) != len(gt_labels):
        raise ValueError(f'got {len(gt_bboxes)} gt_bboxes entries but {len(gt_labels)} gt_labels')
    boxes, labels, valid = [], [], []
    for bboxes, lbls in zip(gt_bboxes, gt_labels):
        num_gt = bboxes.shape[0]
        if num_gt > max_num_gt:
            raise ValueError(too_many_gt_message(num_gt, max_num_gt, where))
        if lbls.shape[0] != num_gt:
            raise ValueError(f'{num_gt} boxes but {lbls.shape[0]} labels in one image')
        pad = max_num_gt - num_gt
        boxes.append(F.pad(bboxes.reshape(num_gt, 4), (0, 0, 0, pad)))
        labels.append(F.pad(lbls.long(), (0, pad)))
        valid.append(torch.arange(max_num_gt, device=bboxes.device) < num_gt)
    return torch.stack(boxes), torch.stack(labels), torch.stack(valid)


def stack_padded_gt(gt_bboxes: TensorOrList, gt_labels: TensorOrList, gt_valid: TensorOrList
                    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Turn already padded ground truth into batch tensors.

    ``DefaultFormatBundle`` wraps ``gt_bboxes``/``gt_labels`` in ``DataContainer(stack=False)``,
    so after collation they arrive as lists of B equally shaped tensors; they are stacked here
    (a static copy). Tensors that are already batched pass through.

    Args:
        gt_bboxes (Tensor | Sequence[Tensor]): (B, G, 4) or B tensors of shape (G, 4).
        gt_labels (Tensor | Sequence[Tensor]): (B, G) or B tensors of shape (G,).
        gt_valid (Tensor | Sequence[Tensor]): (B, G) or B tensors of shape (G,), any dtype;
            non-zero means a real box.

    Returns:
        tuple[Tensor, Tensor, Tensor]: boxes (B, G, 4), labels (B, G) long, valid (B, G) bool.

    Raises:
        ValueError: If the shapes do not agree.
    """
    boxes = gt_bboxes if torch.is_tensor(gt_bboxes) else torch.stack(list(gt_bboxes))
    labels = gt_labels if torch.is_tensor(gt_labels) else torch.stack(list(gt_labels))
    valid = gt_valid if torch.is_tensor(gt_valid) else torch.stack(list(gt_valid))
    if boxes.dim() != 3 or boxes.shape[-1] != 4:
        raise ValueError(f'padded gt_bboxes must have shape (B, G, 4), got {tuple(boxes.shape)}')
    if labels.shape != boxes.shape[:2] or valid.shape != boxes.shape[:2]:
        raise ValueError(f'padded gt_labels {tuple(labels.shape)} and gt_valid '
                         f'{tuple(valid.shape)} must both have shape {tuple(boxes.shape[:2])}')
    return boxes, labels.long(), valid.bool()


def unpad_gt(gt_bboxes: torch.Tensor, gt_labels: torch.Tensor, gt_valid: torch.Tensor
             ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
    """Drop the padding rows again (host side only: this uses boolean-mask indexing).

    Args:
        gt_bboxes (Tensor): (B, G, 4).
        gt_labels (Tensor): (B, G).
        gt_valid (Tensor): (B, G) bool.

    Returns:
        tuple[list[Tensor], list[Tensor]]: B tensors (n_i, 4) and B tensors (n_i,).
    """
    # Dynamic shapes: only ever called on host (CPU) tensors, in host target mode.
    boxes = [b[v] for b, v in zip(gt_bboxes, gt_valid)]
    labels = [lbl[v] for lbl, v in zip(gt_labels, gt_valid)]
    return boxes, labels
