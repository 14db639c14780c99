"""Detectors registered in mmdet's ``DETECTORS``."""
from .hpu_yolo import HPUYOLOV3

__all__ = ['HPUYOLOV3']
