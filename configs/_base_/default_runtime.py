# Runtime defaults shared by every mmdet-hpu config (mmdet 2.x conventions).
# Importing the plugin registers HPUYOLOV3, HPUEpochBasedRunner, HPUOptimizerHook, ...
custom_imports = dict(imports=['mmdet_hpu'], allow_failed_imports=False)

checkpoint_config = dict(interval=1)
log_config = dict(interval=50, hooks=[dict(type='TextLoggerHook')])
# backend=None: chosen by device at init (hccl on HPU, nccl on CUDA, gloo on CPU).
dist_params = dict(backend=None)
log_level = 'INFO'
load_from = None
resume_from = None
workflow = [('train', 1)]
opencv_num_threads = 0
mp_start_method = 'fork'
auto_scale_lr = dict(enable=False, base_batch_size=64)
