"""Config-to-object choices shared by the train and test entry points."""
import copy
import functools
import logging

from mmcv.runner import HOOKS, RUNNERS

from .. import device as hpu_device
from ..parallel import HPUDataParallel, HPUDistributedDataParallel

logger = logging.getLogger('mmdet')

#: Stock runner -> plugin runner, used when the plugin runner is registered.
RUNNER_UPGRADES = {'EpochBasedRunner': 'HPUEpochBasedRunner',
                   'IterBasedRunner': 'HPUIterBasedRunner'}
DEFAULT_RUNNER = 'HPUEpochBasedRunner'


def registered(registry, name: str) -> bool:
    """Whether ``name`` is registered (looked up at call time, so late registration counts)."""
    return registry.get(name) is not None


def cfg_device(cfg) -> str:
    """``cfg.device`` checked against the machine (``'auto'``/None resolved)."""
    device = hpu_device.resolve_device(cfg.get('device') or 'auto')
    hpu_device.check_mode_for_device(cfg.get('execution_mode'), device)
    return device


def runner_cfg(cfg) -> dict:
    """``cfg.runner`` with the plugin runner type when available.

    A missing runner defaults to ``HPUEpochBasedRunner``; stock Epoch/IterBasedRunner
    are upgraded to their HPU variants when registered. If the plugin runner is not
    registered, the stock one is used.
    """
    runner = copy.deepcopy(dict(cfg.get('runner') or dict(type=DEFAULT_RUNNER)))
    runner.setdefault('type', DEFAULT_RUNNER)
    stock = {v: k for k, v in RUNNER_UPGRADES.items()}
    wanted = RUNNER_UPGRADES.get(runner['type'], runner['type'])
    if registered(RUNNERS, wanted):
        runner['type'] = wanted
    elif wanted in stock:
        logger.warning(f'{wanted} is not registered; falling back to {stock[wanted]}.')
        runner['type'] = stock[wanted]
    return runner


def base_runner_type(runner_type: str) -> str:
    """Stock name for ``build_dataloader``'s ``runner_type`` check."""
    return {v: k for k, v in RUNNER_UPGRADES.items()}.get(runner_type, runner_type)


def hook_type(plugin_name: str, stock):
    """Registered plugin hook class ``plugin_name``, else ``stock``."""
    return HOOKS.get(plugin_name) or stock


def wrap_model(model, cfg, device: str, distributed: bool):
    """Wrap ``model`` in the plugin DP/DDP wrapper for ``device`` (the same on every device)."""
    kwargs = dict(device=device, autocast=bool(cfg.get('autocast', False)),
                  keep_gt_on_host=bool(cfg.get('keep_gt_on_host', False)))
    if distributed:
        return HPUDistributedDataParallel(
            model, find_unused_parameters=cfg.get('find_unused_parameters', False),
            bucket_cap_mb=cfg.get('bucket_cap_mb'), **kwargs)
    return HPUDataParallel(model, device_ids=cfg.get('gpu_ids'), **kwargs)


def maybe_compile(model, cfg) -> None:
    """In compile mode, compile the model's device work in place.

    Models with ``compile_graphs`` (``HPUYOLOV3``) compile their tensor-only train/test graphs,
    which never see image metadata: one graph per (batch size, GT bucket). Other models get
    ``model.forward`` compiled. Either way only attributes are replaced, so the module, its
    ``state_dict`` and its checkpoints stay those of stock mmdet. ``cfg.compile_backend``
    overrides the device's backend (e.g. ``'eager'`` to count graphs without a compiler).
    """
    if cfg.get('execution_mode') != 'compile':
        return
    backend = cfg.get('compile_backend')
    compiler = functools.partial(hpu_device.compile_model,
                                 **({} if backend is None else dict(backend=backend)))
    if hasattr(model, 'compile_graphs'):
        model.compile_graphs(compiler)
    else:
        model.forward = compiler(model.forward)
