"""Print host reads per training iteration, mmdet-hpu vs stock mmdet, side by side.

Both train the same tiny YOLOv3 (MobileNetV2 x0.25, 64 px, 3 classes, grad clipping) on
the CPU for a few iterations, counting with :class:`mmdet_hpu.runner.host_reads.
HostReadCounter`:

* ours: ``HPUYOLOV3`` + ``HPUYOLOV3Head`` + ``HPUEpochBasedRunner`` + ``HPUOptimizerHook``;
* stock: ``YOLOV3`` + ``YOLOV3Head`` + ``EpochBasedRunner`` + ``OptimizerHook``.

``scalar`` = ``aten::_local_scalar_dense`` (``.item()``, ``float(t)``, ``bool(t)``),
``bulk`` = ``tolist()``/``numpy()``, ``dynamic`` = data-dependent shape ops
(``nonzero``...), each a device wait on CUDA/HPU. Stock counts grow with the number of
ground-truth boxes. The harness (:mod:`mmdet_hpu.analysis.host_read_loop`) is the one the
runner tests assert on.

Measured on CPU (torch 2.9.1, mmcv 1.7.2, mmdet 2.28.2), batch 2, log interval 2:

=========================  ==========================  ===============================
per iteration              ours (scalar/bulk/dynamic)  stock (scalar/bulk/dynamic)
=========================  ==========================  ===============================
2 GT boxes/image, no log   0 / 0 / 0                   17 / 0 / 20
2 GT boxes/image, log      0 / 1 / 0                   17 / 0 / 20
4 GT boxes/image, no log   0 / 0 / 0                   21 / 0 / 24
4 GT boxes/image, log      0 / 1 / 0                   21 / 0 / 24
=========================  ==========================  ===============================

Usage::

    python tools/count_host_reads.py [--iters 4] [--log-interval 2] [--num-gt 2] [--batch-size 2]
"""
import argparse
import logging
import tempfile
import time

KINDS = ('scalar', 'bulk', 'dynamic')


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--iters', type=int, default=4, help='training iterations')
    parser.add_argument('--log-interval', type=int, default=2, help='log_config.interval')
    parser.add_argument('--num-gt', type=int, default=2, help='ground-truth boxes per image')
    parser.add_argument('--batch-size', type=int, default=2, help='images per iteration')
    return parser.parse_args(argv)


def _measure(hpu, args):
    from mmdet_hpu.analysis.host_read_loop import measure_host_reads

    with tempfile.TemporaryDirectory() as work_dir:
        return measure_host_reads(hpu, work_dir, iters=args.iters,
                                  log_interval=args.log_interval, num_gt=args.num_gt,
                                  batch_size=args.batch_size)


def _table(ours, stock, args):
    head = ' | '.join(f'{kind:>7}' for kind in KINDS)
    lines = [f'Host reads per training iteration (batch {args.batch_size}, {args.num_gt} GT '
             f'boxes per image, log interval {args.log_interval}, grad_clip on)',
             f'{"iter":>4} | {"log?":>4} || ours: {head} || stock: {head}']
    for i, (mine, theirs) in enumerate(zip(ours, stock), start=1):
        flag = 'yes' if i % args.log_interval == 0 else ''
        lines.append(f'{i:>4} | {flag:>4} || ours: '
                     + ' | '.join(f'{mine[k]:>7}' for k in KINDS) + ' || stock: '
                     + ' | '.join(f'{theirs[k]:>7}' for k in KINDS))
    return '\n'.join(lines)


def main(argv=None):
    args = _parse_args(argv)
    logging.disable(logging.INFO)  # keep the runners' log lines out of the table
    time.sleep = lambda seconds: None  # skip the runners' fixed epoch-transition sleeps
    print(_table(_measure(True, args), _measure(False, args), args))


if __name__ == '__main__':
    main()
