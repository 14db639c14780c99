"""``train_detector`` for hpu, cuda and cpu, mirroring mmdet 2.28's ``mmdet/apis/train.py``.

Differences from mmdet's version:

1. The model is wrapped in :class:`HPUDataParallel` / :class:`HPUDistributedDataParallel`
   for ``cfg.device`` (no ``build_dp``/``build_ddp``, whose ``build_ddp`` rejects hpu),
   with ``cfg.autocast``, ``cfg.keep_gt_on_host`` and ``cfg.bucket_cap_mb``.
2. ``cfg.execution_mode == 'compile'`` compiles the detector's ``forward``.
3. The runner defaults to ``HPUEpochBasedRunner`` (stock runners are upgraded to
   their HPU variants), a stock ``optimizer_config`` without ``type`` becomes
   ``HPUOptimizerHook``, and evaluation uses ``HPUEvalHook``/``HPUDistEvalHook``,
   each only when registered; otherwise the stock class is used.
4. Distributed evaluation collects results on the CPU through a tmpdir
   (``gpu_collect`` only on CUDA). fp16 loss scaling is refused on HPU (use bf16).
5. ``auto_resume`` picks the newest checkpoint that loads
   (:func:`~.auto_resume.find_resume_checkpoint`), skipping truncated ones.
"""
import os.path as osp

from mmcv.runner import (
    HOOKS,
    DistSamplerSeedHook,
    EpochBasedRunner,
    Fp16OptimizerHook,
    OptimizerHook,
    build_runner,
)
from mmdet.apis.train import auto_scale_lr
from mmdet.core import DistEvalHook, EvalHook, build_optimizer
from mmdet.datasets import build_dataloader, build_dataset, replace_ImageToTensor
from mmdet.utils import compat_cfg, get_root_logger

from .. import optimizers  # noqa: F401  (registers HPUFusedSGD / HPUFusedAdamW)
from ..runner.hooks.compile_monitor import HPUCompileMonitorHook
from ..validation.metrics import check_eval_metrics
from ._wiring import (
    base_runner_type,
    cfg_device,
    hook_type,
    maybe_compile,
    registered,
    runner_cfg,
    wrap_model,
)
from .auto_resume import find_resume_checkpoint


def _train_loaders(dataset, cfg, distributed: bool, runner_type: str) -> list:
    defaults = dict(samples_per_gpu=2, workers_per_gpu=2, num_gpus=len(cfg.gpu_ids),
                    dist=distributed, seed=cfg.seed, runner_type=base_runner_type(runner_type),
                    persistent_workers=False)
    loader_cfg = {**defaults, **cfg.data.get('train_dataloader', {})}
    if loader_cfg['workers_per_gpu'] == 0:
        # torch refuses persistent workers without workers; a config may ask for both.
        loader_cfg['persistent_workers'] = False
    return [build_dataloader(ds, **loader_cfg) for ds in dataset]


def _optimizer_hook(cfg, device: str, distributed: bool):
    """The optimizer hook (config or object) to register, see the module docstring."""
    optimizer_config = dict(cfg.get('optimizer_config') or {})
    fp16_cfg = cfg.get('fp16', None)
    if fp16_cfg is not None:
        if device == 'hpu':
            raise NotImplementedError('fp16 loss scaling is not supported on HPU; remove '
                                      '`fp16` from the config and use bf16 autocast instead.')
        return Fp16OptimizerHook(**optimizer_config, **fp16_cfg, distributed=distributed)
    if 'type' in optimizer_config:
        return optimizer_config
    if registered(HOOKS, 'HPUOptimizerHook'):
        return dict(type='HPUOptimizerHook', **optimizer_config)
    return OptimizerHook(**optimizer_config) if distributed else optimizer_config


def _register_eval_hook(runner, cfg, device: str, distributed: bool) -> None:
    loader_args = {**dict(samples_per_gpu=1, workers_per_gpu=2, dist=distributed, shuffle=False,
                          persistent_workers=False), **cfg.data.get('val_dataloader', {})}
    if loader_args['samples_per_gpu'] > 1:
        # Support batch_size > 1 in validation: ImageToTensor -> DefaultFormatBundle.
        cfg.data.val.pipeline = replace_ImageToTensor(cfg.data.val.pipeline)
    val_dataset = build_dataset(cfg.data.val, dict(test_mode=True))
    val_dataloader = build_dataloader(val_dataset, **loader_args)
    eval_cfg = dict(cfg.get('evaluation', {}))
    # Before training, not after the first epoch's validation.
    if 'metric' in eval_cfg:
        check_eval_metrics(val_dataset, eval_cfg['metric'], 'evaluation.metric')
    eval_cfg['by_epoch'] = base_runner_type(runner_cfg(cfg)['type']) != 'IterBasedRunner'
    if distributed:
        eval_cfg.setdefault('tmpdir', osp.join(cfg.work_dir, '.eval_hook'))
        eval_cfg['gpu_collect'] = bool(eval_cfg.get('gpu_collect')) and device == 'cuda'
        hook_cls = hook_type('HPUDistEvalHook', DistEvalHook)
    else:
        hook_cls = hook_type('HPUEvalHook', EvalHook)
    runner.register_hook(hook_cls(val_dataloader, **eval_cfg), priority='LOW')


def _load_or_resume(runner, cfg) -> None:
    if cfg.resume_from is None and cfg.get('auto_resume'):
        cfg.resume_from = find_resume_checkpoint(cfg.work_dir)
    if cfg.resume_from:
        runner.resume(cfg.resume_from, map_location='cpu')
    elif cfg.load_from:
        runner.load_checkpoint(cfg.load_from, map_location='cpu')


def train_detector(model, dataset, cfg, distributed=False, validate=False, timestamp=None,
                   meta=None):
    """Train ``model`` on ``dataset`` following ``cfg``, on ``cfg.device``.

    Same signature and config keys as ``mmdet.apis.train_detector``, plus the
    plugin keys ``device``, ``execution_mode``, ``autocast``, ``keep_gt_on_host`` and
    ``bucket_cap_mb`` (all optional).

    Args:
        model (nn.Module): Detector built by ``build_detector`` (not wrapped).
        dataset (Dataset | list[Dataset]): Training set(s), one per workflow stage.
        cfg (mmcv.Config): Full config.
        distributed (bool): The process group is initialised (see ``mmdet_hpu.dist``).
        validate (bool): Register the evaluation hook.
        timestamp (str, optional): Name of the log files.
        meta (dict, optional): Stored in checkpoints.
    """
    cfg = compat_cfg(cfg)
    logger = get_root_logger(log_level=cfg.log_level)
    device = cfg_device(cfg)
    dataset = dataset if isinstance(dataset, (list, tuple)) else [dataset]
    cfg.runner = runner_cfg(cfg)
    data_loaders = _train_loaders(dataset, cfg, distributed, cfg.runner['type'])

    maybe_compile(model, cfg)
    model = wrap_model(model, cfg, device, distributed)
    auto_scale_lr(cfg, distributed, logger)
    optimizer = build_optimizer(model, cfg.optimizer)
    runner = build_runner(cfg.runner, default_args=dict(
        model=model, optimizer=optimizer, work_dir=cfg.work_dir, logger=logger, meta=meta))
    runner.timestamp = timestamp  # same name for .log and .log.json

    runner.register_training_hooks(
        cfg.lr_config, _optimizer_hook(cfg, device, distributed), cfg.checkpoint_config,
        cfg.log_config, cfg.get('momentum_config', None),
        custom_hooks_config=cfg.get('custom_hooks', None))
    if distributed and isinstance(runner, EpochBasedRunner):
        runner.register_hook(DistSamplerSeedHook())
    if cfg.get('execution_mode') == 'compile':
        runner.register_hook(HPUCompileMonitorHook(), priority='LOW')
    if validate:
        _register_eval_hook(runner, cfg, device, distributed)
    _load_or_resume(runner, cfg)
    runner.run(data_loaders, cfg.workflow)
    return runner
