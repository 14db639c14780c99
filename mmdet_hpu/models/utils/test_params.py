"""A static head's ``test_cfg`` read into plain Python values, outside any traced region.

Dynamo on torch 2.6 cannot trace mmcv's ``ConfigDict.get`` (``KeyError`` from its
``mapping_get`` polyfill), and a compiled graph should depend on constants anyway. One NMS
parser (:func:`parse_nms_cfg`) serves YOLOv3 and the dense heads.
"""
from typing import NamedTuple, Tuple

from mmdet_hpu.errors import ConfigError


class StaticTestParams(NamedTuple):
    """A YOLOv3 test config as plain Python values."""
    conf_thr: float
    score_thr: float
    nms_pre: int
    iou_threshold: float
    class_agnostic: bool
    max_per_img: int


class NMSParams(NamedTuple):
    """A dense head's ``test_cfg`` as plain Python values."""
    score_thr: float
    nms_pre: int
    iou_threshold: float
    class_agnostic: bool
    max_per_img: int


def parse_nms_cfg(nms_cfg, head_name: str) -> Tuple[float, bool, int]:
    """IoU threshold, class-agnosticism and ``max_num`` of an mmcv ``nms`` config.

    Raises:
        ConfigError: For NMS types other than ``'nms'`` (soft-NMS etc.) or no IoU threshold.
    """
    nms_cfg = dict(nms_cfg)
    nms_type = nms_cfg.get('type', 'nms')
    if nms_type != 'nms':
        raise ConfigError(f"{head_name} supports test_cfg.nms.type='nms' only (static "
                          f'inference), got {nms_type!r}; use the stock head for it')
    iou_threshold = nms_cfg.get('iou_threshold', nms_cfg.get('iou_thr'))
    if iou_threshold is None:
        raise ConfigError(f'{head_name}: test_cfg.nms needs iou_threshold')
    return (float(iou_threshold), bool(nms_cfg.get('class_agnostic', False)),
            int(nms_cfg.get('max_num', -1)))


def _max_per_img(cfg: dict, max_num: int) -> int:
    """``max_per_img`` combined with ``nms.max_num`` as stock applies both (the smaller wins)."""
    max_per_img = int(cfg.get('max_per_img', -1))
    if max_num > 0:
        max_per_img = max_num if max_per_img <= 0 else min(max_num, max_per_img)
    return max_per_img


def parse_test_cfg(cfg, head_name: str) -> NMSParams:
    """Read a dense head's ``score_thr``, ``nms_pre`` (default -1: all pairs), ``nms`` and
    ``max_per_img``."""
    cfg = dict(cfg)
    iou_threshold, class_agnostic, max_num = parse_nms_cfg(cfg['nms'], head_name)
    return NMSParams(float(cfg['score_thr']), int(cfg.get('nms_pre', -1)), iou_threshold,
                     class_agnostic, _max_per_img(cfg, max_num))


def parse_yolo_test_cfg(cfg, head_name: str = 'HPUYOLOV3Head') -> StaticTestParams:
    """Read a YOLOv3 ``test_cfg`` into :class:`StaticTestParams` (host side, never traced).

    Defaults: ``conf_thr`` -1 (off), ``nms_pre`` 1000, ``max_per_img`` -1 (all).

    Raises:
        ConfigError: For NMS types other than ``'nms'`` or no IoU threshold.
    """
    cfg = dict(cfg)
    iou_threshold, class_agnostic, max_num = parse_nms_cfg(cfg['nms'], head_name)
    return StaticTestParams(
        conf_thr=float(cfg.get('conf_thr', -1)), score_thr=float(cfg['score_thr']),
        nms_pre=int(cfg.get('nms_pre', 1000)), iou_threshold=iou_threshold,
        class_agnostic=class_agnostic, max_per_img=_max_per_img(cfg, max_num))
