"""Behaviour shared by the HPU epoch- and iteration-based runners."""
import copy
import itertools
from typing import Dict, Optional, Union

from mmcv.runner import Fp16OptimizerHook, Hook, OptimizerHook

from .hooks.optimizer import HPUOptimizerHook
from .hooks.throughput import HPUThroughputHook
from .log_buffer import DeviceLogBuffer

_FP16_HOOK_TYPES = ('Fp16OptimizerHook', 'GradientCumulativeFp16OptimizerHook')
_FP16_ERROR = ('{} is not supported by the HPU runners: its fp16 GradScaler is CUDA-only and '
               'Gaudi trains in bf16. Remove `fp16` / the Fp16OptimizerHook from the config '
               'and pass --autocast (bf16 autocast, no loss scaling needed).')


def upgrade_optimizer_config(
        optimizer_config: Union[Dict, Hook, None]) -> Union[Dict, Hook, None]:
    """Replace a stock ``OptimizerHook`` (config or instance) by :class:`HPUOptimizerHook`.

    A dict without ``type`` or with ``type='OptimizerHook'`` gets
    ``type='HPUOptimizerHook'`` (the input is not modified); a plain ``OptimizerHook``
    instance (mmdet's ``train_detector`` builds one in distributed runs) is rebuilt
    with the same arguments. Other hooks are returned unchanged.

    Args:
        optimizer_config (dict | Hook | None): ``cfg.optimizer_config`` or a hook.

    Returns:
        dict | Hook | None: The upgraded config or hook.

    Raises:
        ValueError: For fp16 optimizer hooks, pointing to ``--autocast``.
    """
    if isinstance(optimizer_config, dict):
        hook_type = optimizer_config.get('type', 'OptimizerHook')
        if hook_type in _FP16_HOOK_TYPES or hook_type is Fp16OptimizerHook:
            raise ValueError(_FP16_ERROR.format(hook_type))
        if hook_type in ('OptimizerHook', OptimizerHook):
            optimizer_config = copy.deepcopy(dict(optimizer_config))
            optimizer_config['type'] = 'HPUOptimizerHook'
        return optimizer_config
    if isinstance(optimizer_config, Fp16OptimizerHook):
        raise ValueError(_FP16_ERROR.format(type(optimizer_config).__name__))
    if type(optimizer_config) is OptimizerHook:
        return HPUOptimizerHook(grad_clip=optimizer_config.grad_clip,
                                detect_anomalous_params=optimizer_config.detect_anomalous_params)
    return optimizer_config


class HPURunnerMixin:
    """What the HPU runners add to mmcv's runners (mixed in before the mmcv runner).

    1. ``log_buffer`` is a :class:`DeviceLogBuffer` (one host read per log interval).
    2. ``log_interval`` holds ``log_config.interval`` for hooks (default 50).
    3. A stock ``OptimizerHook`` config or instance becomes :class:`HPUOptimizerHook`;
       fp16 optimizer hooks are refused with a pointer to ``--autocast``.
    4. An :class:`HPUThroughputHook` is registered with the training hooks unless
       one is already present.

    Args:
        skip_epochs (int): Warm-up epochs excluded from the mean images/s.
            Defaults to 1.
        *args, **kwargs: Passed to the mmcv runner.
    """

    #: ``by_epoch`` of the automatically registered throughput hook.
    _throughput_by_epoch = True

    def __init__(self, *args, skip_epochs: int = 1, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(skip_epochs, int) or skip_epochs < 0:
            raise ValueError(f'skip_epochs must be an int >= 0, but got {skip_epochs!r}')
        self.skip_epochs = skip_epochs
        self.log_buffer = DeviceLogBuffer()
        self.log_interval = 50

    def register_optimizer_hook(self, optimizer_config: Union[Dict, Hook, None]) -> None:
        """Register the optimizer hook, upgrading a stock ``OptimizerHook``."""
        super().register_optimizer_hook(upgrade_optimizer_config(optimizer_config))

    def register_logger_hooks(self, log_config: Optional[Dict]) -> None:
        """Register logger hooks and remember ``log_config['interval']``."""
        if log_config is not None:
            self.log_interval = log_config['interval']
        super().register_logger_hooks(log_config)

    def register_training_hooks(self, *args, **kwargs) -> None:
        """Register the stock training hooks, then the throughput hook if missing."""
        super().register_training_hooks(*args, **kwargs)
        if not any(isinstance(hook, HPUThroughputHook) for hook in self.hooks):
            # ABOVE_NORMAL, after the optimizer hook: after_train_iter runs after the
            # step; after_train_epoch runs before checkpointing and evaluation.
            self.register_hook(
                HPUThroughputHook(skip_epochs=self.skip_epochs,
                                  by_epoch=self._throughput_by_epoch),
                priority='ABOVE_NORMAL')


def check_positive_int(name: str, value: Optional[int]) -> Optional[int]:
    """Return ``value`` if it is None or a positive int, else raise ``ValueError``."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                              or value <= 0):
        raise ValueError(f'{name} must be a positive int or None, but got {value!r}')
    return value


class CappedLoader:
    """A data loader view that yields at most ``max_iters`` batches per pass.

    ``len()`` is the capped length, so loggers print ``[i/cap]`` and ``end_of_epoch``
    is right; every other attribute (``dataset``, ``sampler``, ``batch_size``...) is
    the wrapped loader's.

    Args:
        loader (Iterable): The wrapped data loader.
        max_iters (int): Batches per pass.
    """

    def __init__(self, loader, max_iters: int) -> None:
        self.loader = loader
        self.max_iters = max_iters

    def __len__(self) -> int:
        return min(len(self.loader), self.max_iters)

    def __iter__(self):
        return itertools.islice(iter(self.loader), self.max_iters)

    def __getattr__(self, name: str):
        if name == 'loader':  # not set yet (copy/unpickle): avoid infinite recursion
            raise AttributeError(name)
        return getattr(self.loader, name)


__all__ = ['CappedLoader', 'HPURunnerMixin', 'check_positive_int', 'upgrade_optimizer_config']
