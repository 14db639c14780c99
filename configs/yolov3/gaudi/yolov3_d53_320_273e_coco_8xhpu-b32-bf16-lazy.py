# Habana's 8-card Gaudi recipe for YOLOv3-320 with bf16 autocast (lazy mode):
# 8 cards x 32 images, lr 0.002, warm-up 400 iterations, steps [228, 256], log every 48.
# Launch (one process per card):
#   torchrun --nproc_per_node=8 -m mmdet_hpu.cli.train \
#     configs/yolov3/gaudi/yolov3_d53_320_273e_coco_8xhpu-b32-bf16-lazy.py \
#     --launcher pytorch --device hpu --lazy --autocast --eval-batch-size 64 --deterministic
_base_ = '../yolov3_d53_320_273e_coco.py'
data = dict(samples_per_gpu=32, val_dataloader=dict(samples_per_gpu=64))
optimizer = dict(lr=0.002)
lr_config = dict(warmup_iters=400, step=[228, 256])
checkpoint_config = dict(interval=30)
log_config = dict(interval=48)
