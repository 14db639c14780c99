"""Vectorised, fixed-shape ``MaxIoUAssigner`` for a whole batch of padded ground truth.

Stock :class:`mmdet.core.bbox.assigners.MaxIoUAssigner` assigns one image at a time with
boolean-mask writes, ``nonzero`` and a Python loop over the GT boxes (step 4). Here every step is
a masked reduction over a (B, G, A) IoU tensor: B images, G padded GT rows (a validity mask says
which are real), A anchors (a validity mask says which take part, e.g. the anchors inside the
image). Nothing reads the device, no shape depends on the data. Shared by the RetinaNet and SSD
heads and usable as is by an RPN (``gt_labels`` are not needed).
"""
from typing import Optional, Tuple, Union

import torch
from mmdet.core.bbox.assigners import MaxIoUAssigner
from mmdet.core.bbox.iou_calculators import BboxOverlaps2D

from mmdet_hpu.errors import ConfigError

from . import cpu_speedups

Threshold = Union[float, Tuple[float, float]]


def pairwise_iou(gt_bboxes: torch.Tensor, anchors: torch.Tensor, eps: float = 1e-6
                 ) -> torch.Tensor:
    """IoU of every GT row with every anchor, bit for bit mmdet's ``bbox_overlaps``.

    The same float operations in the same order as ``bbox_overlaps(gt_bboxes, anchors)``
    (``mode='iou'``), so ties come out as in mmdet, but on (B, G, A) coordinate planes instead
    of (B, G, A, 2) corner pairs, with anchors shared by the batch not expanded, and in place
    where possible (about half the passes and temporaries).

    Args:
        gt_bboxes (Tensor): (B, G, 4).
        anchors (Tensor): (A, 4) shared or (B, A, 4).
        eps (float): least union (mmdet's default).

    Returns:
        Tensor: (B, G, A).
    """
    if anchors.dim() == 2:
        anchors = anchors[None]
    gt = [c[..., None] for c in gt_bboxes.unbind(-1)]  # (B, G, 1) each
    # Contiguous (1 or B, 1, A) coordinate planes: the (B, G, A) passes stay vectorised.
    an = list(anchors.permute(2, 0, 1).contiguous()[:, :, None, :].unbind(0))
    gt_area = (gt[2] - gt[0]) * (gt[3] - gt[1])
    anchor_area = (an[2] - an[0]) * (an[3] - an[1])
    overlap = torch.minimum(gt[2], an[2])
    other = torch.maximum(gt[0], an[0])
    overlap.sub_(other).clamp_(min=0)  # width
    height = torch.minimum(gt[3], an[3], out=other).sub_(torch.maximum(gt[1], an[1]))
    overlap.mul_(height.clamp_(min=0))
    union = torch.add(gt_area, anchor_area, out=other).sub_(overlap).clamp_(min=eps)
    return overlap.div_(union)


def max_iou_assign(overlaps: torch.Tensor, gt_valid: torch.Tensor,
                   anchor_valid: Optional[torch.Tensor], pos_iou_thr: float,
                   neg_iou_thr: Threshold, min_pos_iou: float = 0.0,
                   gt_max_assign_all: bool = True, match_low_quality: bool = True
                   ) -> Tuple[torch.Tensor, torch.Tensor]:
    """``MaxIoUAssigner.assign_wrt_overlaps`` of a batch, with fixed shapes.

    Equal to stock run on each image's valid GT rows and valid anchors (the others take no part
    in any reduction), including its ties: an anchor's best GT is the first of equal IoUs
    (step 3, ``max`` over the GTs), a GT's best anchor(s) are all anchors tied at its best IoU
    (``gt_max_assign_all``) or the first one, and in step 4 the last GT claiming an anchor wins
    (the stock loop overwrites). Also as stock: an image without valid GT makes every anchor
    negative; ``neg_iou_thr`` that is neither a ``float`` nor a ``tuple`` (e.g. the int ``0``)
    assigns no negatives. Invalid anchors get -1 and max overlap 0.

    Args:
        overlaps (Tensor): (B, G, A) IoU of every GT row with every anchor; overwritten
            (the padded rows and invalid anchors are masked in place).
        gt_valid (Tensor): (B, G) bool, True for real GT rows.
        anchor_valid (Tensor | None): (B, A) or (A,) bool, the anchors that take part (stock's
            ``inside_flags``); None: all.
        pos_iou_thr (float): positive when the best IoU is ``>=`` this.
        neg_iou_thr (float | tuple[float, float]): negative when the best IoU is in
            ``[0, thr)`` or ``[low, high)``.
        min_pos_iou (float): least IoU for a GT to claim its best anchor(s) (step 4).
        gt_max_assign_all (bool): a GT claims every anchor tied at its best IoU, or the first.
        match_low_quality (bool): run step 4.

    Returns:
        tuple[Tensor, Tensor]: assigned (B, A) long: 1-based GT index, 0 (negative) or -1
        (ignored); max_overlaps (B, A): best IoU over the valid GTs (0 without any).
    """
    num_imgs, num_gts, num_anchors = overlaps.shape
    # -inf never wins a max over real IoUs (>= 0) and fails every threshold.
    masked = overlaps.masked_fill_(~gt_valid[:, :, None], float('-inf'))
    if anchor_valid is not None:
        anchor_valid = anchor_valid.expand(num_imgs, num_anchors)
        masked.masked_fill_(~anchor_valid[:, None, :], float('-inf'))
    any_gt = gt_valid.any(dim=1, keepdim=True)

    # 1-2. -1 by default, 0 where the best IoU over the GTs is low enough.
    max_overlaps, argmax_overlaps = _max_over_gts(masked)
    assigned = torch.where(_negative(max_overlaps, neg_iou_thr), 0, -1)
    # 3. positives, to the first GT of the best IoU.
    assigned = torch.where(max_overlaps >= pos_iou_thr, argmax_overlaps + 1, assigned)
    if match_low_quality:
        assigned = _match_low_quality(masked, gt_valid, assigned, min_pos_iou,
                                      gt_max_assign_all)
    # An image without GT: everything negative (stock's early return).
    assigned = torch.where(any_gt, assigned, 0)
    max_overlaps = torch.where(any_gt, max_overlaps, 0.0)
    if anchor_valid is not None:
        assigned = torch.where(anchor_valid, assigned, -1)
        max_overlaps = torch.where(anchor_valid, max_overlaps, 0.0)
    return assigned.long(), max_overlaps


def _max_over_gts(masked: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``masked.max(dim=1)``: best IoU of each anchor and the first GT row reaching it.

    On the CPU ``max`` with indices over a middle axis is 1.4-2.3x slower than ``amax`` plus a
    1-byte first-match pass (G = 8-128); the result is identical, ties included. Other devices
    keep ``max`` (:mod:`~mmdet_hpu.models.utils.cpu_speedups`).

    Args:
        masked (Tensor): (B, G, A) IoU, -inf for rows and anchors that take no part.

    Returns:
        tuple[Tensor, Tensor]: (B, A) best IoU and (B, A) long index of its first GT row.
    """
    num_gts = masked.shape[1]
    if num_gts > 255 or not cpu_speedups.use_cpu_speedups(masked):
        return masked.max(dim=1)
    best = masked.amax(dim=1, keepdim=True)
    # Row g weighs G - g, so the largest weight among the rows at the best IoU is the first's.
    weights = torch.arange(num_gts, 0, -1, device=masked.device, dtype=torch.uint8)
    first = (masked == best).view(torch.uint8).mul_(weights[None, :, None]).amax(dim=1)
    return best.squeeze(1), num_gts - first.long()


def _negative(max_overlaps: torch.Tensor, neg_iou_thr: Threshold) -> torch.Tensor:
    """Step 2: the stock type checks, kept as they are (a float, a tuple, or nothing)."""
    if isinstance(neg_iou_thr, float):
        return (max_overlaps >= 0) & (max_overlaps < neg_iou_thr)
    if isinstance(neg_iou_thr, tuple):
        low, high = neg_iou_thr
        return (max_overlaps >= low) & (max_overlaps < high)
    return torch.zeros_like(max_overlaps, dtype=torch.bool)


def _match_low_quality(masked: torch.Tensor, gt_valid: torch.Tensor, assigned: torch.Tensor,
                       min_pos_iou: float, gt_max_assign_all: bool) -> torch.Tensor:
    """Step 4 without the per-GT loop: every claimed anchor takes its largest claiming GT id.

    Args:
        masked (Tensor): (B, G, A) IoU, -inf for padded GT rows and invalid anchors.
        gt_valid (Tensor): (B, G) bool.
        assigned (Tensor): (B, A) long result of steps 1-3.
        min_pos_iou (float): least best IoU of a claiming GT.
        gt_max_assign_all (bool): claim every tied anchor, or only the first.

    Returns:
        Tensor: (B, A) long.
    """
    num_imgs, num_gts, num_anchors = masked.shape
    if not gt_max_assign_all:
        gt_max_overlaps, gt_argmax_overlaps = masked.max(dim=2)
        claims = gt_valid & (gt_max_overlaps >= min_pos_iou)
        # One anchor per GT: scatter the claiming GT ids (max wins) instead of a (B, G, A) mask.
        gt_ids = torch.arange(1, num_gts + 1, device=masked.device).expand(num_imgs, num_gts)
        winner = torch.zeros_like(assigned).scatter_reduce_(
            1, gt_argmax_overlaps, torch.where(claims, gt_ids, 0), reduce='amax')
        return torch.where(winner > 0, winner, assigned)
    gt_max_overlaps = masked.amax(dim=2)
    claims = gt_valid & (gt_max_overlaps >= min_pos_iou)
    # -inf rows (no valid anchor) are not claims: min_pos_iou is finite.
    claimed = masked == gt_max_overlaps[..., None]
    claimed &= claims[..., None]
    if num_gts < 256 and cpu_speedups.use_cpu_speedups(masked):
        # 1-byte ids, multiplied in place into the (fresh) claim mask: no wider temporary
        # (a CPU speed-up; devices take int32: cpu_speedups).
        gt_ids = torch.arange(1, num_gts + 1, device=masked.device, dtype=torch.uint8)
        winner = claimed.view(torch.uint8).mul_(gt_ids[None, :, None]).amax(dim=1).long()
    else:
        gt_ids = torch.arange(1, num_gts + 1, device=masked.device, dtype=torch.int32)
        winner = torch.where(claimed, gt_ids[None, :, None], 0).amax(dim=1).long()
    return torch.where(winner > 0, winner, assigned)


class StaticMaxIoUAssigner:
    """The settings of a stock ``MaxIoUAssigner`` as plain Python values, applied batch-wise.

    Built from the head's stock assigner (so the config stays the stock one); rejects the
    options it cannot reproduce with fixed shapes. The values are read once, here, so that
    ``torch.compile`` never traces a ``ConfigDict``.

    Args:
        assigner (MaxIoUAssigner): The stock assigner of the head.
        owner (str): Config key of the assigner, named in error messages.

    Raises:
        ConfigError: for another assigner type, ``ignore_iof_thr > 0`` (ignored boxes) or an IoU
            calculator other than the default fp32 ``BboxOverlaps2D``.
    """

    def __init__(self, assigner, owner: str = 'model.train_cfg.assigner'):
        if type(assigner) is not MaxIoUAssigner:
            raise ConfigError(f'{owner}.type must be MaxIoUAssigner for the static HPU heads, '
                              f'got {type(assigner).__name__}; use the stock head for it')
        if assigner.ignore_iof_thr > 0:
            raise ConfigError(f'{owner}.ignore_iof_thr={assigner.ignore_iof_thr} (ignored boxes)'
                              ' is not supported by the static HPU heads; set it to -1 or use '
                              'the stock head')
        calculator = assigner.iou_calculator
        if type(calculator) is not BboxOverlaps2D or calculator.dtype is not None:
            raise ConfigError(f'{owner}.iou_calculator must be the default '
                              "dict(type='BboxOverlaps2D') for the static HPU heads; use the "
                              'stock head for other calculators')
        neg = assigner.neg_iou_thr
        self.pos_iou_thr = float(assigner.pos_iou_thr)
        self.neg_iou_thr = tuple(float(t) for t in neg) if isinstance(neg, tuple) else neg
        self.min_pos_iou = float(assigner.min_pos_iou)
        self.gt_max_assign_all = bool(assigner.gt_max_assign_all)
        self.match_low_quality = bool(assigner.match_low_quality)

    def assign(self, anchors: torch.Tensor, gt_bboxes: torch.Tensor, gt_valid: torch.Tensor,
               anchor_valid: Optional[torch.Tensor] = None
               ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Assign every anchor of every image.

        Args:
            anchors (Tensor): (A, 4) shared or (B, A, 4) per-image anchors.
            gt_bboxes (Tensor): (B, G, 4) padded GT boxes.
            gt_valid (Tensor): (B, G) bool.
            anchor_valid (Tensor | None): (B, A) or (A,) bool; None: all anchors.

        Returns:
            tuple[Tensor, Tensor]: assigned (B, A) long and max_overlaps (B, A), see
            :func:`max_iou_assign`.
        """
        overlaps = pairwise_iou(gt_bboxes, anchors)
        return max_iou_assign(overlaps, gt_valid, anchor_valid, self.pos_iou_thr,
                              self.neg_iou_thr, self.min_pos_iou, self.gt_max_assign_all,
                              self.match_low_quality)
