# The SSD demo: HPUSingleStageDetector + HPUSSDHead on a half-width MobileNetV2 + 3-level FPN at
# 128 px on the embedded shapes dataset (`make demo MODEL=ssd`). SSD anchors with min / max
# sizes 8-16, 16-32, 32-64 px (plus ratios 1:2 and 2:1) at strides 8/16/32 for the 7-43 px
# shapes; hard negative mining at 3:1 as SSD300.
_base_ = ['./_base_/dense_mobilenetv2-half_fpn.py']

model = dict(
    type='HPUSingleStageDetector',
    bbox_head=dict(
        type='HPUSSDHead',
        in_channels=(48, 48, 48),
        anchor_generator=dict(
            type='SSDAnchorGenerator',
            scale_major=False,
            strides=[8, 16, 32],
            ratios=[[2], [2], [2]],
            min_sizes=[8, 16, 32],
            max_sizes=[16, 32, 64]),
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[.0, .0, .0, .0],
            target_stds=[0.1, 0.1, 0.2, 0.2])),
    train_cfg=dict(
        assigner=dict(
            type='MaxIoUAssigner',
            pos_iou_thr=0.5,
            neg_iou_thr=0.5,
            min_pos_iou=0.,
            ignore_iof_thr=-1,
            gt_max_assign_all=False),
        smoothl1_beta=1.,
        allowed_border=-1,
        pos_weight=-1,
        neg_pos_ratio=3,
        debug=False),
    # SSD300's recipe: score threshold 0.02, NMS at IoU 0.45.
    test_cfg=dict(score_thr=0.02, nms=dict(iou_threshold=0.45)))
