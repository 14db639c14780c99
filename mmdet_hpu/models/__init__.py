"""mmdet_hpu.models: importing it registers the HPU heads and detectors in mmdet."""
from . import dense_heads, detectors  # noqa: F401
from .dense_heads import HPUATSSHead, HPUFCOSHead, HPUYOLOV3Head
from .detectors import HPUYOLOV3

__all__ = ['HPUYOLOV3Head', 'HPUYOLOV3', 'HPUFCOSHead', 'HPUATSSHead']
