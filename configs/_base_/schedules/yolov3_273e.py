# The upstream YOLOv3 COCO schedule: 8 devices x 8 images, 273 epochs.
optimizer = dict(type='SGD', lr=0.001, momentum=0.9, weight_decay=0.0005)
# A stock OptimizerHook config: the HPU runner upgrades it to HPUOptimizerHook.
optimizer_config = dict(grad_clip=dict(max_norm=35, norm_type=2))
lr_config = dict(
    policy='step',
    warmup='linear',
    warmup_iters=2000,
    warmup_ratio=0.1,
    step=[218, 246])
runner = dict(type='HPUEpochBasedRunner', max_epochs=273)
evaluation = dict(interval=1, metric=['bbox'])
