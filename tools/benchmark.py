#!/usr/bin/env python
"""Benchmark stock YOLOV3Head vs the configured (HPU) head, and the whole model, in one process.

Prints medians in ms and speed-ups for (a) targets + loss + backward and (b) inference
post-processing with dense, crowded and sparse predictions (also at batch 8, 16, 32, 64), then
whole-model train-step and inference
images/s on the chosen device (see :mod:`mmdet_hpu.analysis.benchmark`).

Example::

    python tools/benchmark.py configs/yolov3/yolov3_d53_320_273e_coco.py --device cpu
"""
import argparse
import json

from mmdet_hpu.cli.args import positive_int
from mmdet_hpu.cli.runtime import fail_on_user_error, load_config


def parse_args(argv=None):
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('config', help='YOLOv3 config file')
    parser.add_argument('--device', default='cpu', choices=('auto', 'cpu', 'cuda', 'hpu'),
                        help='device (default: cpu)')
    parser.add_argument('--batch-size', type=positive_int, default=8,
                        help='training batch (default: 8)')
    parser.add_argument('--test-batch-size', type=positive_int, default=16,
                        help='inference batch (default: 16)')
    parser.add_argument('--img-size', type=positive_int,
                        help="square input size (default: the train pipeline's, 320 for d53 320)")
    parser.add_argument('--num-gt', type=int,
                        help='boxes per image (default: COCO-like 3,12,1,7,19,2,8,5 = 57 at '
                             'batch 8)')
    parser.add_argument('--reps', type=positive_int, default=20,
                        help='timed runs per head case (default: 20)')
    parser.add_argument('--warmup', type=int, default=3, help='untimed runs first (default: 3)')
    parser.add_argument('--model-reps', type=positive_int, default=2,
                        help='timed runs per whole-model case, after 1 warm-up (default: 2)')
    parser.add_argument('--model-img-size', type=positive_int,
                        help='input size of the whole-model cases (default: --img-size)')
    parser.add_argument('--no-model', dest='with_model', action='store_false',
                        help='skip the whole-model train step / inference timing')
    parser.add_argument('--post-batch-sizes', default='8,16,32,64',
                        type=lambda text: [positive_int(v) for v in text.split(',') if v],
                        help='also time post-processing (dense, crowded, sparse) at these '
                             'batch sizes (default: 8,16,32,64; "" skips)')
    parser.add_argument('--post-reps', type=positive_int, default=3,
                        help='timed runs per batch-size row, after 1 warm-up (default: 3)')
    parser.add_argument('--json', metavar='FILE', help='also write the report as JSON')
    return parser.parse_args(argv)


def main(argv=None):
    """Run the benchmark and print the report."""
    args = parse_args(argv)
    with fail_on_user_error():
        cfg = load_config(args.config)
    from mmdet_hpu.analysis.benchmark import format_report, run_benchmark
    from mmdet_hpu.analysis.host import host_description

    report = run_benchmark(cfg, device=args.device, batch_size=args.batch_size,
                           test_batch_size=args.test_batch_size, img_size=args.img_size,
                           num_gt=args.num_gt, reps=args.reps, warmup=args.warmup,
                           model_reps=args.model_reps, model_img_size=args.model_img_size,
                           with_model=args.with_model, post_batch_sizes=args.post_batch_sizes,
                           post_reps=args.post_reps)
    report['config'] = args.config
    report['host'] = host_description()
    print(f'mmdet-hpu benchmark: {args.config}')
    print(report['host'])
    print(format_report(report))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1)


if __name__ == '__main__':
    main()
