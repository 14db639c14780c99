#!/usr/bin/env python
"""Benchmark stock RetinaHead / SSDHead vs HPURetinaHead / HPUSSDHead in one process.

Builds the head of a RetinaNet or SSD config twice (HPU type and its stock parent, same
weights and train/test config) and prints medians in ms and speed-ups of (a) targets + loss +
backward from random head outputs and (b) inference post-processing (``get_bboxes``) with
sparse and dense score maps. No backbone, no data: only the head code differs.

With ``--phases N`` it then splits the HPU training step by phase (N steps, each after a stock
step as in the alternating timing): the head methods of :data:`PHASES`, and the rest (the
backward and the loss's glue).

Example::

    OMP_NUM_THREADS=1 python tools/benchmark_anchor_heads.py \
        configs/retinanet/retinanet_r50_fpn_1x_coco.py
"""
import argparse
import copy
import statistics

import mmcv
import numpy as np
import torch
from mmdet.models.builder import build_head

import mmdet_hpu  # noqa: F401  (registers the HPU heads)
from mmdet_hpu.analysis.benchmark import SPEEDUP_HEADER, speedup_row, speedup_runs
from mmdet_hpu.analysis.host import host_description
from mmdet_hpu.analysis.phase_timer import OTHER, STEP, time_phases

STOCK = {'HPURetinaHead': 'RetinaHead', 'HPUSSDHead': 'SSDHead'}
# The HPU head methods a training step is split by (--phases); none calls another.
PHASES = {
    'HPURetinaHead': ('get_static_targets', '_level_losses'),
    'HPUSSDHead': ('get_static_targets', 'anchor_cls_losses', 'hard_negative_cls_loss',
                   'anchor_bbox_losses'),
}


def parse_args(argv=None):
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('config', help='RetinaNet or SSD config with an HPU head')
    parser.add_argument('--batch-size', type=int, default=2, help='batch (default: 2)')
    parser.add_argument('--img-size', type=int, default=640,
                        help='square input size (default: 640; SSD300 configs use 300)')
    parser.add_argument('--num-gt', type=int, default=8, help='boxes per image (default: 8)')
    parser.add_argument('--reps', type=int, default=5, help='timed runs (default: 5)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed runs (default: 1)')
    parser.add_argument('--runs', type=int, default=1,
                        help='separate measurements of --reps runs each; prints every run\'s '
                             'speed-up and their median (default: 1)')
    parser.add_argument('--phases', type=int, default=0, metavar='STEPS',
                        help='then split STEPS HPU training steps by phase (default: 0, off)')
    return parser.parse_args(argv)


def build_pair(cfg):
    """(stock head, HPU head) with the config's train/test settings and the same weights."""
    head_cfg = copy.deepcopy(cfg.model.bbox_head)
    head_cfg.update(train_cfg=cfg.model.train_cfg, test_cfg=cfg.model.test_cfg)
    hpu = build_head(head_cfg)
    stock_cfg = copy.deepcopy(head_cfg)
    stock_cfg.type = STOCK[head_cfg.type]
    stock_cfg.pop('max_num_gt', None)
    stock = build_head(stock_cfg)
    stock.load_state_dict(hpu.state_dict(), strict=True)
    return stock, hpu


def head_outputs(head, batch_size, size, cls_bias, seed=0):
    """Random (cls_scores, bbox_preds) in the head's layout, as leaf tensors with grad."""
    gen = torch.Generator().manual_seed(seed)
    sizes = [(int(np.ceil(size / s[1])), int(np.ceil(size / s[0])))
             for s in head.prior_generator.strides]
    num_base = head.num_base_priors
    num_base = num_base if isinstance(num_base, list) else [num_base] * len(sizes)
    cls_scores, bbox_preds = [], []
    for (h, w), n in zip(sizes, num_base):
        cls = torch.randn(batch_size, n * head.cls_out_channels, h, w, generator=gen) + cls_bias
        cls_scores.append(cls.requires_grad_())
        bbox_preds.append((torch.randn(batch_size, n * 4, h, w, generator=gen) * 0.3)
                          .requires_grad_())
    return cls_scores, bbox_preds


def ground_truth(batch_size, size, num_gt, num_classes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    wh = torch.rand(batch_size, num_gt, 2, generator=gen) * size * 0.5 + 8
    xy = torch.rand(batch_size, num_gt, 2, generator=gen) * (size - wh)
    boxes = list(torch.cat([xy, xy + wh], dim=-1))
    labels = list(torch.randint(0, num_classes, (batch_size, num_gt), generator=gen))
    return boxes, labels


def img_metas(batch_size, size):
    shape = (size, size, 3)
    return [dict(img_shape=shape, pad_shape=shape, ori_shape=shape, batch_input_shape=(size, size),
                 scale_factor=np.ones(4, dtype=np.float32)) for _ in range(batch_size)]


def loss_fn(head, outputs, boxes, labels, metas):
    def run():
        # As a training step (and tools/benchmark.py): no gradient left from the last run to
        # add to; in a detector the maps are not leaves and nothing accumulates at all.
        for maps in outputs:
            for level in maps:
                level.grad = None
        losses = head.loss(*outputs, boxes, labels, metas)
        total = sum(sum(v) if isinstance(v, list) else v for v in losses.values())
        total.sum().backward()
    return run


def print_phases(stock, hpu, outputs, boxes, labels, metas, steps):
    """Medians of the HPU training step's phases, each step after a stock one (ms)."""
    times = time_phases(hpu, PHASES[type(hpu).__name__],
                        loss_fn(hpu, outputs, boxes, labels, metas), steps,
                        before=loss_fn(stock, outputs, boxes, labels, metas))
    print(f'{type(hpu).__name__} targets + loss + backward by phase, medians of {steps} steps, '
          'each after a stock step:')
    labels_of = {OTHER: 'other (backward, loss glue)', STEP: 'whole step'}
    for name, values in times.items():
        print(f'  {labels_of.get(name, name):32s} {statistics.median(values):8.2f} ms')


def bboxes_fn(head, cls_scores, bbox_preds, metas):
    return lambda: head.get_bboxes(cls_scores, bbox_preds, img_metas=metas)


def main(argv=None):
    """Run the benchmark and print the report."""
    args = parse_args(argv)
    cfg = mmcv.Config.fromfile(args.config)
    stock, hpu = build_pair(cfg)
    dev = torch.device('cpu')
    metas = img_metas(args.batch_size, args.img_size)
    boxes, labels = ground_truth(args.batch_size, args.img_size, args.num_gt, hpu.num_classes)
    outputs = head_outputs(hpu, args.batch_size, args.img_size, cls_bias=-4.0)
    print(host_description())
    print(f'{cfg.model.bbox_head.type} vs {STOCK[cfg.model.bbox_head.type]}: batch '
          f'{args.batch_size}, {args.img_size} px, {args.num_gt} boxes/image, '
          f'{torch.get_num_threads()} threads, medians of {args.reps} runs, {args.runs} time(s)')
    print(SPEEDUP_HEADER)
    print(speedup_row('targets + loss + backward', speedup_runs(
        loss_fn(stock, outputs, boxes, labels, metas), loss_fn(hpu, outputs, boxes, labels, metas),
        dev, args.runs, args.reps, args.warmup)))
    for name, bias in (('post-processing, sparse scores', -7.0),
                       ('post-processing, dense scores', -1.0)):
        cls_scores, bbox_preds = head_outputs(hpu, args.batch_size, args.img_size, bias, seed=1)
        cls_scores = [c.detach() for c in cls_scores]
        bbox_preds = [b.detach() for b in bbox_preds]
        with torch.no_grad():
            print(speedup_row(name, speedup_runs(
                bboxes_fn(stock, cls_scores, bbox_preds, metas),
                bboxes_fn(hpu, cls_scores, bbox_preds, metas), dev, args.runs, args.reps,
                args.warmup)))
    if args.phases > 0:
        print_phases(stock, hpu, outputs, boxes, labels, metas, args.phases)


if __name__ == '__main__':
    main()
