#!/usr/bin/env python
"""A config's HPU detector vs its stock counterpart on real batches: agreement and drift.

    python tools/stock_drift.py configs/demo/fcos_mobilenetv2-half_128_shapes.py --steps 12
    python tools/stock_drift.py CONFIG --checkpoint work_dirs/.../latest.pth --batches 10 --steps 0

First, with the same weights (``--checkpoint``, else a fresh init) on ``--batches`` batches: the
worst relative difference of any loss term and of the whole gradient. Then, trained side by
side for ``--steps`` steps: per step, the two losses and their relative difference, for HPU vs
stock and for the reference, stock vs stock with every weight perturbed by 1e-7 relative
(float32 rounding). See ``mmdet_hpu/analysis/stock_drift.py``.
"""
import argparse

import mmcv

import mmdet_hpu  # noqa: F401  (registers the HPU types)
from mmdet_hpu.analysis.stock_drift import loss_drift, same_weights_agreement
from mmdet_hpu.cli.overrides import merge_cfg_options


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('--checkpoint', help='weights of the agreement check (default: init)')
    parser.add_argument('--batches', type=int, default=3, help='batches of the agreement check')
    parser.add_argument('--steps', type=int, default=12, help='side-by-side training steps')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--perturb', type=float, default=1e-7,
                        help='relative weight perturbation of the reference run (0: skip it)')
    parser.add_argument('--cfg-options', nargs='+', default=[], action=mmcv.DictAction,
                        help='key=value overrides, e.g. data_root=data/demo/')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = merge_cfg_options(mmcv.Config.fromfile(args.config), args.cfg_options)
    if args.batches > 0:
        agreement = same_weights_agreement(cfg, args.batches, args.checkpoint, args.batch_size)
        worst_term = max(max(a.loss_terms.values()) for a in agreement)
        worst_grad = max(a.gradient for a in agreement)
        print(f'same weights, {args.batches} batches: worst loss-term difference '
              f'{worst_term:.1e}, worst gradient difference {worst_grad:.1e} (relative)')
    if args.steps <= 0:
        return
    runs = [('HPU vs stock', loss_drift(cfg, args.steps, batch_size=args.batch_size))]
    if args.perturb > 0:
        runs.append((f'stock vs stock * (1 + {args.perturb:g} N(0,1))',
                     loss_drift(cfg, args.steps, args.perturb, args.batch_size)))
    print(f'{"step":>5}' + ''.join(f'{name:>44}' for name, _ in runs))
    for step in range(args.steps):
        cells = [f'{r[step].loss_a:11.6f} {r[step].loss_b:11.6f} {r[step].relative:9.2e}'
                 for _, r in runs]
        print(f'{step:5d}' + ''.join(f'{cell:>44}' for cell in cells))


if __name__ == '__main__':
    main()
