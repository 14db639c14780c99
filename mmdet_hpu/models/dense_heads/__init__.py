"""Dense heads registered in mmdet's ``HEADS``."""
from .hpu_atss_head import HPUATSSHead
from .hpu_fcos_head import HPUFCOSHead
from .hpu_retina_head import HPURetinaHead
from .hpu_ssd_head import HPUSSDHead
from .hpu_yolo_head import HPUYOLOV3Head

__all__ = ['HPUYOLOV3Head', 'HPURetinaHead', 'HPUSSDHead', 'HPUFCOSHead', 'HPUATSSHead']
