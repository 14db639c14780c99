"""Measure host reads per training iteration of a tiny YOLOv3, ours vs stock mmdet.

The harness behind ``tools/count_host_reads.py`` and the runner tests, so that the numbers
quoted in the README are those the tests assert: a 0.26M-parameter YOLOv3 (MobileNetV2 x0.25,
64 px, 3 classes), synthetic batches, a runner around a CPU ``MMDataParallel`` and a
:class:`mmdet_hpu.runner.host_reads.HostReadCounter` read per iteration.
"""
import logging
from typing import Dict, List

import mmcv
import torch
from mmcv.parallel import MMDataParallel
from mmcv.runner import RUNNERS, Hook, build_runner
from mmdet.models import build_detector

from mmdet_hpu.runner.host_reads import HostReadCounter

IMG_SIZE = 64
NUM_CLASSES = 3
_LOSS = dict(type='CrossEntropyLoss', use_sigmoid=True, reduction='sum')


def tiny_yolov3_cfg(hpu: bool = True) -> dict:
    """Config of a 0.26M-parameter YOLOv3 (MobileNetV2 x0.25) for 64 px, 3 classes."""
    prefix = 'HPU' if hpu else ''
    return dict(
        type=f'{prefix}YOLOV3',
        backbone=dict(type='MobileNetV2', widen_factor=0.25, out_indices=(2, 4, 6),
                      act_cfg=dict(type='LeakyReLU', negative_slope=0.1)),
        neck=dict(type='YOLOV3Neck', num_scales=3, in_channels=[80, 24, 8],
                  out_channels=[16, 8, 8]),
        bbox_head=dict(
            type=f'{prefix}YOLOV3Head', num_classes=NUM_CLASSES, in_channels=[16, 8, 8],
            out_channels=[16, 8, 8],
            anchor_generator=dict(
                type='YOLOAnchorGenerator', strides=[32, 16, 8],
                base_sizes=[[(40, 40), (52, 44), (60, 60)], [(20, 24), (28, 20), (32, 32)],
                            [(8, 8), (12, 16), (16, 12)]]),
            bbox_coder=dict(type='YOLOBBoxCoder'), featmap_strides=[32, 16, 8],
            loss_cls=dict(_LOSS, loss_weight=1.0), loss_conf=dict(_LOSS, loss_weight=1.0),
            loss_xy=dict(_LOSS, loss_weight=2.0),
            loss_wh=dict(type='MSELoss', loss_weight=2.0)),
        train_cfg=dict(assigner=dict(type='GridAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5,
                                     min_pos_iou=0)),
        test_cfg=dict(nms_pre=100, min_bbox_size=0, score_thr=0.01, conf_thr=0.005,
                      nms=dict(type='nms', iou_threshold=0.45), max_per_img=20))


def tiny_yolov3(hpu: bool = True, seed: int = 0) -> torch.nn.Module:
    """Build :func:`tiny_yolov3_cfg` with deterministic (PyTorch default) weights."""
    torch.manual_seed(seed)
    model = build_detector(mmcv.ConfigDict(tiny_yolov3_cfg(hpu)))
    return model


def synthetic_batches(num: int, batch_size: int = 2, num_gt: int = 2, seed: int = 0) -> List[Dict]:
    """``num`` training batches of random 64 px images with ``num_gt`` boxes each."""
    gen = torch.Generator().manual_seed(seed)
    meta = dict(img_shape=(IMG_SIZE, IMG_SIZE, 3), ori_shape=(IMG_SIZE, IMG_SIZE, 3),
                pad_shape=(IMG_SIZE, IMG_SIZE, 3), scale_factor=1.0, flip=False)
    batches = []
    for _ in range(num):
        xy = torch.rand(batch_size, num_gt, 2, generator=gen) * (IMG_SIZE - 24)
        wh = 8 + torch.rand(batch_size, num_gt, 2, generator=gen) * 16
        batches.append(dict(
            img=torch.rand(batch_size, 3, IMG_SIZE, IMG_SIZE, generator=gen),
            img_metas=[dict(meta) for _ in range(batch_size)],
            gt_bboxes=list(torch.cat([xy, xy + wh], dim=-1)),
            gt_labels=list(torch.randint(0, NUM_CLASSES, (batch_size, num_gt), generator=gen))))
    return batches


def build_test_runner(model, work_dir: str, runner_type: str = 'HPUEpochBasedRunner',
                      logger: logging.Logger = None, **runner_kwargs):
    """A runner around ``MMDataParallel(model)`` (CPU) with plain SGD, no hooks yet."""
    wrapped = MMDataParallel(model, device_ids=[]) if not torch.cuda.is_available() \
        else MMDataParallel(model.cuda(), device_ids=[0])
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    cfg = dict(type=runner_type, **runner_kwargs)
    if 'max_iters' not in runner_kwargs:
        cfg.setdefault('max_epochs', 1)
    assert cfg['type'] in RUNNERS.module_dict
    return build_runner(cfg, default_args=dict(
        model=wrapped, optimizer=optimizer, work_dir=work_dir,
        logger=logger or logging.getLogger('mmdet_hpu.tests.runner')))


def register_default_hooks(runner, log_interval: int, grad_clip=None, custom_hooks=None):
    """The hooks of mmdet's ``train_detector`` (no LR schedule), text logger with JSON."""
    runner.register_training_hooks(
        lr_config=None, optimizer_config=dict(grad_clip=grad_clip),
        checkpoint_config=None,
        log_config=dict(interval=log_interval, hooks=[dict(type='TextLoggerHook')]),
        custom_hooks_config=custom_hooks)


class PerIterHostReads(Hook):
    """Record host reads of each training iteration (register with HIGHEST priority).

    ``before_train_iter`` snapshots (runs first); the delta is taken in the next
    ``before_train_iter`` or at ``after_train_epoch``, so the optimizer, timer and logger
    hooks of the iteration are all included.
    """

    def __init__(self, counter: HostReadCounter) -> None:
        self.counter = counter
        self.per_iter: List[Dict[str, int]] = []
        self._start = None

    def _close(self) -> None:
        if self._start is not None:
            now = self.counter.snapshot()
            self.per_iter.append({k: now[k] - self._start[k] for k in now})
            self._start = None

    def before_train_iter(self, runner) -> None:
        self._close()
        self._start = self.counter.snapshot()

    def after_train_epoch(self, runner) -> None:
        self._close()


def measure_host_reads(hpu: bool, work_dir: str, iters: int = 4, log_interval: int = 2,
                       num_gt: int = 2, batch_size: int = 2) -> List[Dict[str, int]]:
    """Train ``iters`` iterations with grad clipping and count host reads per iteration.

    Args:
        hpu (bool): Ours (``HPUYOLOV3`` + ``HPUEpochBasedRunner`` + ``HPUOptimizerHook``)
            or stock (``YOLOV3`` + ``EpochBasedRunner`` + ``OptimizerHook``).
        work_dir (str): Where the text logger writes.
        iters (int): Training iterations (one epoch).
        log_interval (int): ``log_config.interval``.
        num_gt (int): Boxes per image.
        batch_size (int): Images per batch.

    Returns:
        list[dict]: Per iteration, ``scalar``/``bulk``/``dynamic`` counts.
    """
    runner = build_test_runner(tiny_yolov3(hpu), work_dir,
                               'HPUEpochBasedRunner' if hpu else 'EpochBasedRunner')
    register_default_hooks(runner, log_interval, grad_clip=dict(max_norm=35, norm_type=2))
    counter = HostReadCounter()
    probe = PerIterHostReads(counter)
    runner.register_hook(probe, priority='HIGHEST')
    batches = synthetic_batches(iters, batch_size=batch_size, num_gt=num_gt)
    with counter:
        runner.run([batches], [('train', 1)])
    return probe.per_iter
