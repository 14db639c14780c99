# The RetinaNet demo: HPURetinaNet + HPURetinaHead on a half-width MobileNetV2 + 3-level FPN at
# 128 px on the embedded shapes dataset (`make demo MODEL=retinanet`). Anchors 8-50 px (one
# square anchor per scale, 3 scales per octave) at strides 8/16/32 for the 7-43 px shapes.
_base_ = ['./_base_/dense_mobilenetv2-half_fpn.py']

model = dict(
    type='HPURetinaNet',
    bbox_head=dict(
        type='HPURetinaHead',
        stacked_convs=2,
        feat_channels=48,
        anchor_generator=dict(
            type='AnchorGenerator',
            octave_base_scale=1,
            scales_per_octave=3,
            ratios=[1.0],
            strides=[8, 16, 32]),
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[.0, .0, .0, .0],
            target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(
            type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
    train_cfg=dict(
        assigner=dict(
            type='MaxIoUAssigner',
            pos_iou_thr=0.5,
            neg_iou_thr=0.4,
            min_pos_iou=0,
            ignore_iof_thr=-1),
        allowed_border=-1,
        pos_weight=-1,
        debug=False))
