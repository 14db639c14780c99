"""Either ground-truth form (stock lists or HPUPadGT padding) as one batch of fixed shape."""
from typing import Tuple

import torch

from .gt_padding import bucket_gt_list, pad_rows, stack_padded_gt


def batch_gt(gt_bboxes, gt_labels, gt_valid, max_num_gt: int, device,
             where: str = 'model.bbox_head.max_num_gt'
             ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Normalise ground truth to (B, G, 4) boxes, (B, G) labels and (B, G) validity on ``device``.

    * ``gt_valid`` given: the ground truth is already padded (``HPUPadGT``); G is the width of
      ``gt_valid`` (see :func:`~mmdet_hpu.models.utils.gt_padding.stack_padded_gt`).
    * ``gt_valid`` None: per-image lists, padded to the bucket of the largest image (host-side
      lengths; no device read).

    G is at least 1 (a single invalid row when a padded batch has width 0), so reductions over
    the ground-truth axis always have an element. Only shapes are inspected.

    Args:
        gt_bboxes (list[Tensor] | Tensor): (n_i, 4) per image, or (B, G, 4).
        gt_labels (list[Tensor] | Tensor): (n_i,) per image, or (B, G).
        gt_valid (Tensor | list[Tensor] | None): validity mask of padded ground truth.
        max_num_gt (int): Most boxes an image may have in list form.
        device (torch.device): Target device.
        where (str): Config key named when an image has too many boxes.

    Returns:
        tuple[Tensor, Tensor, Tensor]: boxes (B, G, 4), labels (B, G) long, valid (B, G) bool.

    Raises:
        ValueError: Padded boxes without ``gt_valid``, or too many boxes in an image.
    """
    if gt_valid is not None:
        boxes, labels, valid = stack_padded_gt(gt_bboxes, gt_labels, gt_valid)
    elif torch.is_tensor(gt_bboxes):
        raise ValueError('gt_bboxes is a padded tensor but gt_valid is missing; pass '
                         'gt_valid (see HPUPadGT) or per-image lists')
    else:
        boxes, labels, valid = bucket_gt_list(gt_bboxes, gt_labels, max_num_gt, where)
    if boxes.shape[1] == 0:
        boxes = torch.stack([pad_rows(b, 1) for b in boxes])
        labels = torch.stack([pad_rows(lbl, 1) for lbl in labels])
        valid = torch.stack([pad_rows(v, 1) for v in valid])
    return (boxes.to(device=device, dtype=torch.float32), labels.to(device).long(),
            valid.to(device).bool())
