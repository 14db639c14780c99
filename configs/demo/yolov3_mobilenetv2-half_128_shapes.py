# The demo: YOLOv3 with a half-width MobileNetV2 backbone at 128 px on the embedded
# shapes dataset (circle / square / triangle), sized to train and evaluate in a few
# minutes on a 2-core CPU. Generate the data with
#   mmdet-hpu-demo-data --out data/demo
# (`make demo` does it). Another location: --cfg-options data_root=/path/to/demo/
# Data, pipelines and schedule: ./_base_/shapes_128.py (shared by every demo config).
_base_ = ['./_base_/shapes_128.py']

classes = ('circle', 'square', 'triangle')

model = dict(
    type='HPUYOLOV3',
    backbone=dict(
        type='MobileNetV2',
        widen_factor=0.5,
        out_indices=(2, 4, 6),
        act_cfg=dict(type='LeakyReLU', negative_slope=0.1)),
    neck=dict(
        type='YOLOV3Neck', num_scales=3, in_channels=[160, 48, 16], out_channels=[48, 48, 48]),
    bbox_head=dict(
        type='HPUYOLOV3Head',
        num_classes=len(classes),
        in_channels=[48, 48, 48],
        out_channels=[48, 48, 48],
        anchor_generator=dict(
            type='YOLOAnchorGenerator',
            # Shapes are 7-43 px and roughly square.
            base_sizes=[[(30, 30), (36, 36), (44, 44)],
                        [(17, 17), (21, 21), (25, 25)],
                        [(8, 8), (11, 11), (14, 14)]],
            strides=[32, 16, 8]),
        bbox_coder=dict(type='YOLOBBoxCoder'),
        featmap_strides=[32, 16, 8],
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0,
                      reduction='sum'),
        loss_conf=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0,
                       reduction='sum'),
        loss_xy=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=2.0,
                     reduction='sum'),
        loss_wh=dict(type='MSELoss', loss_weight=2.0, reduction='sum')),
    train_cfg=dict(
        assigner=dict(type='GridAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0)),
    test_cfg=dict(
        nms_pre=1000,
        min_bbox_size=0,
        score_thr=0.05,
        conf_thr=0.005,
        nms=dict(type='nms', iou_threshold=0.45),
        max_per_img=100))

# MobileNetV2's last stage is not used by out_indices=(2, 4, 6): DDP must be told.
find_unused_parameters = True
