"""Epoch-based runner for HPU (works unchanged on CPU and CUDA)."""
import time
from typing import Optional

from mmcv.runner import RUNNERS, EpochBasedRunner

from .base import CappedLoader, HPURunnerMixin, check_positive_int


@RUNNERS.register_module()
class HPUEpochBasedRunner(HPURunnerMixin, EpochBasedRunner):
    """:class:`mmcv.runner.EpochBasedRunner` with the HPU additions.

    MRO: ``HPUEpochBasedRunner -> HPURunnerMixin -> EpochBasedRunner -> BaseRunner``.
    On top of :class:`HPURunnerMixin` (device log buffer, ``log_interval``,
    ``OptimizerHook`` upgrade, throughput hook):

    1. ``max_iters_per_epoch`` (the CLI ``--steps``) ends every epoch after that many
       iterations; ``len(runner.data_loader)`` and ``runner.max_iters`` follow the cap.
    2. The stock 2 s "epoch transition" sleep happens before ``before_train_epoch``,
       so it is not counted in the epoch time.

    Config: ``runner = dict(type='HPUEpochBasedRunner', max_epochs=12,
    max_iters_per_epoch=None, skip_epochs=1)``.

    Args:
        *args: Passed to :class:`mmcv.runner.EpochBasedRunner`.
        max_iters_per_epoch (int, optional): Iteration cap per epoch. Defaults to None.
        skip_epochs (int): Warm-up epochs excluded from the mean images/s. Defaults to 1.
        **kwargs: Passed to :class:`mmcv.runner.EpochBasedRunner`.

    Raises:
        ValueError: If ``max_iters_per_epoch`` is not a positive int or None.
    """

    def __init__(self, *args, max_iters_per_epoch: Optional[int] = None, **kwargs) -> None:
        self.max_iters_per_epoch = check_positive_int('max_iters_per_epoch',
                                                      max_iters_per_epoch)
        super().__init__(*args, **kwargs)

    def train(self, data_loader, **kwargs) -> None:
        """Train one epoch (stock loop, capped, sleep moved before the epoch hooks)."""
        data_loader = self._capped(data_loader)
        self.model.train()
        self.mode = 'train'
        self.data_loader = data_loader
        self._max_iters = self._max_epochs * len(self.data_loader)
        time.sleep(2)  # stock: prevent possible deadlock during epoch transition
        self.call_hook('before_train_epoch')
        for i, data_batch in enumerate(self.data_loader):
            self.data_batch = data_batch
            self._inner_iter = i
            self.call_hook('before_train_iter')
            self.run_iter(data_batch, train_mode=True, **kwargs)
            self.call_hook('after_train_iter')
            del self.data_batch
            self._iter += 1
        self.call_hook('after_train_epoch')
        self._epoch += 1

    def run(self, data_loaders, workflow, max_epochs=None, **kwargs) -> None:
        """Stock ``run``, with the training loaders capped (so ``max_iters`` is right)."""
        if isinstance(data_loaders, list) and len(data_loaders) == len(workflow):
            data_loaders = [self._capped(loader) if mode == 'train' else loader
                            for loader, (mode, _) in zip(data_loaders, workflow)]
        super().run(data_loaders, workflow, max_epochs=max_epochs, **kwargs)

    def _capped(self, data_loader):
        if self.max_iters_per_epoch is None or isinstance(data_loader, CappedLoader):
            return data_loader
        return CappedLoader(data_loader, self.max_iters_per_epoch)
