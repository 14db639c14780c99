"""Detectors registered in mmdet's ``DETECTORS``."""
from .hpu_yolo import HPUYOLOV3
from .static_losses import HPURetinaNet, HPUSingleStageDetector

__all__ = ['HPUYOLOV3', 'HPURetinaNet', 'HPUSingleStageDetector']
