"""``mmdet-hpu-train CONFIG``: mmdet 2.28's ``tools/train.py`` on hpu, cuda or cpu.

The flow follows mmdet's script step for step; the differences are the device
selection (``--device``, execution mode, autocast), the Gaudi recipe's
convenience flags, and the plugin's ``train_detector`` (device wrappers, HPU
runner and hooks) instead of mmdet's CUDA-only wiring.
"""
import argparse
import copy
import os.path as osp
import time

from . import args as cli_args
from .overrides import (
    add_profiler,
    add_tensorboard,
    check_hook_lists,
    merge_cfg_options,
    set_batch_sizes,
    set_dist_timeout,
    set_nonfinite_loss,
    set_schedule,
    set_work_dir,
)
from .runtime import UserError, fail_on_user_error, load_config, prepare_device


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train an mmdet detector on hpu, cuda or cpu')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--resume-from', help='the checkpoint file to resume from')
    parser.add_argument('--auto-resume', action='store_true',
                        help='resume from the latest checkpoint in the work dir automatically')
    parser.add_argument('--no-validate', action='store_true',
                        help='do not evaluate the checkpoint during training')
    gpus = parser.add_mutually_exclusive_group()
    gpus.add_argument('--gpus', type=int, help='(deprecated in mmdet) number of gpus to use')
    gpus.add_argument('--gpu-ids', type=int, nargs='+', help='(deprecated in mmdet) ids of gpus')
    gpus.add_argument('--gpu-id', type=int, default=0, help='id of the device to use')
    parser.add_argument('--seed', type=int, default=None, help='random seed')
    parser.add_argument('--diff-seed', action='store_true',
                        help='use a different seed on each rank')
    parser.add_argument('--deterministic', action='store_true',
                        help='deterministic algorithms (cudnn / torch)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by the total batch size')
    cli_args.add_cfg_options(parser)
    cli_args.add_dist_args(parser)
    cli_args.add_device_args(parser)
    cli_args.add_safety_args(parser)
    recipe = parser.add_argument_group('Gaudi recipe shortcuts (override the config)')
    recipe.add_argument('--batch-size', type=cli_args.positive_int,
                        help='training images per device (data.samples_per_gpu)')
    recipe.add_argument('--eval-batch-size', type=cli_args.positive_int,
                        help='evaluation images per device (data.val_dataloader.samples_per_gpu)')
    recipe.add_argument('--epochs', '--epoch', dest='epochs', type=cli_args.positive_int,
                        help='number of epochs (runner.max_epochs)')
    recipe.add_argument('--steps', type=cli_args.positive_int,
                        help='cap the iterations of each epoch (runner.max_iters_per_epoch)')
    recipe.add_argument('--log-interval', type=cli_args.positive_int,
                        help='iterations between log lines and host reads (log_config.interval)')
    recipe.add_argument('--bucket-cap-mb', type=cli_args.positive_int, default=None,
                        help='DDP bucket size; on HPU also the first bucket (default 250 on HPU)')
    parser.add_argument('--on-nonfinite-loss', choices=('stop', 'skip'), default=None,
                        help='NaN/Inf loss: stop with an error naming the iteration and loss '
                             'terms, keeping the last good checkpoint (default), or skip the '
                             'optimizer step (one host read per iteration); docs/resume.md')
    parser.add_argument('--dist-timeout', type=cli_args.positive_int, default=None,
                        metavar='SECONDS',
                        help='distributed: seconds a rank waits for the others before it exits '
                             'with an error (default 1800)')
    parser.add_argument('--tensorboard', action='store_true',
                        help="also log to TensorBoard (mmcv's TensorboardLoggerHook; events in "
                             "<work_dir>/tf_logs; needs pip install 'mmdet-hpu[logs]')")
    parser.add_argument('--profile', type=cli_args.positive_int, default=None, metavar='STEPS',
                        help='record STEPS training iterations (after 2 warm-up iterations) '
                             'with torch.profiler, HPU activities on Gaudi; Chrome trace and '
                             'op table in <work_dir>/profile/')
    args = parser.parse_args(argv)
    return cli_args.finalize_common(args)


def apply_args_to_config(cfg, args):
    """Apply every command-line value of ``args`` to ``cfg`` (no side effects elsewhere).

    Stock runner / optimizer hook types are upgraded to the plugin's first (so
    ``--steps`` works for a stock ``EpochBasedRunner`` config, and the config dumped
    in the work dir names the types that run).
    """
    from mmdet_hpu.apis.config_types import upgrade_config_types

    merge_cfg_options(cfg, args.cfg_options)
    check_hook_lists(cfg)
    upgrade_config_types(cfg)
    add_tensorboard(cfg, args.tensorboard)
    add_profiler(cfg, args.profile)
    if args.auto_scale_lr:
        cfg.auto_scale_lr = dict(cfg.get('auto_scale_lr') or {}, enable=True)
        cfg.auto_scale_lr.setdefault('base_batch_size', 64)
    set_batch_sizes(cfg, args.batch_size, args.eval_batch_size)
    set_schedule(cfg, args.epochs, args.steps, args.log_interval)
    set_work_dir(cfg, args.work_dir, args.config)
    if args.resume_from is not None:
        cfg.resume_from = args.resume_from
    cfg.auto_resume = args.auto_resume
    if args.gpu_ids is not None:
        cfg.gpu_ids = args.gpu_ids[0:1]
    elif args.gpus is not None:
        cfg.gpu_ids = range(1)
    else:
        cfg.gpu_ids = [args.gpu_id]
    if args.bucket_cap_mb is not None:
        cfg.bucket_cap_mb = args.bucket_cap_mb
    set_nonfinite_loss(cfg, args.on_nonfinite_loss)
    set_dist_timeout(cfg, args.dist_timeout)
    return cfg


def _init_distributed(args, cfg):
    if args.launcher == 'none':
        return False
    from mmcv.runner import get_dist_info

    from mmdet_hpu.dist import init_dist

    try:
        init_dist(args.launcher, device=cfg.device, bucket_cap_mb=cfg.get('bucket_cap_mb'),
                  **cfg.get('dist_params', {}))
    except KeyError as err:  # the launcher's environment is missing: a user error
        raise UserError(err.args[0]) from None
    _, world_size = get_dist_info()
    cfg.gpu_ids = range(world_size)
    return True


def _build_datasets(cfg):
    from mmdet.datasets import build_dataset

    datasets = [build_dataset(cfg.data.train)]
    if len(cfg.workflow) == 2:
        val_dataset = copy.deepcopy(cfg.data.val)
        val_dataset.pipeline = cfg.data.train.get('pipeline',
                                                  cfg.data.train.get('dataset', {}).get('pipeline'))
        datasets.append(build_dataset(val_dataset))
    return datasets


def run(args):
    """Train as configured by parsed ``args``; returns the work dir."""
    import mmcv
    import torch.distributed as dist
    from mmdet import __version__ as mmdet_version
    from mmdet.apis import init_random_seed, set_random_seed
    from mmdet.models import build_detector
    from mmdet.utils import collect_env, get_root_logger, setup_multi_processes

    from mmdet_hpu.apis import train_detector
    from mmdet_hpu.apis.work_dir_lock import lock_work_dir, release_work_dir
    from mmdet_hpu.checkpoint import use_atomic_checkpoints
    from mmdet_hpu.validation import preflight_train

    device_name, mode = prepare_device(args)
    cfg = apply_args_to_config(load_config(args.config), args)
    use_atomic_checkpoints(preflight_train(cfg, args))  # before anything is written
    cfg.device, cfg.execution_mode, cfg.autocast = device_name, mode, args.autocast
    setup_multi_processes(cfg)
    distributed = _init_distributed(args, cfg)
    lock_work_dir(cfg.work_dir, distributed)  # one training per work dir

    mmcv.mkdir_or_exist(osp.abspath(cfg.work_dir))
    cfg.dump(osp.join(cfg.work_dir, osp.basename(args.config)))
    timestamp = time.strftime('%Y%m%d_%H%M%S', time.localtime())
    logger = get_root_logger(log_file=osp.join(cfg.work_dir, f'{timestamp}.log'),
                             log_level=cfg.log_level)
    env_info = '\n'.join(f'{k}: {v}' for k, v in collect_env().items())
    logger.info('Environment info:\n' + '-' * 60 + '\n' + env_info + '\n' + '-' * 60)
    logger.info(f'Device: {cfg.device}, execution mode: {cfg.execution_mode}, '
                f'autocast (bf16): {cfg.autocast}, distributed: {distributed}')
    logger.info(f'Config:\n{cfg.pretty_text}')
    meta = dict(env_info=env_info, config=cfg.pretty_text, exp_name=osp.basename(args.config))

    seed = init_random_seed(args.seed, device=cfg.device)
    seed = seed + dist.get_rank() if args.diff_seed else seed
    logger.info(f'Set random seed to {seed}, deterministic: {args.deterministic}')
    set_random_seed(seed, deterministic=args.deterministic)
    cfg.seed = meta['seed'] = seed

    model = build_detector(cfg.model, train_cfg=cfg.get('train_cfg'),
                           test_cfg=cfg.get('test_cfg'))
    model.init_weights()
    datasets = _build_datasets(cfg)
    if cfg.checkpoint_config is not None:
        cfg.checkpoint_config.meta = dict(mmdet_version=mmdet_version,
                                          CLASSES=datasets[0].CLASSES)
    model.CLASSES = datasets[0].CLASSES
    train_detector(model, datasets, cfg, distributed=distributed,
                   validate=not args.no_validate, timestamp=timestamp, meta=meta)
    release_work_dir(cfg.work_dir)
    return cfg.work_dir


def main(argv=None):
    from mmdet_hpu.dist import exit_on_peer_failure

    args = parse_args(argv)
    with fail_on_user_error(), exit_on_peer_failure():
        run(args)


if __name__ == '__main__':
    main()
