"""Pad per-image ground truth to one batch tensor with few possible shapes.

Dense heads in mmdet receive ground truth as lists with one tensor per image, whose lengths vary
from image to image. A static graph needs few, known shapes instead: the boxes are padded to a
*bucket* of rows and a boolean mask says which rows are real. Buckets are powers of two from
:data:`MIN_GT_BUCKET` on, capped at ``max_num_gt`` (see :func:`gt_bucket`): with the default
``max_num_gt=128`` a batch has one of the 5 shapes G = 8, 16, 32, 64 or 128, the smallest that
holds its most crowded image, so the target/loss cost follows the real box count.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch

TensorOrList = Union[torch.Tensor, Sequence[torch.Tensor]]
MIN_GT_BUCKET = 8


def gt_bucket(num_gt: int, max_num_gt: int) -> int:
    """Padded row count for ``num_gt`` boxes: the next power of two, at least 8, at most the cap.

    Host-side arithmetic on Python ints (a shape), never on device data. The possible results are
    8, 16, 32, ... below ``max_num_gt``, and ``max_num_gt`` itself: at most
    ``ceil(log2(max_num_gt / 8)) + 1`` values (5 for ``max_num_gt=128``).

    Args:
        num_gt (int): Boxes of the image (or the batch's largest count); must not exceed
            ``max_num_gt``.
        max_num_gt (int): The cap.

    Returns:
        int: The bucket size G, ``num_gt <= G <= max_num_gt``.
    """
    bucket = MIN_GT_BUCKET
    while bucket < num_gt:
        bucket *= 2
    return min(bucket, max_num_gt)


def pad_rows(tensor: torch.Tensor, num_rows: int) -> torch.Tensor:
    """Zero-pad dim 0 of ``tensor`` to ``num_rows`` rows (a shape-only op).

    Args:
        tensor (Tensor): (n, ...) with n <= ``num_rows``.
        num_rows (int): Rows after padding.

    Returns:
        Tensor: (num_rows, ...), ``tensor`` first, zeros (False) after.

    Raises:
        ValueError: If ``tensor`` already has more rows.
    """
    extra = num_rows - tensor.shape[0]
    if extra < 0:
        raise ValueError(f'cannot pad {tensor.shape[0]} rows to {num_rows}')
    if extra == 0:
        return tensor
    return torch.cat([tensor, tensor.new_zeros((extra, ) + tuple(tensor.shape[1:]))])


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
                where: str = 'model.bbox_head.max_num_gt',
                num_rows: Optional[int] = None
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad lists of per-image boxes and labels to G rows.

    The row count of each image is a host-side shape, so checking it costs no device sync.

    Args:
        gt_bboxes (Sequence[Tensor]): B tensors of shape (n_i, 4).
        gt_labels (Sequence[Tensor]): B tensors of shape (n_i,).
        max_num_gt (int): The most boxes an image may have.
        where (str): Config key named in the error message.
        num_rows (int | None): G, the padded number of rows (>= every n_i); ``max_num_gt`` when
            None. Pass ``gt_bucket(max(n_i), max_num_gt)`` for bucketed shapes.

    Returns:
        tuple[Tensor, Tensor, Tensor]: boxes (B, G, 4) (padding rows are 0), labels (B, G) long
        (padding rows are 0) and the validity mask (B, G) bool.

    Raises:
        ValueError: If an image has more than ``max_num_gt`` boxes, or the lists differ in length.
    """
    if len(gt_bboxes) != len(gt_labels):
        raise ValueError(f'got {len(gt_bboxes)} gt_bboxes entries but {len(gt_labels)} gt_labels')
    num_rows = max_num_gt if num_rows is None else num_rows
    boxes, labels, valid = [], [], []
    for bboxes, lbls in zip(gt_bboxes, gt_labels):
        num_gt = bboxes.shape[0]
        if num_gt > max_num_gt:
            raise ValueError(too_many_gt_message(num_gt, max_num_gt, where))
        if lbls.shape[0] != num_gt:
            raise ValueError(f'{num_gt} boxes but {lbls.shape[0]} labels in one image')
        boxes.append(pad_rows(bboxes.reshape(num_gt, 4), num_rows))
        labels.append(pad_rows(lbls.long(), num_rows))
        valid.append(torch.arange(num_rows, device=bboxes.device) < num_gt)
    return torch.stack(boxes), torch.stack(labels), torch.stack(valid)


def bucket_gt_list(gt_bboxes: Sequence[torch.Tensor], gt_labels: Sequence[torch.Tensor],
                   max_num_gt: int, where: str = 'model.bbox_head.max_num_gt'
                   ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`pad_gt_list` to the bucket of the batch's most crowded image (see :func:`gt_bucket`).

    Args:
        gt_bboxes (Sequence[Tensor]): B tensors of shape (n_i, 4).
        gt_labels (Sequence[Tensor]): B tensors of shape (n_i,).
        max_num_gt (int): The most boxes an image may have.
        where (str): Config key named in the error message.

    Returns:
        tuple[Tensor, Tensor, Tensor]: as :func:`pad_gt_list`, with G = ``gt_bucket(max n_i)``.
    """
    num_rows = gt_bucket(min(_most_rows(gt_bboxes), max_num_gt), max_num_gt)
    return pad_gt_list(gt_bboxes, gt_labels, max_num_gt, where, num_rows)


def _most_rows(items: Sequence[torch.Tensor]) -> int:
    """Largest dim 0 of ``items`` (0 for none), a host-side shape.

    A plain loop: dynamo graph-breaks on ``max(generator, default=0)``.
    """
    most = 0
    for item in items:
        most = max(most, item.shape[0])
    return most


def stack_padded_gt(gt_bboxes: TensorOrList, gt_labels: TensorOrList, gt_valid: TensorOrList
                    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Turn already padded ground truth into batch tensors of G rows.

    ``HPUPadGT`` pads each image to its own bucket and its ``gt_valid`` is collated (padded) to
    the batch's largest one, (B, 1, G). ``DefaultFormatBundle`` wraps ``gt_bboxes``/``gt_labels``
    in ``DataContainer(stack=False)``, so they arrive as lists of B tensors of up to G rows; each
    is zero-padded to G and stacked here (shape-only ops: G is ``gt_valid``'s shape, never read
    from the data). Tensors that are already batched pass through.

    Args:
        gt_bboxes (Tensor | Sequence[Tensor]): (B, G, 4) or B tensors of shape (g_i, 4).
        gt_labels (Tensor | Sequence[Tensor]): (B, G) or B tensors of shape (g_i,).
        gt_valid (Tensor | Sequence[Tensor]): (B, G), (B, 1, G) or B tensors of shape (g_i,) or
            (1, g_i), any dtype; non-zero means a real box. G is its last dimension (the
            largest g_i for a list).

    Returns:
        tuple[Tensor, Tensor, Tensor]: boxes (B, G, 4), labels (B, G) long, valid (B, G) bool.

    Raises:
        ValueError: If the shapes do not agree.
    """
    valid = _stack_rows(gt_valid, None, flatten=True)
    num_rows = valid.shape[-1]
    boxes = _stack_rows(gt_bboxes, num_rows)
    labels = _stack_rows(gt_labels, num_rows)
    if boxes.dim() != 3 or boxes.shape[-1] != 4:
        raise ValueError(f'padded gt_bboxes must have shape (B, G, 4), got {tuple(boxes.shape)}')
    if labels.shape != boxes.shape[:2] or valid.shape != boxes.shape[:2]:
        raise ValueError(f'padded gt_labels {tuple(labels.shape)} and gt_valid '
                         f'{tuple(valid.shape)} must both have shape {tuple(boxes.shape[:2])}')
    return boxes, labels.long(), valid.bool()


def _stack_rows(items: TensorOrList, num_rows: Optional[int], flatten: bool = False
                ) -> torch.Tensor:
    """Stack a batch, zero-padding each entry's rows to ``num_rows`` (the largest when None).

    Args:
        items (Tensor | Sequence[Tensor]): A batched tensor (returned as is, flattened to (B, G)
            when ``flatten``) or B tensors.
        num_rows (int | None): Rows per entry after padding.
        flatten (bool): Entries are masks of shape (g_i,) or (1, g_i); return (B, G).

    Returns:
        Tensor: (B, G, ...).
    """
    if torch.is_tensor(items):
        return items.reshape(items.shape[0], -1) if flatten else items
    items = [item.reshape(-1) if flatten else item for item in items]
    if num_rows is None:
        num_rows = _most_rows(items)
    return torch.stack([pad_rows(item, num_rows) for item in items])


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
