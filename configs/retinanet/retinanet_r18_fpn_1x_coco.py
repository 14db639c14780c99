# RetinaNet R-18-FPN 1x (mmdet 2.28 configs/retinanet/retinanet_r18_fpn_1x_coco.py; zoo: 31.7 AP)
# with static shapes: fixed 1344 x 1344 canvas, padded ground truth, HPURetinaNet/HPURetinaHead.
_base_ = './retinanet_r50_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        depth=18,
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet18')),
    neck=dict(in_channels=[64, 128, 256, 512]))
