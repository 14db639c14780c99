# What the RetinaNet / SSD / FCOS / ATSS demo configs share (on top of the shapes data and
# schedule). Backbone + neck: a half-width MobileNetV2 (as the YOLOv3 demo) whose
# stride-8/16/32 outputs (16, 48, 160 channels) feed a 3-level, 48-channel FPN.
# Shapes are 7-43 px on a 128 px canvas: strides 8, 16, 32 cover them.
_base_ = ['./shapes_128.py']

model = dict(
    backbone=dict(
        type='MobileNetV2',
        widen_factor=0.5,
        out_indices=(2, 4, 6),
        act_cfg=dict(type='LeakyReLU', negative_slope=0.1)),
    neck=dict(
        type='FPN',
        in_channels=[16, 48, 160],
        out_channels=48,
        num_outs=3),
    # What the four heads share; each demo config sets the head type, anchors / points and
    # losses, and overrides test_cfg where its COCO recipe differs (SSD, ATSS).
    bbox_head=dict(num_classes=3, max_num_gt=16, in_channels=48),
    test_cfg=dict(
        nms_pre=1000,
        min_bbox_size=0,
        score_thr=0.05,
        nms=dict(type='nms', iou_threshold=0.5),
        max_per_img=100))

# MobileNetV2's last stage is not used by out_indices=(2, 4, 6): DDP must be told.
find_unused_parameters = True

# 24 epochs x 50 iterations (batch 8) instead of the YOLOv3 demo's 32: these heads' CPU steps
# cost more than YOLOv3's; 24 epochs give a clearly non-zero mAP in ~5 min on a quiet 2-core CPU.
runner = dict(max_epochs=24)
evaluation = dict(interval=24)
checkpoint_config = dict(interval=24)
