"""Tiny YOLOv3 detectors, synthetic batches and runners for the runner tests.

The YOLOv3 harness lives in :mod:`mmdet_hpu.analysis.host_read_loop` (shared with
``tools/count_host_reads.py``); the toy model and log readers below are test-only.
"""
import logging
from typing import Dict, List

import torch
from mmcv.runner import build_runner

import mmdet_hpu  # noqa: F401  (registers the HPU modules)
from mmdet_hpu.analysis.host_read_loop import (  # noqa: F401  (re-exported for the tests)
    IMG_SIZE,
    NUM_CLASSES,
    PerIterHostReads,
    build_test_runner,
    measure_host_reads,
    register_default_hooks,
    synthetic_batches,
    tiny_yolov3,
    tiny_yolov3_cfg,
)


class ToyModel(torch.nn.Module):
    """A linear model with the ``train_step`` contract of mmdet detectors (fast tests).

    Args:
        on_backward (callable, optional): Called when the loss gradient is computed.
        unused_param (bool): Add a parameter that is not in the loss graph.
    """

    def __init__(self, on_backward=None, unused_param: bool = False) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)
        self.unused = torch.nn.Linear(1, 1) if unused_param else None
        self.on_backward = on_backward

    def train_step(self, data, optimizer=None) -> Dict:
        loss = self.linear(data).pow(2).mean()
        if self.on_backward is not None:
            loss.register_hook(lambda grad: self.on_backward())
        return dict(loss=loss, log_vars={'loss': loss.detach()}, num_samples=data.shape[0])


def toy_batches(num: int, batch_size: int = 4) -> List[torch.Tensor]:
    """``num`` random (batch_size, 2) batches."""
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(batch_size, 2, generator=gen) for _ in range(num)]


def toy_runner(work_dir: str, runner_type: str = 'HPUEpochBasedRunner', model=None,
               logger: logging.Logger = None, **runner_kwargs):
    """A runner around a :class:`ToyModel` (unwrapped) with SGD, no hooks yet."""
    model = model or ToyModel()
    cfg = dict(type=runner_type, **runner_kwargs)
    if 'max_iters' not in runner_kwargs:
        cfg.setdefault('max_epochs', 1)
    return build_runner(cfg, default_args=dict(
        model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        work_dir=work_dir, logger=logger or logging.getLogger('mmdet_hpu.tests.runner')))


def json_records(work_dir: str, mode: str = None) -> List[Dict]:
    """Records of the (single) ``*.log.json`` in ``work_dir``, optionally of one mode."""
    import glob
    import json
    (path,) = glob.glob(f'{work_dir}/*.log.json')
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    return [r for r in records if mode is None or r.get('mode') == mode]


def demo_val_dataset(root: str, num_val: int) -> Dict:
    """A ``num_val``-image IMG_SIZE px COCO-style val split (demo generator) under ``root`` and
    its test-mode ``CocoDataset`` config."""
    from mmdet_hpu.datasets.demo_data import CLASSES, generate_demo_dataset

    paths = generate_demo_dataset(root, num_train=1, num_val=num_val, img_size=IMG_SIZE, seed=0)
    norm = dict(mean=[0, 0, 0], std=[255., 255., 255.], to_rgb=True)
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='MultiScaleFlipAug', img_scale=(IMG_SIZE, IMG_SIZE), flip=False, transforms=[
            dict(type='Resize', keep_ratio=True), dict(type='RandomFlip'),
            dict(type='Normalize', **norm), dict(type='Pad', size_divisor=32),
            dict(type='ImageToTensor', keys=['img']), dict(type='Collect', keys=['img'])])]
    return dict(type='CocoDataset', classes=CLASSES, ann_file=paths['val_ann'],
                img_prefix=paths['val_img_prefix'], pipeline=pipeline)
