#!/usr/bin/env python
"""Train + evaluate a config and the same config with the stock head and detector.

    python tools/compare_stock.py configs/demo/retinanet_mobilenetv2-half_128_shapes.py --seed 0

Both sides: same data, schedule, seed and pipeline; the stock side gets every ``HPU*`` model
type replaced by its stock parent and list-form ground truth (no ``HPUPadGT``), see
``mmdet_hpu/analysis/compare_stock.py``. Runs the two trainings one after the other, then
prints both bbox mAPs, the difference and the wall-clock times.
"""
import argparse
import os.path as osp

import mmcv

from mmdet_hpu.analysis.compare_stock import format_comparison, stock_config, train_and_evaluate


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--work-dir', help='default: work_dirs/compare-<config name>-seed<seed>')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--only', choices=('hpu', 'stock'), help='run one side only')
    parser.add_argument('--train-args', default='', help='extra mmdet-hpu-train flags, quoted')
    parser.add_argument('--test-args', default='', help='extra mmdet-hpu-test flags, quoted')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='key=value overrides for both sides, e.g. data_root=data/demo/')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    name = osp.splitext(osp.basename(args.config))[0]
    work_dir = args.work_dir or osp.join('work_dirs', f'compare-{name}-seed{args.seed}')
    stock_cfg, changes = stock_config(mmcv.Config.fromfile(args.config))
    stock_path = osp.join(work_dir, 'stock', f'{name}_stock.py')
    mmcv.mkdir_or_exist(osp.dirname(stock_path))
    stock_cfg.dump(stock_path)
    kwargs = dict(seed=args.seed, device=args.device, train_args=args.train_args.split(),
                  test_args=args.test_args.split(), cfg_options=args.cfg_options)
    results = {}
    for side, config in (('hpu', args.config), ('stock', stock_path)):
        if args.only in (None, side):
            results[side] = train_and_evaluate(config, osp.join(work_dir, side), **kwargs)
            print(f'{side}: {results[side]}', flush=True)
    if len(results) == 2:
        print(format_comparison(results['hpu'], results['stock'], changes))


if __name__ == '__main__':
    main()
