"""Apply command-line values to an mmcv ``Config``.

Each function changes one part of the config and raises ``ConfigError`` with a
message that says what is wrong and how to fix it.
"""
import os.path as osp

from mmdet_hpu.errors import ConfigError


def merge_cfg_options(cfg, cfg_options):
    """Merge ``--cfg-options`` and re-root every data path when ``data_root`` changes.

    mmdet configs build their paths as ``data_root + 'annotations/...'`` when the
    file is read, so overriding ``data_root`` alone would change nothing. Every string
    under ``cfg.data`` that starts with the old root is rewritten to the new one.
    """
    if not cfg_options:
        return cfg
    old_root = cfg.get('data_root')
    cfg.merge_from_dict(cfg_options)
    new_root = cfg.get('data_root')
    if old_root and new_root and new_root != old_root:
        if old_root.endswith('/') and not new_root.endswith('/'):
            new_root += '/'
            cfg.data_root = new_root
        cfg.data = _replace_prefix(cfg.data, old_root, new_root)
    return cfg


def _replace_prefix(node, old, new):
    if isinstance(node, str):
        return new + node[len(old):] if node.startswith(old) else node
    if isinstance(node, dict):
        for key in list(node.keys()):
            node[key] = _replace_prefix(node[key], old, new)
        return node
    if isinstance(node, (list, tuple)):
        return type(node)(_replace_prefix(v, old, new) for v in node)
    return node


def set_batch_sizes(cfg, batch_size=None, eval_batch_size=None):
    """Set the per-device train batch size and the evaluation batch size.

    The value goes where the config keeps it: ``data.train_dataloader`` when that holds
    ``samples_per_gpu``, else ``data.samples_per_gpu`` (mmdet's ``compat_cfg`` refuses both).
    """
    if batch_size is not None:
        train_loader = cfg.data.get('train_dataloader', {})
        if 'samples_per_gpu' in train_loader:
            train_loader['samples_per_gpu'] = batch_size
        else:
            cfg.data.samples_per_gpu = batch_size
    if eval_batch_size is not None:
        for key in ('val_dataloader', 'test_dataloader'):
            cfg.data.setdefault(key, {})['samples_per_gpu'] = eval_batch_size


def set_schedule(cfg, epochs=None, steps=None, log_interval=None):
    """Set the number of epochs, the per-epoch iteration cap and the log interval."""
    runner = cfg.get('runner')
    if epochs is not None:
        if runner is None or 'max_epochs' not in runner:
            raise ConfigError('--epochs needs an epoch-based runner, but the config has '
                              f'runner={runner}; set runner.max_iters with --cfg-options instead')
        runner.max_epochs = epochs
    if steps is not None:
        if runner is None or runner.get('type') != 'HPUEpochBasedRunner':
            raise ConfigError('--steps caps the iterations of each epoch, so it needs an '
                              'epoch-based runner (EpochBasedRunner, upgraded to '
                              f'HPUEpochBasedRunner), but the config has runner={runner}; '
                              'set runner.max_iters with --cfg-options instead')
        runner.max_iters_per_epoch = steps
    if log_interval is not None:
        cfg.log_config.interval = log_interval


def set_work_dir(cfg, work_dir, config_path):
    """work_dir priority: command line > config file > ``./work_dirs/<config name>``."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def set_nonfinite_loss(cfg, mode):
    """Set ``optimizer_config.nonfinite_loss`` (``--on-nonfinite-loss``; docs/resume.md)."""
    if mode is None:
        return
    opt_cfg = cfg.get('optimizer_config')
    hook_type = (opt_cfg or {}).get('type', 'OptimizerHook')
    if cfg.get('fp16') is not None or hook_type not in ('OptimizerHook', 'HPUOptimizerHook'):
        raise ConfigError(f'--on-nonfinite-loss needs the plugin optimizer hook '
                          f"(optimizer_config without type, or type='HPUOptimizerHook'), but the "
                          f'config has optimizer_config={opt_cfg} and fp16={cfg.get("fp16")}; '
                          'drop the flag or the custom optimizer hook / fp16')
    if opt_cfg is None:
        cfg.optimizer_config = dict(grad_clip=None)
    cfg.optimizer_config['nonfinite_loss'] = mode


def set_dist_timeout(cfg, seconds):
    """Set ``dist_params.timeout`` in seconds (``--dist-timeout``)."""
    if seconds is not None:
        cfg.dist_params = dict(cfg.get('dist_params') or {}, timeout=seconds)


def check_hook_lists(cfg):
    """Refuse ``log_config.hooks`` / ``custom_hooks`` entries that are not hook dicts.

    ``--cfg-options log_config.hooks=[dict(type=...)]`` yields strings (mmcv's
    ``DictAction`` cannot express a list of dicts); mmcv would fail much later with a
    raw ``TypeError``, after the work dir was written.
    """
    for key, hooks in (('log_config.hooks', (cfg.get('log_config') or {}).get('hooks')),
                       ('custom_hooks', cfg.get('custom_hooks'))):
        if hooks is None:
            continue
        bad = [h for h in hooks if not (isinstance(h, dict) and 'type' in h)] \
            if isinstance(hooks, (list, tuple)) else [hooks]
        if bad:
            raise ConfigError(
                f'{key} must be a list of hook dicts such as dict(type=\'TextLoggerHook\'), '
                f'but it holds {bad[0]!r} ({type(bad[0]).__name__}). --cfg-options cannot '
                'express a list of dicts: for TensorBoard pass --tensorboard; for other '
                'hooks write a small config that inherits yours (_base_ = [\'your_config.py\']) '
                f'and sets {key} there.')


def add_tensorboard(cfg, enabled):
    """Add mmcv's ``TensorboardLoggerHook`` to ``log_config.hooks`` (``--tensorboard``).

    Events go to ``<work_dir>/tf_logs``; the hook logs at ``log_config.interval`` with
    the ``by_epoch`` of the config's first logger hook.
    """
    if not enabled:
        return
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        raise ConfigError("--tensorboard needs the tensorboard package, which is not "
                          "installed: pip install 'mmdet-hpu[logs]' (or pip install "
                          'tensorboard), or drop --tensorboard.') from None
    log_config = cfg.setdefault('log_config', dict(interval=50, hooks=[]))
    hooks = list(log_config.get('hooks') or [])
    if any(h.get('type') == 'TensorboardLoggerHook' for h in hooks):
        return
    by_epoch = hooks[0].get('by_epoch', True) if hooks else True
    hooks.append(dict(type='TensorboardLoggerHook', by_epoch=by_epoch))
    log_config['hooks'] = hooks


def add_profiler(cfg, steps):
    """Add :class:`HPUProfilerHook` recording ``steps`` iterations (``--profile STEPS``)."""
    if steps is None:
        return
    hooks = [h for h in (cfg.get('custom_hooks') or []) if h.get('type') != 'HPUProfilerHook']
    hooks.append(dict(type='HPUProfilerHook', steps=steps, priority='LOWEST'))
    cfg.custom_hooks = hooks
