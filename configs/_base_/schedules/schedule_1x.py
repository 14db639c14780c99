# mmdet's 1x schedule (12 epochs, steps at 8 and 11), as shipped with mmdet 2.28.
# mmdet-hpu-train upgrades the stock runner and optimizer hook to their HPU versions.
optimizer = dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001)
optimizer_config = dict(grad_clip=None)
lr_config = dict(
    policy='step',
    warmup='linear',
    warmup_iters=500,
    warmup_ratio=0.001,
    step=[8, 11])
runner = dict(type='EpochBasedRunner', max_epochs=12)
