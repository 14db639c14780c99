# The demo: YOLOv3 with a half-width MobileNetV2 backbone at 128 px on the embedded
# shapes dataset (circle / square / triangle), sized to train and evaluate in a few
# minutes on a 2-core CPU. Generate the data with
#   mmdet-hpu-demo-data --out data/demo
# (`make demo` does it). Another location: --cfg-options data_root=/path/to/demo/
_base_ = ['../_base_/default_runtime.py']

data_root = 'data/demo/'
classes = ('circle', 'square', 'triangle')
img_size = 128

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

img_norm_cfg = dict(mean=[0, 0, 0], std=[255., 255., 255.], to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', img_scale=(img_size, img_size), keep_ratio=True),
    dict(type='RandomFlip', flip_ratio=0.5),
    dict(type='Normalize', **img_norm_cfg),
    dict(type='Pad', size=(img_size, img_size)),
    # Fixed-size ground truth (+ gt_valid mask): static shapes in the HPU head.
    dict(type='HPUPadGT', max_num_gt=16),
    dict(type='DefaultFormatBundle'),
    dict(type='Collect', keys=['img', 'gt_bboxes', 'gt_labels', 'gt_valid'])
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='MultiScaleFlipAug',
        img_scale=(img_size, img_size),
        flip=False,
        transforms=[
            dict(type='Resize', keep_ratio=True),
            dict(type='RandomFlip'),
            dict(type='Normalize', **img_norm_cfg),
            dict(type='Pad', size=(img_size, img_size)),
            dict(type='DefaultFormatBundle'),
            dict(type='Collect', keys=['img'])
        ])
]
data = dict(
    samples_per_gpu=8,
    workers_per_gpu=2,
    # Keep the loader processes between epochs (saves ~0.5 s per epoch on 2 cores).
    train_dataloader=dict(persistent_workers=True),
    val_dataloader=dict(samples_per_gpu=16),
    test_dataloader=dict(samples_per_gpu=16),
    train=dict(
        type='CocoDataset',
        classes=classes,
        ann_file=data_root + 'annotations/instances_train.json',
        img_prefix=data_root + 'train/',
        pipeline=train_pipeline),
    val=dict(
        type='CocoDataset',
        classes=classes,
        ann_file=data_root + 'annotations/instances_val.json',
        img_prefix=data_root + 'val/',
        pipeline=test_pipeline),
    test=dict(
        type='CocoDataset',
        classes=classes,
        ann_file=data_root + 'annotations/instances_val.json',
        img_prefix=data_root + 'val/',
        pipeline=test_pipeline))

optimizer = dict(type='AdamW', lr=0.003, weight_decay=0.0005)
optimizer_config = dict(grad_clip=dict(max_norm=35, norm_type=2))
lr_config = dict(
    policy='CosineAnnealing', min_lr_ratio=0.02, warmup='linear', warmup_iters=50,
    warmup_ratio=0.1)
# epoch_sleep=0: skip mmcv's 2 s pause between epochs (48 s of a 24-epoch demo).
runner = dict(type='HPUEpochBasedRunner', max_epochs=32, epoch_sleep=0)
evaluation = dict(interval=32, metric=['bbox'])
checkpoint_config = dict(interval=32)
log_config = dict(interval=25, hooks=[dict(type='TextLoggerHook')])
