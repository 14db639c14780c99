# The ATSS demo: HPUSingleStageDetector + HPUATSSHead on a half-width MobileNetV2 + 3-level FPN
# at 128 px on the embedded shapes dataset (`make demo MODEL=atss`). One square anchor per
# point, 12 / 24 / 48 px at strides 8/16/32, for the 7-43 px shapes; top-9 candidates per level.
_base_ = ['./_base_/dense_mobilenetv2-half_fpn.py']

model = dict(
    type='HPUSingleStageDetector',
    bbox_head=dict(
        type='HPUATSSHead',
        stacked_convs=2,
        feat_channels=48,
        # 48 channels: 16 GroupNorm groups (the stock default, 32, does not divide 48).
        norm_cfg=dict(type='GN', num_groups=16, requires_grad=True),
        anchor_generator=dict(
            type='AnchorGenerator',
            ratios=[1.0],
            octave_base_scale=1.5,
            scales_per_octave=1,
            strides=[8, 16, 32]),
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[.0, .0, .0, .0],
            target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(
            type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    train_cfg=dict(
        assigner=dict(type='ATSSAssigner', topk=9),
        allowed_border=-1,
        pos_weight=-1,
        debug=False),
    # ATSS's COCO recipe: NMS at IoU 0.6 (the others of the base test_cfg as RetinaNet).
    test_cfg=dict(nms=dict(iou_threshold=0.6)))
