"""Epoch-based runner for HPU (works unchanged on CPU and CUDA)."""
import time
from typing import Iterator, Optional

from mmcv.runner import RUNNERS, EpochBasedRunner

from .base import CappedLoader, HPURunnerMixin, check_positive_int
from .resume import restore_rng_state, skip_batches


@RUNNERS.register_module()
class HPUEpochBasedRunner(HPURunnerMixin, EpochBasedRunner):
    """:class:`mmcv.runner.EpochBasedRunner` with the HPU additions.

    MRO: ``HPUEpochBasedRunner -> HPURunnerMixin -> EpochBasedRunner -> BaseRunner``.
    On top of :class:`HPURunnerMixin` (device log buffer, ``log_interval``,
    ``OptimizerHook`` upgrade, throughput hook):

    1. ``max_iters_per_epoch`` (the CLI ``--steps``) ends every epoch after that many
       iterations; ``len(runner.data_loader)`` and ``runner.max_iters`` follow the cap.
    2. The stock 2 s "epoch transition" sleep happens before ``before_train_epoch``,
       so it is not counted in the epoch time, and its length is ``epoch_sleep``
       (mmcv sleeps to avoid a rare data-loader deadlock at epoch transitions; short
       single-device runs, such as the demo, may set 0).
    3. Exact resume (``docs/resume.md``): the RNG states are captured right before
       each epoch's loader iterator is created; after :meth:`resume` from a mid-epoch
       checkpoint, the first epoch sets those states, creates the iterator (same
       sampler order), fetches and discards the batches already consumed, then sets
       the RNG states of the checkpoint and continues with the next batch.

    Config: ``runner = dict(type='HPUEpochBasedRunner', max_epochs=12,
    max_iters_per_epoch=None, skip_epochs=1, epoch_sleep=2)``.

    Args:
        *args: Passed to :class:`mmcv.runner.EpochBasedRunner`.
        max_iters_per_epoch (int, optional): Iteration cap per epoch. Defaults to None.
        skip_epochs (int): Warm-up epochs excluded from the mean images/s. Defaults to 1.
        epoch_sleep (float): Seconds slept before each training epoch, as mmcv does.
            Defaults to 2.
        **kwargs: Passed to :class:`mmcv.runner.EpochBasedRunner`.

    Raises:
        ValueError: If ``max_iters_per_epoch`` is not a positive int or None.
    """

    def __init__(self, *args, max_iters_per_epoch: Optional[int] = None,
                 epoch_sleep: float = 2, **kwargs) -> None:
        self.max_iters_per_epoch = check_positive_int('max_iters_per_epoch',
                                                      max_iters_per_epoch)
        if not isinstance(epoch_sleep, (int, float)) or epoch_sleep < 0:
            raise ValueError(f'epoch_sleep must be a number >= 0 (seconds), got {epoch_sleep!r}')
        self.epoch_sleep = epoch_sleep
        super().__init__(*args, **kwargs)

    def train(self, data_loader, **kwargs) -> None:
        """Train one epoch (stock loop, capped, sleep moved before the epoch hooks)."""
        data_loader = self._capped(data_loader)
        self.model.train()
        self.mode = 'train'
        self.data_loader = data_loader
        self._max_iters = self._max_epochs * len(self.data_loader)
        time.sleep(self.epoch_sleep)  # stock: prevent possible deadlock during epoch transition
        point = self.take_resume_point()
        if point is not None and not point.mid_epoch:
            restore_rng_state(point.rng)
        self.call_hook('before_train_epoch')
        for i, data_batch in self._epoch_batches(point):
            self.data_batch = data_batch
            self._inner_iter = i
            self.call_hook('before_train_iter')
            self.run_iter(data_batch, train_mode=True, **kwargs)
            self.call_hook('after_train_iter')
            del self.data_batch
            self._iter += 1
        self.call_hook('after_train_epoch')
        self._epoch += 1

    def _epoch_batches(self, point) -> Iterator:
        """``enumerate`` over this epoch's batches, positioned after a mid-epoch resume."""
        if point is None or not point.mid_epoch:
            self.capture_epoch_start_rng()
            return enumerate(self.data_loader)
        restore_rng_state(point.epoch_rng)
        self.capture_epoch_start_rng()
        batches = iter(self.data_loader)
        if getattr(self.data_loader, 'persistent_workers', False) and \
                getattr(self.data_loader, 'num_workers', 0) > 0:
            self.logger.warning('persistent_workers=True: the loader workers start with fresh '
                                'RNG states, so augmentations after this resume differ from an '
                                'uninterrupted run (see docs/resume.md)')
        skipped = skip_batches(batches, point.inner_iter)
        if skipped < point.inner_iter:
            self.logger.warning(f'the checkpoint had consumed {point.inner_iter} batches of '
                                f'epoch {self.epoch + 1}, but the loader has only {skipped}: '
                                'the dataset or batch size changed; continuing with the next '
                                'epoch')
        self.logger.info(f'skipped {skipped} batch(es) already trained in epoch {self.epoch + 1}')
        restore_rng_state(point.rng)
        return enumerate(batches, start=skipped)

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
