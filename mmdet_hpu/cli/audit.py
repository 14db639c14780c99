"""``mmdet-hpu-audit CONFIG``: host syncs, dynamic shapes, copies and graph breaks, per phase.

Runs one training iteration and one inference batch of any mmdet 2.x detector config
(single- or two-stage) on synthetic data, for the configured model and its stock mmdet
counterpart side by side (see :mod:`mmdet_hpu.analysis.audit`). ``CONFIG`` is a path or
``mmdet::<folder>/<name>.py`` for a config shipped inside mmdet.
"""
import argparse
import json
import os
import sys

from . import args as cli_args
from .args import positive_int
from .overrides import merge_cfg_options
from .runtime import UserError, fail_on_user_error

#: Default square input size: small enough for a few seconds per phase on a CPU.
DEFAULT_IMG_SIZE = 320


def img_size(value: str):
    """``--img-size``: a positive multiple of 32, or ``config`` (the pipeline's size)."""
    if value == 'config':
        return None
    size = positive_int(value)
    if size % 32:
        raise argparse.ArgumentTypeError(f'must be a multiple of 32 or "config", got {value}')
    return size


def parse_args(argv=None):
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Count host syncs, dynamic-shape ops, host<->device copies and dynamo '
                    'graph breaks per phase of one training iteration and one inference batch '
                    'of an mmdet 2.x detector, configured model vs its stock mmdet counterpart '
                    '(same weights, synthetic data, nothing downloaded)')
    parser.add_argument('config', help='config file path, or mmdet::<folder>/<name>.py for a '
                        'config shipped with mmdet (e.g. '
                        'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py)')
    parser.add_argument('--batch-size', type=positive_int,
                        help='training images (default: data.samples_per_gpu)')
    parser.add_argument('--test-batch-size', type=positive_int,
                        help='inference images (default: data.test_dataloader.samples_per_gpu '
                             'or 16)')
    parser.add_argument('--img-size', type=img_size, default=DEFAULT_IMG_SIZE,
                        help='square input size for training and inference, a multiple of 32 '
                             f'(default: {DEFAULT_IMG_SIZE}); "config": the pipelines\' size')
    parser.add_argument('--num-gt', type=int,
                        help='ground-truth boxes per image (default: COCO-like counts '
                             '3,12,1,7,19,2,8,5 cycled)')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu',
                        help='where to run (default: cpu)')
    parser.add_argument('--no-explain', dest='explain', action='store_false',
                        help='skip torch._dynamo.explain (much faster)')
    parser.add_argument('--skip-stock', action='store_true',
                        help='audit the configured model only (half the time)')
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
                        help='write the full report (every flagged call site) as JSON to FILE '
                             '(or stdout with no FILE)')
    args = parser.parse_args(argv)
    if args.num_gt is not None and args.num_gt < 0:
        parser.error(f'--num-gt must be >= 0, got {args.num_gt}')
    return args


def load_audit_config(spec: str, cfg_options=None):
    """Read a config (path or ``mmdet::`` shorthand) and check it describes a detector.

    Raises:
        UserError: If the file does not exist (listing close shipped names for the shorthand)
            the model is neither single-stage (``bbox_head``) nor two-stage (``rpn_head`` +
            ``roi_head``), or it trains on masks (the synthetic data has boxes only).
    """
    from mmcv import Config

    from mmdet_hpu.analysis.shipped_configs import resolve_config

    cfg = Config.fromfile(resolve_config(spec))
    merge_cfg_options(cfg, cfg_options)
    model = cfg.get('model', {})
    if 'bbox_head' not in model and not ('rpn_head' in model and 'roi_head' in model):
        raise UserError(f'{spec}: the audit needs a detector with a bbox_head (single-stage) '
                        f'or an rpn_head and a roi_head (two-stage); model.type is '
                        f"{model.get('type')!r}")
    from mmdet_hpu.analysis.synthetic import train_tail

    train_tail(cfg, stock=False)  # refuses what the synthetic data cannot provide (masks)
    return cfg


def main(argv=None):
    """Entry point of ``mmdet-hpu-audit``."""
    args = parse_args(argv)
    os.environ.setdefault('TORCHDYNAMO_VERBOSE', '0')
    with fail_on_user_error():
        cfg = load_audit_config(args.config, args.cfg_options)
        from mmdet_hpu.analysis.audit import AuditSettings, format_table, run_audit

        settings = AuditSettings(batch_size=args.batch_size,
                                 test_batch_size=args.test_batch_size, img_size=args.img_size,
                                 num_gt=args.num_gt, device=args.device, explain=args.explain,
                                 seed=args.seed, checkpoint=args.checkpoint,
                                 skip_stock=args.skip_stock,
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
