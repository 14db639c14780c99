# The FCOS demo: HPUSingleStageDetector + HPUFCOSHead on a half-width MobileNetV2 + 3-level FPN
# at 128 px on the embedded shapes dataset (`make demo MODEL=fcos`). Points at strides 8/16/32
# regress the 7-43 px shapes in ranges (0, 16], (16, 32], (32, inf) px.
_base_ = ['./_base_/dense_mobilenetv2-half_fpn.py']

model = dict(
    type='HPUSingleStageDetector',
    bbox_head=dict(
        type='HPUFCOSHead',
        stacked_convs=2,
        feat_channels=48,
        # 48 channels: 16 GroupNorm groups (the stock default, 32, does not divide 48).
        norm_cfg=dict(type='GN', num_groups=16, requires_grad=True),
        strides=[8, 16, 32],
        regress_ranges=((-1, 16), (16, 32), (32, 1e8)),
        loss_cls=dict(
            type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='IoULoss', loss_weight=1.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    train_cfg=dict(allowed_border=-1, pos_weight=-1, debug=False))
