# RetinaNet R-50-FPN 1x (mmdet 2.28 configs/retinanet/retinanet_r50_fpn_1x_coco.py; zoo: 36.5 AP)
# with static shapes: fixed 1344 x 1344 canvas, padded ground truth, HPURetinaNet/HPURetinaHead.
_base_ = [
    '../_base_/models/retinanet_r50_fpn.py',
    '../_base_/datasets/coco_detection_static.py',
    '../_base_/schedules/schedule_1x.py', '../_base_/default_runtime.py'
]
# optimizer
optimizer = dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001)
custom_hooks = [dict(type='NumClassCheckHook')]
# base_batch_size = (8 GPUs) x (2 samples per GPU), as upstream.
auto_scale_lr = dict(base_batch_size=16)
