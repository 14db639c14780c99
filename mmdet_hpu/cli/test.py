"""``mmdet-hpu-test CONFIG CHECKPOINT``: mmdet 2.28's ``tools/test.py`` on hpu, cuda or cpu."""
import argparse
import os
import os.path as osp
import sys
import time

from . import args as cli_args
from .overrides import merge_cfg_options, set_batch_sizes
from .runtime import UserError, fail_on_user_error, load_config, prepare_device

# EvalHook arguments that dataset.evaluate() does not take.
_EVAL_HOOK_KEYS = ('interval', 'tmpdir', 'start', 'gpu_collect', 'save_best', 'rule',
                   'dynamic_intervals', 'greater_keys', 'less_keys', 'by_epoch', 'out_dir')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) an mmdet detector on '
                                     'hpu, cuda or cpu')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='directory where the metrics json is saved')
    parser.add_argument('--out', help='output result file in pickle format')
    parser.add_argument('--fuse-conv-bn', action='store_true',
                        help='fuse conv and bn (slightly faster inference)')
    parser.add_argument('--gpu-ids', type=int, nargs='+', help='(deprecated in mmdet)')
    parser.add_argument('--gpu-id', type=int, default=0, help='id of the device to use')
    parser.add_argument('--format-only', action='store_true',
                        help='format the results without evaluating them')
    parser.add_argument('--eval', type=str, nargs='+',
                        help='metrics, e.g. "bbox" for COCO')
    parser.add_argument('--show', action='store_true', help='show results')
    parser.add_argument('--show-dir', help='directory where painted images will be saved')
    parser.add_argument('--show-score-thr', type=float, default=0.3,
                        help='score threshold for --show/--show-dir')
    parser.add_argument('--gpu-collect', action='store_true',
                        help='collect results on CUDA devices (CUDA only)')
    parser.add_argument('--tmpdir', help='tmp directory used to collect results from ranks')
    parser.add_argument('--eval-options', nargs='+', action=cli_args.DictAction,
                        help='custom options for evaluation, e.g. classwise=True')
    parser.add_argument('--eval-batch-size', '--batch-size', dest='eval_batch_size',
                        type=cli_args.positive_int,
                        help='images per device (data.test_dataloader.samples_per_gpu)')
    cli_args.add_cfg_options(parser)
    cli_args.add_dist_args(parser)
    cli_args.add_device_args(parser)
    cli_args.add_safety_args(parser)
    args = parser.parse_args(argv)
    _check_operations(args)
    return cli_args.finalize_common(args)


def _check_operations(args):
    if not (args.out or args.eval or args.format_only or args.show or args.show_dir):
        cli_args.usage_error('say what to do with the results: --eval bbox, --out '
                             'results.pkl, --format-only, --show or --show-dir DIR')
    if args.eval and args.format_only:
        cli_args.usage_error('--eval and --format-only cannot be both given')
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        cli_args.usage_error(f'--out must end with .pkl or .pickle, got {args.out!r}')
    if args.show and not _display_available():
        cli_args.usage_error('--show opens a window for every image, but this machine has no '
                             'display (DISPLAY / WAYLAND_DISPLAY are not set). Use --show-dir '
                             'DIR to save the images with the detections drawn instead.')


def _display_available():
    """Whether a window can be opened (macOS / Windows always; elsewhere X11 or Wayland)."""
    if sys.platform in ('darwin', 'win32'):
        return True
    return bool(os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY'))


def _format_only_prefix(dataset, args):
    """``jsonfile_prefix`` for ``--format-only`` (kept files, not a deleted temp dir).

    mmdet writes to a temporary folder that is deleted at exit when no
    ``--eval-options jsonfile_prefix=...`` is given; the default here is
    ``<work_dir>/results`` (``./work_dirs/<config name>/results`` without ``--work-dir``).
    Returns None for datasets whose ``format_results`` takes no ``jsonfile_prefix``.
    """
    import inspect

    options = args.eval_options or {}
    if 'jsonfile_prefix' in options:
        return options['jsonfile_prefix']
    if 'jsonfile_prefix' not in inspect.signature(dataset.format_results).parameters:
        return None
    work_dir = args.work_dir or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    return osp.join(work_dir, 'results')


def _prepare_test_config(cfg, args):
    from mmdet.datasets import replace_ImageToTensor
    from mmdet.utils import compat_cfg

    from mmdet_hpu.validation.value_types import check_value_types

    merge_cfg_options(cfg, args.cfg_options)
    check_value_types(cfg)  # before compat_cfg and the code below use the values
    cfg = compat_cfg(cfg)
    set_batch_sizes(cfg, eval_batch_size=args.eval_batch_size)
    cfg.model.pop('pretrained', None)
    if 'init_cfg' in cfg.model.get('backbone', {}):
        cfg.model.backbone.init_cfg = None
    cfg.model.train_cfg = None
    cfg.data.test.test_mode = True
    if cfg.data.test_dataloader.get('samples_per_gpu', 1) > 1:
        cfg.data.test.pipeline = replace_ImageToTensor(cfg.data.test.pipeline)
    cfg.gpu_ids = args.gpu_ids[0:1] if args.gpu_ids else [args.gpu_id]
    return cfg


def _load_model(cfg, args, dataset):
    """Build the model and load the checkpoint, refusing one that does not fit.

    Refused before inference: not a checkpoint, weights of another architecture or
    class count, class names other than the dataset's, NaN/Inf weights.
    """
    from mmcv.cnn import fuse_conv_bn
    from mmdet.models import build_detector

    from mmdet_hpu.checkpoint import load_checkpoint_any, load_weights
    from mmdet_hpu.validation import check_num_classes
    from mmdet_hpu.validation.checkpoint_checks import (
        check_class_names,
        check_finite_weights,
        check_structure,
    )

    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        raise UserError(f'checkpoint not found: {args.checkpoint!r}')
    model = build_detector(cfg.model, test_cfg=cfg.get('test_cfg'))
    checkpoint = load_checkpoint_any(args.checkpoint, map_location='cpu')
    check_structure(checkpoint, args.checkpoint, 'test')
    check_num_classes(checkpoint, model, args.checkpoint, source='test')
    check_class_names(checkpoint, dataset.CLASSES, args.checkpoint)
    check_finite_weights(checkpoint, args.checkpoint)
    load_weights(model, checkpoint)
    if args.fuse_conv_bn:
        model = fuse_conv_bn(model)
    meta = checkpoint.get('meta') if isinstance(checkpoint.get('meta'), dict) else {}
    model.CLASSES = meta.get('CLASSES') or dataset.CLASSES
    return model


def _run_inference(model, data_loader, cfg, args, distributed):
    from mmdet_hpu.apis import build_test_wrapper, multi_device_test, single_device_test

    model = build_test_wrapper(model, cfg, distributed=distributed)
    if not distributed:
        return single_device_test(model, data_loader, args.show, args.show_dir,
                                  args.show_score_thr)
    if args.gpu_collect:
        if cfg.device != 'cuda':
            raise UserError(f'--gpu-collect only works on CUDA; the device is {cfg.device!r}. '
                            'Drop it (results are collected through --tmpdir).')
        from mmdet.apis import multi_gpu_test

        return multi_gpu_test(model, data_loader, args.tmpdir, gpu_collect=True)
    tmpdir = args.tmpdir or osp.join(cfg.get('work_dir') or '.', '.dist_test_tmp')
    return multi_device_test(model, data_loader, tmpdir)


def _report(outputs, dataset, cfg, args):
    import mmcv

    if args.out:
        print(f'\nwriting results to {args.out}')
        mmcv.dump(outputs, args.out)
    kwargs = args.eval_options or {}
    if args.format_only:
        _format_only(outputs, dataset, args, kwargs)
    if args.eval:
        eval_kwargs = {k: v for k, v in cfg.get('evaluation', {}).items()
                       if k not in _EVAL_HOOK_KEYS}
        eval_kwargs.update(dict(metric=args.eval, **kwargs))
        metric = dataset.evaluate(outputs, **eval_kwargs)
        print('\n'.join(f'{key}: {value}' for key, value in metric.items()))
        if args.work_dir is not None:
            mmcv.mkdir_or_exist(osp.abspath(args.work_dir))
            timestamp = time.strftime('%Y%m%d_%H%M%S', time.localtime())
            mmcv.dump(dict(config=args.config, metric=metric),
                      osp.join(args.work_dir, f'eval_{timestamp}.json'))
        return metric
    return None


def _format_only(outputs, dataset, args, kwargs):
    """``dataset.format_results`` into kept files, and say what was written where."""
    import mmcv

    prefix = _format_only_prefix(dataset, args)
    if prefix is not None:
        mmcv.mkdir_or_exist(osp.dirname(osp.abspath(prefix)))
        kwargs = dict(kwargs, jsonfile_prefix=prefix)
    formatted = dataset.format_results(outputs, **kwargs)
    files = formatted[0] if isinstance(formatted, tuple) else formatted
    if isinstance(files, dict):
        for kind, path in files.items():
            print(f'--format-only: {kind} results of {len(outputs)} images written to '
                  f'{osp.abspath(path)}')
    else:
        print(f'--format-only: results of {len(outputs)} images formatted by '
              f'{type(dataset).__name__}.format_results: {files}')


def run(args):
    """Test as configured by parsed ``args``; returns the metrics dict (or None)."""
    from mmcv.runner import get_dist_info
    from mmdet.datasets import build_dataloader, build_dataset
    from mmdet.utils import setup_multi_processes

    from mmdet_hpu.validation import preflight_test
    from mmdet_hpu.validation.metrics import check_eval_metrics

    device_name, mode = prepare_device(args)
    cfg = preflight_test(_prepare_test_config(load_config(args.config), args), args)
    cfg.device, cfg.execution_mode, cfg.autocast = device_name, mode, args.autocast
    setup_multi_processes(cfg)
    distributed = args.launcher != 'none'
    if distributed:
        from mmdet_hpu.dist import init_dist

        try:
            init_dist(args.launcher, device=cfg.device, **cfg.get('dist_params', {}))
        except KeyError as err:  # the launcher's environment is missing: a user error
            raise UserError(err.args[0]) from None
    dataset = build_dataset(cfg.data.test)
    loader_cfg = dict(samples_per_gpu=1, workers_per_gpu=2, dist=distributed, shuffle=False)
    loader_cfg.update(cfg.data.get('test_dataloader', {}))
    check_eval_metrics(dataset, args.eval)  # before inference, not after it
    data_loader = build_dataloader(dataset, **loader_cfg)
    model = _load_model(cfg, args, dataset)
    outputs = _run_inference(model, data_loader, cfg, args, distributed)
    if get_dist_info()[0] == 0:
        return _report(outputs, dataset, cfg, args)
    return None


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    with fail_on_user_error():
        run(args)


if __name__ == '__main__':
    main()
