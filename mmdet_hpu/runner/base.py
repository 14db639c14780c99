"""Behaviour shared by the HPU epoch- and iteration-based runners."""
import copy
import itertools
from typing import Callable, Dict, List, Optional, Union

from mmcv.runner import CheckpointHook, EvalHook, Fp16OptimizerHook, Hook, OptimizerHook

from ..checkpoint.hook import save_runner_checkpoint
from .hooks.optimizer import HPUOptimizerHook
from .hooks.throughput import HPUThroughputHook
from .log_buffer import DeviceLogBuffer
from .resume import (
    META_KEY,
    build_resume_state,
    capture_rng_state,
    parse_resume_state,
    preserved_rng_state,
)

#: Hook stages after which a checkpoint may be written or an evaluation run.
_SAVE_STAGES = ('after_train_iter', 'after_train_epoch')

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
       one is already present or the config switches it off with
       ``runner = dict(..., throughput_hook=False)`` (no images/s log entries then).
    5. Exact resume (:mod:`.resume`, ``docs/resume.md``): right before a
       ``CheckpointHook`` saves, ``meta['resume_state']`` (RNG states, data position)
       is refreshed; :meth:`resume` restores it and the epoch runner skips the
       batches already consumed. Evaluation hooks run with the RNG states preserved.
    6. Non-finite losses (:mod:`.nonfinite`): the optimizer hook's device record is
       read before a due checkpoint/evaluation and at each epoch end (only if the log
       read did not already cover it), and training stops with
       ``NonFiniteLossError`` after the hooks of the iteration whose read showed it.

    Args:
        skip_epochs (int): Warm-up epochs excluded from the mean images/s.
            Defaults to 1.
        throughput_hook (bool): Register the automatic :class:`HPUThroughputHook`.
            Defaults to True.
        *args, **kwargs: Passed to the mmcv runner.
    """

    #: ``by_epoch`` of the automatically registered throughput hook.
    _throughput_by_epoch = True

    def __init__(self, *args, skip_epochs: int = 1, throughput_hook: bool = True,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(skip_epochs, int) or skip_epochs < 0:
            raise ValueError(f'skip_epochs must be an int >= 0, but got {skip_epochs!r}')
        if not isinstance(throughput_hook, bool):
            raise ValueError(f'throughput_hook must be True or False, got {throughput_hook!r}')
        self.skip_epochs = skip_epochs
        self.throughput_hook = throughput_hook
        self.log_buffer = DeviceLogBuffer()
        self.log_interval = 50
        self._epoch_start_rng: Optional[Dict] = None
        self._resume_point = None
        self._loaded_meta: Dict = {}

    def resume(self,
               checkpoint: str,
               resume_optimizer: bool = True,
               map_location: Union[str, Callable] = 'default') -> None:
        """Stock ``resume``, plus the exact-resume state (RNG states, data position).

        ``'default'`` loads to the CPU when CUDA is absent (stock calls
        ``storage.cuda()``); the optimizer state then follows the parameters. A
        checkpoint with ``meta['resume_state']`` sets epoch and iteration from it (the
        stock ``meta['epoch']`` of a mid-epoch checkpoint names the next epoch) and
        the epoch runner continues inside the epoch (see :mod:`.resume`).
        """
        import torch

        if map_location == 'default' and not torch.cuda.is_available():
            map_location = 'cpu'
        self._loaded_meta = {}
        super().resume(checkpoint, resume_optimizer=resume_optimizer,
                       map_location=map_location)
        point = parse_resume_state(dict(self._loaded_meta), self.logger)
        if isinstance(self.meta, dict):
            self.meta.pop(META_KEY, None)  # rewritten with every checkpoint
        self._resume_point = point
        if point is not None:
            self._epoch, self._iter = point.epoch, point.iteration
            self.logger.info(f'exact resume: epoch {point.epoch + 1}, {point.inner_iter} '
                             f'batch(es) of it already done, iteration {point.iteration}')

    def load_checkpoint(self, filename: str, map_location: Union[str, Callable] = 'cpu',
                        strict: bool = False, **kwargs) -> Dict:
        """Stock ``load_checkpoint``; remembers the checkpoint's ``meta`` for :meth:`resume`."""
        checkpoint = super().load_checkpoint(filename, map_location=map_location, strict=strict,
                                             **kwargs)
        meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
        self._loaded_meta = meta if isinstance(meta, dict) else {}
        return checkpoint

    def save_checkpoint(self, out_dir: str, filename_tmpl: Optional[str] = None,
                        save_optimizer: bool = True, meta: Optional[Dict] = None,
                        create_symlink: bool = True) -> None:
        """Stock ``save_checkpoint`` (same file, meta and ``latest.pth``), written atomically.

        Evaluation hooks' ``save_best`` and user code call it; a kill during the write
        leaves no partial file. Object-store ``out_dir`` (``scheme://``) uses mmcv's path.
        """
        if '://' in str(out_dir):
            kwargs = {} if filename_tmpl is None else dict(filename_tmpl=filename_tmpl)
            super().save_checkpoint(out_dir, save_optimizer=save_optimizer, meta=meta,
                                    create_symlink=create_symlink, **kwargs)
            return
        save_runner_checkpoint(self, out_dir, filename_tmpl, save_optimizer, meta,
                               create_symlink)

    def take_resume_point(self):
        """The pending :class:`~.resume.ResumePoint` of the last :meth:`resume` (once)."""
        point, self._resume_point = self._resume_point, None
        return point

    def call_hook(self, fn_name: str) -> None:
        """Call ``fn_name`` of every hook, with the resume and non-finite checks around.

        Before a ``CheckpointHook`` or an evaluation hook that is due, the non-finite
        record is read and ``meta['resume_state']`` refreshed; evaluation runs with
        the RNG states preserved. After ``after_train_iter`` hooks, a non-finite loss
        found by the log read stops training.
        """
        if fn_name == 'after_train_epoch':
            self._check_nonfinite(read=True)
        for hook in self._hooks:
            if fn_name in _SAVE_STAGES and self._hook_due(hook, fn_name):
                self._before_due_hook(hook, fn_name)
                if isinstance(hook, EvalHook):
                    with preserved_rng_state():
                        getattr(hook, fn_name)(self)
                    continue
            getattr(hook, fn_name)(self)
        if fn_name == 'after_train_iter':
            self._check_nonfinite(read=False)

    def _hook_due(self, hook: Hook, fn_name: str) -> bool:
        """Whether ``hook`` saves a checkpoint / evaluates in this call (mmcv's rules)."""
        by_epoch = fn_name == 'after_train_epoch'
        if isinstance(hook, CheckpointHook):
            if hook.by_epoch != by_epoch:
                return False
            if by_epoch:
                return hook.every_n_epochs(self, hook.interval) or (
                    hook.save_last and hook.is_last_epoch(self))
            return hook.every_n_iters(self, hook.interval) or (
                hook.save_last and hook.is_last_iter(self))
        if isinstance(hook, EvalHook):
            return hook.by_epoch == by_epoch and hook._should_evaluate(self)
        return False

    def _before_due_hook(self, hook: Hook, fn_name: str) -> None:
        """Stop on a non-finite loss, then refresh the resume state for a checkpoint."""
        self._check_nonfinite(read=True)
        if isinstance(hook, CheckpointHook):
            if self.meta is None:
                self.meta = {}
            self.meta[META_KEY] = self._resume_state(fn_name)

    def _resume_state(self, fn_name: str) -> Dict:
        """The resume state of the position reached after this iteration / epoch."""
        if fn_name == 'after_train_epoch':
            return build_resume_state(self.epoch + 1, 0, self.iter, None)
        inner = self.inner_iter + 1
        if inner >= len(self.data_loader):  # last batch: same as the epoch end
            return build_resume_state(self.epoch + 1, 0, self.iter + 1, None)
        return build_resume_state(self.epoch, inner, self.iter + 1, self._epoch_start_rng)

    def _nonfinite_monitors(self) -> List:
        return [hook.nonfinite_monitor for hook in self._hooks
                if getattr(hook, 'nonfinite_monitor', None) is not None]

    def _check_nonfinite(self, read: bool) -> None:
        """Raise ``NonFiniteLossError`` if a (new, when ``read``) read shows a bad loss."""
        for monitor in self._nonfinite_monitors():
            if read:
                monitor.check_now()
            monitor.raise_if_found(self)

    def capture_epoch_start_rng(self) -> None:
        """Remember the RNG states right before the epoch's loader iterator is created."""
        self._epoch_start_rng = capture_rng_state()

    def register_optimizer_hook(self, optimizer_config: Union[Dict, Hook, None]) -> None:
        """Register the optimizer hook, upgrading a stock ``OptimizerHook``."""
        super().register_optimizer_hook(upgrade_optimizer_config(optimizer_config))

    def register_logger_hooks(self, log_config: Optional[Dict]) -> None:
        """Register logger hooks and remember ``log_config['interval']``."""
        if log_config is not None:
            self.log_interval = log_config['interval']
        super().register_logger_hooks(log_config)

    def register_training_hooks(self, *args, **kwargs) -> None:
        """Register the stock training hooks, then the throughput hook if missing and wanted."""
        super().register_training_hooks(*args, **kwargs)
        present = any(isinstance(hook, HPUThroughputHook) for hook in self.hooks)
        if self.throughput_hook and not present:
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
