# Habana's 8-card Gaudi recipe for YOLOv3-320 (Model-References 1.7-1.11, fp32, lazy mode):
# 8 cards x 16 images, lr 0.0015, warm-up 1000 iterations, steps [228, 256], log every 96.
# Launch (one process per card):
#   torchrun --nproc_per_node=8 -m mmdet_hpu.cli.train \
#     configs/yolov3/gaudi/yolov3_d53_320_273e_coco_8xhpu-b16-lazy.py \
#     --launcher pytorch --device hpu --lazy --eval-batch-size 64 --deterministic
_base_ = '../yolov3_d53_320_273e_coco.py'
data = dict(samples_per_gpu=16, val_dataloader=dict(samples_per_gpu=64))
optimizer = dict(lr=0.0015)
lr_config = dict(warmup_iters=1000, step=[228, 256])
checkpoint_config = dict(interval=30)
log_config = dict(interval=96)
