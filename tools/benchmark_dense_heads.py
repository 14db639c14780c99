#!/usr/bin/env python
"""Time stock FCOSHead / ATSSHead against HPUFCOSHead / HPUATSSHead in one process.

The heads come from this project's COCO configs (80 classes, 5 levels, strides 8-128) and the
stock parent is built from the same head dict with the stock type and the same weights. Timed
(medians over ``--reps`` runs after ``--warmup``):

* ``targets+loss+backward``: ``loss`` (targets included) + backward to the head outputs, for a
  batch with COCO-like box counts (the HPU side gets them padded as ``HPUPadGT`` does);
* ``post-processing``: ``get_bboxes(rescale=True)`` of a batch of head outputs like

  - a freshly initialised head's (``fresh``): class logits ~ logit(0.01) + N(0, 0.3), so no
    pair passes ``score_thr`` and stock's filter leaves it nothing to decode or suppress;
  - a trained head's (``sparse``): as fresh, plus a few dozen confident points per image
    (one class logit raised to ~ N(2, 1));
  - ``crowded`` ones: class logits ~ N(logit(0.01), 1), thousands of pairs pass ``score_thr``.

Stock and HPU runs alternate (:func:`~mmdet_hpu.analysis.benchmark.time_pair_ms`), so both
see the same machine load. ``--profile-post KIND`` then profiles ``--reps`` HPU
post-processing calls of that kind (each after a stock call) and prints the ops they spend
their time in (:mod:`mmdet_hpu.analysis.op_profile`).

Example::

    OMP_NUM_THREADS=1 python tools/benchmark_dense_heads.py --img-size 640 --batch-size 2
"""
import argparse
import math
import os.path as osp

import mmcv
import numpy as np
import torch
from mmdet.models.builder import build_head

import mmdet_hpu  # noqa: F401  (registers the HPU heads)
from mmdet_hpu.analysis.benchmark import SPEEDUP_HEADER, speedup_row, speedup_runs
from mmdet_hpu.analysis.host import host_description
from mmdet_hpu.analysis.op_profile import format_ops, profile_ops
from mmdet_hpu.models.utils import gt_bucket, pad_gt_list

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = {
    'fcos': ('configs/fcos/fcos_center-normbbox-centeronreg-giou_r50_caffe_fpn_gn-head_1x_coco.py',
             'FCOSHead'),
    'atss': ('configs/atss/atss_r50_fpn_1x_coco.py', 'ATSSHead'),
}
COCO_COUNTS = (3, 12, 1, 7, 19, 2, 8, 5)
POST_KINDS = ('fresh', 'sparse', 'crowded')
PROFILED_OPS = 12  # ops listed by --profile-post


def build_pair(name):
    """(stock head, HPU head) with the same weights, from this project's config."""
    path, stock_type = CONFIGS[name]
    model = mmcv.Config.fromfile(osp.join(REPO, path)).model
    head_cfg = dict(model.bbox_head, train_cfg=model.train_cfg, test_cfg=model.test_cfg)
    torch.manual_seed(0)
    hpu = build_head(head_cfg)
    stock_cfg = dict(head_cfg, type=stock_type)
    stock_cfg.pop('max_num_gt')
    stock = build_head(stock_cfg)
    stock.load_state_dict(hpu.state_dict(), strict=True)
    return stock, hpu


CONFIDENT_POINTS = 40  # per image and level in the ``sparse`` case


def head_outputs(head, batch_size, size, kind, seed=0):
    """Per-level (cls_scores, bbox_preds, centernesses) with the statistics of ``kind``
    (``fresh``, ``sparse`` or ``crowded``, see the module docstring)."""
    gen = torch.Generator().manual_seed(seed)
    strides = [s[0] for s in head.prior_generator.strides]
    num_priors = head.num_base_priors
    prior = math.log(0.01 / 0.99)
    outs = ([], [], [])
    for stride in strides:
        h, w = math.ceil(size / stride), math.ceil(size / stride)
        cls = torch.randn(batch_size, num_priors * head.cls_out_channels, h, w, generator=gen)
        cls = cls * (1.0 if kind == 'crowded' else 0.3) + prior
        if kind == 'sparse':
            flat = cls.view(batch_size, -1)
            picks = torch.randint(0, flat.shape[1], (batch_size, CONFIDENT_POINTS), generator=gen)
            flat.scatter_(1, picks, torch.randn(picks.shape, generator=gen) + 2.0)
        outs[0].append(cls)
        bbox = torch.randn(batch_size, num_priors * 4, h, w, generator=gen) * 0.3
        # FCOS outputs distances (after exp / clamp), ATSS deltas.
        outs[1].append(bbox.exp() * 2.0 if hasattr(head, 'norm_on_bbox') else bbox)
        outs[2].append(torch.randn(batch_size, num_priors, h, w, generator=gen))
    return outs


def ground_truth(batch_size, size, num_classes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    boxes, labels = [], []
    for i in range(batch_size):
        n = COCO_COUNTS[i % len(COCO_COUNTS)]
        xy = torch.rand(n, 2, generator=gen) * size * 0.8
        wh = torch.rand(n, 2, generator=gen) * size * 0.4 + 8
        boxes.append(torch.cat([xy, (xy + wh).clamp(max=size)], 1))
        labels.append(torch.randint(0, num_classes, (n, ), generator=gen))
    return boxes, labels


def metas(batch_size, size):
    shape = (size, size, 3)
    return [dict(img_shape=shape, pad_shape=shape, ori_shape=shape, batch_input_shape=shape[:2],
                 scale_factor=np.ones(4, dtype=np.float32)) for _ in range(batch_size)]


def train_fn(head, outs, gt_args, img_metas, extra):
    def run():
        leaves = [[t.clone().requires_grad_() for t in level] for level in outs]
        losses = head.loss(*leaves, *gt_args, img_metas, **extra)
        total = sum(sum(v) if isinstance(v, list) else v for v in losses.values())
        total.backward()
    return run


def post_fn(head, outs, img_metas):
    def run():
        head.get_bboxes(*outs, img_metas=img_metas, rescale=True)
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--heads', nargs='+', default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument('--img-size', type=int, default=640)
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--reps', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--runs', type=int, default=1,
                        help="separate measurements of --reps runs each; prints every run's "
                             'speed-up and their median (default: 1)')
    parser.add_argument('--profile-post', choices=POST_KINDS, metavar='KIND',
                        help='then profile --reps HPU post-processing calls of this kind '
                             f'({", ".join(POST_KINDS)}) and list their costliest ops')
    args = parser.parse_args(argv)
    print(host_description())
    print(f'torch {torch.__version__}, threads {torch.get_num_threads()}, '
          f'batch {args.batch_size} at {args.img_size} px, medians of {args.reps} runs, '
          f'{args.runs} time(s)')
    print(SPEEDUP_HEADER)
    for name in args.heads:
        stock, hpu = build_pair(name)
        img_metas = metas(args.batch_size, args.img_size)
        outs = head_outputs(hpu, args.batch_size, args.img_size, 'fresh')
        boxes, labels = ground_truth(args.batch_size, args.img_size, hpu.num_classes)
        padded = pad_gt_list(boxes, labels, hpu.max_num_gt,
                             num_rows=gt_bucket(max(map(len, boxes)), hpu.max_num_gt))
        cases = [('targets+loss+backward',
                  train_fn(stock, outs, (boxes, labels), img_metas, {}),
                  train_fn(hpu, outs, padded[:2], img_metas, dict(gt_valid=padded[2])))]
        stock.eval(), hpu.eval()
        # (stock call, HPU call) of each post-processing kind, by kind.
        post_calls = {}
        for kind in POST_KINDS:
            post = head_outputs(hpu, args.batch_size, args.img_size, kind)
            post_calls[kind] = (post_fn(stock, post, img_metas), post_fn(hpu, post, img_metas))
        cases += [(f'post-processing {kind}', *calls) for kind, calls in post_calls.items()]
        for case, stock_fn, hpu_fn in cases:
            grad = torch.enable_grad() if case.startswith('targets') else torch.no_grad()
            with grad:
                runs_ms = speedup_runs(stock_fn, hpu_fn, torch.device('cpu'), args.runs,
                                       args.reps, args.warmup)
            print(speedup_row(f'{name} {case}', runs_ms))
        if args.profile_post:
            print_post_profile(name, args.profile_post, *post_calls[args.profile_post],
                               args.reps)


def print_post_profile(name, kind, stock_fn, hpu_fn, calls):
    """The costliest ops of ``calls`` HPU post-processing calls, each after a stock call."""
    with torch.no_grad():
        hpu_fn()
        ops, top_level, total_ms = profile_ops(hpu_fn, calls, before=stock_fn)
    print(f'{name} post-processing {kind}, HPU, profiled over {calls} calls (each after a stock '
          f'call): {total_ms:.2f} ms per call with the profiler, {top_level:.0f} ops called '
          'directly; most self time:')
    for line in format_ops(ops, PROFILED_OPS):
        print(line)


if __name__ == '__main__':
    main()
