"""This project's COCO configs of the static detectors, scaled down, and their compiled-graph count.

Each model keeps its config's detector type, head type, losses, assigner and test settings;
only the backbone, neck and head widths (and SSD's VGG, replaced by a narrow ResNet) shrink,
so that a CPU traces the whole training step in seconds.
"""
import os.path as osp
from typing import Callable, Dict, List, Set, Tuple

import mmcv
import numpy as np
import torch
from mmdet.models import build_detector

import mmdet_hpu  # noqa: F401  (registers the HPU detectors and heads)
from mmdet_hpu.models.utils import bucket_gt_list, gt_bucket

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = {
    'retinanet': 'configs/retinanet/retinanet_r50_fpn_1x_coco.py',
    'ssd': 'configs/ssd/ssd300_coco.py',
    'fcos': 'configs/fcos/fcos_r50_caffe_fpn_gn-head_1x_coco.py',
    'fcos_giou': 'configs/fcos/'
                 'fcos_center-normbbox-centeronreg-giou_r50_caffe_fpn_gn-head_1x_coco.py',
    'atss': 'configs/atss/atss_r50_fpn_1x_coco.py',
}
NUM_CLASSES = 3
MAX_NUM_GT = 128
#: Square input size of each tiny detector (every level of its head has a feature map).
IMG_SIZES = {'retinanet': 128, 'ssd': 64, 'fcos': 64, 'fcos_giou': 64, 'atss': 64}


def _narrow_resnet(**overrides) -> Dict:
    backbone = dict(type='ResNet', depth=18, base_channels=8, num_stages=4,
                    out_indices=(0, 1, 2, 3), frozen_stages=-1, norm_eval=False, style='pytorch',
                    norm_cfg=dict(type='BN', requires_grad=True), init_cfg=None)
    backbone.update(overrides)
    return backbone


def _shrink_retinanet(model):
    # Three narrow stages (strides 4-16; the FPN adds 32-128).
    model.backbone = _narrow_resnet(num_stages=3, out_indices=(0, 1, 2), strides=(1, 2, 2),
                                    dilations=(1, 1, 1))
    model.neck.update(in_channels=[8, 16, 32], out_channels=8)
    model.bbox_head.update(in_channels=8, feat_channels=8, stacked_convs=1)


def _shrink_ssd(model):
    # SSDVGG has no width option: a narrow ResNet's strides 8-32 feed three SSD levels.
    model.backbone = _narrow_resnet(out_indices=(1, 2, 3))
    model.neck = None
    model.bbox_head.update(in_channels=(16, 32, 64))
    model.bbox_head.anchor_generator = dict(
        type='SSDAnchorGenerator', scale_major=False, input_size=IMG_SIZES['ssd'],
        min_sizes=[10, 24, 40], max_sizes=[24, 40, 64], strides=[8, 16, 32],
        ratios=[[2], [2, 3], [2]])


def _shrink_fcos_atss(model):
    model.backbone.update(depth=18, base_channels=8, init_cfg=None)
    model.neck.update(in_channels=[8, 16, 32, 64], out_channels=16)
    model.bbox_head.update(in_channels=16, feat_channels=16, stacked_convs=1)
    model.bbox_head.norm_cfg = dict(type='GN', num_groups=4, requires_grad=True)


_SHRINK: Dict[str, Callable] = dict(retinanet=_shrink_retinanet, ssd=_shrink_ssd,
                                    fcos=_shrink_fcos_atss, fcos_giou=_shrink_fcos_atss,
                                    atss=_shrink_fcos_atss)


def tiny_model_cfg(name: str) -> mmcv.ConfigDict:
    """The model of ``CONFIGS[name]``, scaled down, ``NUM_CLASSES`` classes, nothing to download."""
    model = mmcv.Config.fromfile(config_path(name)).model
    model.pop('pretrained', None)
    _SHRINK[name](model)
    model.bbox_head.num_classes = NUM_CLASSES
    return model


def config_path(name: str) -> str:
    """Absolute path of ``CONFIGS[name]``."""
    return osp.join(REPO, CONFIGS[name])


def tiny_config(name: str) -> mmcv.Config:
    """The whole config of ``CONFIGS[name]`` (pipelines, optimizer, runner) with the tiny model."""
    cfg = mmcv.Config.fromfile(config_path(name))
    cfg.model = tiny_model_cfg(name)
    return cfg


def tiny_detector(name: str, seed: int = 0):
    """The scaled-down static detector of ``CONFIGS[name]``, in training mode."""
    torch.manual_seed(seed)
    model = build_detector(tiny_model_cfg(name))
    model.train()
    return model


def random_batch(img_size: int, counts: List[int], seed: int) -> Tuple:
    """Images, fresh metas and bucket-padded GT (``bucket_gt_list``) of one batch."""
    gen = torch.Generator().manual_seed(seed)
    img = torch.randn(len(counts), 3, img_size, img_size, generator=gen)
    shape = (img_size, img_size, 3)
    metas = [dict(img_shape=shape, pad_shape=shape, ori_shape=shape, flip=False,
                  scale_factor=np.ones(4, dtype=np.float32)) for _ in counts]
    boxes, labels = [], []
    for n in counts:
        wh = torch.rand(n, 2, generator=gen) * (img_size / 2) + 2
        xy = torch.rand(n, 2, generator=gen) * (img_size - wh)
        boxes.append(torch.cat([xy, xy + wh], dim=1))
        labels.append(torch.randint(0, NUM_CLASSES, (n, ), generator=gen))
    return (img, metas) + tuple(bucket_gt_list(boxes, labels, MAX_NUM_GT))


def box_counts(num_batches: int, seed: int = 0) -> List[List[int]]:
    """Per-batch box counts of 2 images, 0-128 each; the first five reach every bucket and the
    empty image."""
    gen = torch.Generator().manual_seed(seed)
    forced = [[0, 0], [0, 5], [9, 3], [20, 1], [128, 40]]
    return [forced[i] if i < len(forced) else torch.randint(0, MAX_NUM_GT + 1, (2, ),
                                                             generator=gen).tolist()
            for i in range(num_batches)]


def count_training_graphs(model, img_size: int, num_batches: int = 40
                          ) -> Tuple[int, Set[int]]:
    """Graphs compiled for the whole training step over ``num_batches`` varied batches.

    The step is ``forward_train`` + ``_parse_losses`` (what ``train_step`` runs) under
    ``torch.compile(dynamic=False, fullgraph=True)`` with a backend that only counts, followed
    by ``backward`` outside it; each batch has fresh metas, as from a loader.

    Returns:
        tuple[int, set[int]]: Graphs compiled and the GT buckets (padded rows) the batches used.
    """
    torch._dynamo.reset()
    graphs = []

    def counting_backend(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    def step(img, img_metas, boxes, labels, valid):
        return model._parse_losses(model.forward_train(img, img_metas, boxes, labels,
                                                       gt_valid=valid))

    compiled = torch.compile(step, dynamic=False, fullgraph=True, backend=counting_backend)
    buckets = set()
    try:
        for i, counts in enumerate(box_counts(num_batches)):
            img, metas, boxes, labels, valid = random_batch(img_size, counts, seed=i)
            assert boxes.shape[1] == gt_bucket(max(counts), MAX_NUM_GT)
            buckets.add(boxes.shape[1])
            loss, _ = compiled(img, metas, boxes, labels, valid)
            loss.backward()
            assert torch.isfinite(loss), (i, counts)
    finally:
        torch._dynamo.reset()
    return len(graphs), buckets
