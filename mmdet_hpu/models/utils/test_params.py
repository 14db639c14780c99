"""A dense head's ``test_cfg`` read into plain Python values, outside any traced region.

Dynamo on torch 2.6 cannot trace mmcv's ``ConfigDict.get`` (``KeyError`` from its
``mapping_get`` polyfill), and a compiled graph should depend on constants anyway.
"""
from typing import NamedTuple, Tuple


class StaticTestParams(NamedTuple):
    """A YOLOv3 test config as plain Python values."""
    conf_thr: float
    score_thr: float
    nms_pre: int
    iou_threshold: float
    class_agnostic: bool
    max_per_img: int


def parse_test_cfg(cfg) -> StaticTestParams:
    """Read a YOLOv3 ``test_cfg`` into :class:`StaticTestParams` (host side, never traced).

    Defaults: ``conf_thr`` -1 (off), ``nms_pre`` 1000, ``max_per_img`` -1 (all).

    Raises:
        NotImplementedError: For NMS types other than ``'nms'``.
        ValueError: If ``nms`` has no IoU threshold.
    """
    cfg = dict(cfg)
    iou_threshold, class_agnostic = _parse_nms_cfg(dict(cfg['nms']))
    return StaticTestParams(
        conf_thr=float(cfg.get('conf_thr', -1)), score_thr=float(cfg['score_thr']),
        nms_pre=int(cfg.get('nms_pre', 1000)), iou_threshold=iou_threshold,
        class_agnostic=class_agnostic, max_per_img=int(cfg.get('max_per_img', -1)))


def _parse_nms_cfg(nms_cfg: dict) -> Tuple[float, bool]:
    """IoU threshold and class-agnosticism of an mmcv ``nms`` config (a plain dict).

    Raises:
        NotImplementedError: For NMS types other than ``'nms'`` (soft-NMS etc.).
    """
    nms_type = nms_cfg.get('type', 'nms')
    if nms_type != 'nms':
        raise NotImplementedError(
            f'static post-processing supports nms type "nms" only, got {nms_type}')
    iou_threshold = nms_cfg.get('iou_threshold', nms_cfg.get('iou_thr'))
    if iou_threshold is None:
        raise ValueError('test_cfg.nms needs iou_threshold')
    return float(iou_threshold), bool(nms_cfg.get('class_agnostic', False))
