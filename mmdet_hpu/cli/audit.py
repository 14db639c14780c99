"""``mmdet-hpu-audit CONFIG``: host syncs, dynamic shapes, copies and graph breaks, per phase.

Runs one training iteration and one inference batch of the config's YOLOv3 on synthetic data,
for the configured head and a stock mmdet ``YOLOV3Head`` copy side by side (see
:mod:`mmdet_hpu.analysis.audit`).
"""
import argparse
import json
import os
import sys

from . import args as cli_args
from .args import positive_int
from .overrides import merge_cfg_options
from .runtime import UserError, fail_on_user_error, load_config


def parse_args(argv=None):
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Count host syncs, dynamic-shape ops, host<->device copies and dynamo '
                    'graph breaks per phase of one YOLOv3 training iteration and inference '
                    'batch, configured head vs stock YOLOV3Head (CPU, synthetic data)')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--batch-size', type=positive_int,
                        help='training images (default: data.samples_per_gpu)')
    parser.add_argument('--test-batch-size', type=positive_int,
                        help='inference images (default: data.test_dataloader.samples_per_gpu '
                             'or 16)')
    parser.add_argument('--img-size', type=positive_int,
                        help='square input size for training and inference (default: the '
                             "pipelines' Pad size); a multiple of 32")
    parser.add_argument('--num-gt', type=int,
                        help='ground-truth boxes per image (default: COCO-like counts '
                             '3,12,1,7,19,2,8,5 cycled)')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu',
                        help='where to run (default: cpu)')
    parser.add_argument('--no-explain', dest='explain', action='store_false',
                        help='skip torch._dynamo.explain (faster)')
    parser.add_argument('--checkpoint', help='weights to load (default: freshly initialised; '
                        'untrained class scores stay below test_cfg.score_thr, so stock skips '
                        'NMS: pass a checkpoint or --cfg-options model.test_cfg.score_thr=0)')
    parser.add_argument('--seed', type=int, default=0, help='seed of weights and data')
    parser.add_argument('--compile-batches', type=int, default=40, metavar='N',
                        help='count the graphs torch.compile builds for the training step over '
                             'N batches with COCO-like box counts, and for post-processing '
                             '(default: 40; 0 skips it)')
    cli_args.add_cfg_options(parser)
    parser.add_argument('--json', nargs='?', const='-', metavar='FILE',
                        help='write the full report as JSON to FILE (or stdout with no FILE)')
    args = parser.parse_args(argv)
    if args.img_size is not None and args.img_size % 32:
        parser.error(f'--img-size must be a multiple of 32, got {args.img_size}')
    if args.num_gt is not None and args.num_gt < 0:
        parser.error(f'--num-gt must be >= 0, got {args.num_gt}')
    return args


def main(argv=None):
    """Entry point of ``mmdet-hpu-audit``."""
    args = parse_args(argv)
    os.environ.setdefault('TORCHDYNAMO_VERBOSE', '0')
    with fail_on_user_error():
        cfg = load_config(args.config)
        merge_cfg_options(cfg, args.cfg_options)
        if 'bbox_head' not in cfg.get('model', {}):
            raise UserError(f'{args.config}: the audit needs a single-stage model with a '
                            'YOLOv3 bbox_head')
        from mmdet_hpu.analysis.audit import AuditSettings, format_table, run_audit

        settings = AuditSettings(batch_size=args.batch_size,
                                 test_batch_size=args.test_batch_size, img_size=args.img_size,
                                 num_gt=args.num_gt, device=args.device, explain=args.explain,
                                 seed=args.seed, checkpoint=args.checkpoint,
                                 compile_batches=args.compile_batches)
        report = run_audit(cfg, settings, config_path=args.config)
    if args.json == '-':
        json.dump(report, sys.stdout, indent=1)
        print()
        return
    print(format_table(report))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1)


if __name__ == '__main__':
    main()
