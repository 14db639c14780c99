"""Whether stock would drop any anchor, decided from host metadata (shapes) only."""
from typing import Sequence, Tuple


def all_anchors_valid(featmap_sizes: Sequence[Tuple[int, int]], strides, img_metas,
                      allowed_border: float) -> bool:
    """True when stock's ``inside_flags`` keep every anchor of every image.

    With ``allowed_border < 0`` they are the prior generator's ``valid_flags``: anchors of
    feature-map rows / columns beyond ``ceil(pad size / stride)`` are invalid. Usually (a fixed
    canvas) every anchor is valid and the assigner can skip the anchor mask. No tensor is read.

    Args:
        featmap_sizes (Sequence[tuple[int, int]]): per level, (h, w).
        strides (Sequence): per level, the prior generator's (stride_w, stride_h).
        img_metas (list[dict]): ``pad_shape`` of each image.
        allowed_border (float): ``train_cfg.allowed_border``; >= 0 is decided per anchor.

    Returns:
        bool: every anchor is valid.
    """
    if allowed_border >= 0:
        return False
    for meta in img_metas:
        pad_h, pad_w = (int(v) for v in meta['pad_shape'][:2])
        for (feat_h, feat_w), (stride_w, stride_h) in zip(featmap_sizes, strides):
            if -(-pad_h // stride_h) < feat_h or -(-pad_w // stride_w) < feat_w:
                return False
    return True
