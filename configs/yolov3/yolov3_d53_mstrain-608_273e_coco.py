# YOLOv3 Darknet-53, multi-scale training [320, 608], 608 test: upstream mmdet recipe
# (box AP 33.7 in the mmdet 2.x model zoo) with static shapes (fixed 608 x 608 canvas).
_base_ = [
    '../_base_/models/yolov3_d53.py',
    '../_base_/datasets/coco_yolov3.py',
    '../_base_/schedules/yolov3_273e.py',
    '../_base_/default_runtime.py',
]
