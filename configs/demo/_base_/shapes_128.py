# What every demo config shares: the embedded shapes dataset (circle / square / triangle,
# 7-43 px objects on 128 px images; `mmdet-hpu-demo-data --out data/demo`, which `make demo`
# runs), a fixed 128 x 128 canvas, ground truth padded to 16 rows (HPUPadGT, + gt_valid), and a
# 32-epoch AdamW + cosine schedule sized for a few minutes on a 2-core CPU.
# Another data location: --cfg-options data_root=/path/to/demo/
_base_ = ['../../_base_/default_runtime.py']

data_root = 'data/demo/'
classes = ('circle', 'square', 'triangle')
img_size = 128

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
