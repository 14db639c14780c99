"""Iteration-based runner for HPU (works unchanged on CPU and CUDA)."""
from typing import Callable, Optional, Union

import torch
from mmcv.runner import RUNNERS, IterBasedRunner

from .base import HPURunnerMixin


@RUNNERS.register_module()
class HPUIterBasedRunner(HPURunnerMixin, IterBasedRunner):
    """:class:`mmcv.runner.IterBasedRunner` with the HPU additions.

    MRO: ``HPUIterBasedRunner -> HPURunnerMixin -> IterBasedRunner -> BaseRunner``.
    On top of :class:`HPURunnerMixin` (device log buffer, ``log_interval``,
    ``OptimizerHook`` upgrade, throughput hook with one window per pass over the
    data):

    1. ``resume(map_location='default')`` loads to the CPU when CUDA is absent (stock
       calls ``storage.cuda()``); the optimizer state then follows the parameters.

    Args:
        *args: Passed to :class:`mmcv.runner.IterBasedRunner`.
        max_iters_per_epoch (None): Not supported: cap the run with ``max_iters``.
        skip_epochs (int): Warm-up windows excluded from the mean images/s.
            Defaults to 1.
        **kwargs: Passed to :class:`mmcv.runner.IterBasedRunner`.

    Raises:
        ValueError: If ``max_iters_per_epoch`` is given.
    """

    _throughput_by_epoch = False

    def __init__(self, *args, max_iters_per_epoch: Optional[int] = None, **kwargs) -> None:
        if max_iters_per_epoch is not None:
            raise ValueError('HPUIterBasedRunner has no epochs to cap: set runner.max_iters '
                             f'instead of max_iters_per_epoch={max_iters_per_epoch!r}')
        super().__init__(*args, **kwargs)

    def resume(self,
               checkpoint: str,
               resume_optimizer: bool = True,
               map_location: Union[str, Callable] = 'default') -> None:
        """Stock ``resume``, with ``'default'`` meaning the CPU when CUDA is absent."""
        if map_location == 'default' and not torch.cuda.is_available():
            map_location = 'cpu'
        super().resume(checkpoint, resume_optimizer=resume_optimizer,
                       map_location=map_location)
