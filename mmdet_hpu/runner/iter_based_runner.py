"""Iteration-based runner for HPU (works unchanged on CPU and CUDA)."""
from typing import Dict, Optional

from mmcv.runner import RUNNERS, IterBasedRunner

from .base import HPURunnerMixin
from .resume import build_resume_state, restore_rng_state


@RUNNERS.register_module()
class HPUIterBasedRunner(HPURunnerMixin, IterBasedRunner):
    """:class:`mmcv.runner.IterBasedRunner` with the HPU additions.

    MRO: ``HPUIterBasedRunner -> HPURunnerMixin -> IterBasedRunner -> BaseRunner``.
    On top of :class:`HPURunnerMixin` (device log buffer, ``log_interval``,
    ``OptimizerHook`` upgrade, throughput hook with one window per pass over the
    data):

    1. ``resume(map_location='default')`` loads to the CPU when CUDA is absent (stock
       calls ``storage.cuda()``); the optimizer state then follows the parameters.
    2. Resume restores the iteration and the RNG states, not the position inside
       the pass over the data (see ``docs/resume.md``).

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

    def run(self, data_loaders, workflow, max_iters=None, **kwargs) -> None:
        """Stock ``run``; after :meth:`resume`, first sets the checkpoint's RNG states.

        The position inside the pass over the data is not restored (stock behaviour:
        a new pass starts), see ``docs/resume.md``.
        """
        point = self.take_resume_point()
        if point is not None:
            restore_rng_state(point.rng)
            self.logger.warning('HPUIterBasedRunner resumes the RNG states but starts a new '
                                'pass over the data: for a bit-exact continuation use '
                                'HPUEpochBasedRunner (see docs/resume.md)')
        super().run(data_loaders, workflow, max_iters=max_iters, **kwargs)

    def save_checkpoint(self, out_dir: str, filename_tmpl: str = 'iter_{}.pth',
                        meta: Optional[Dict] = None, save_optimizer: bool = True,
                        create_symlink: bool = True) -> None:
        """Atomic ``save_checkpoint`` with ``IterBasedRunner``'s argument order."""
        HPURunnerMixin.save_checkpoint(self, out_dir, filename_tmpl=filename_tmpl,
                                       save_optimizer=save_optimizer, meta=meta,
                                       create_symlink=create_symlink)

    def _resume_state(self, fn_name: str) -> Dict:
        """Iteration and RNG states only (no position inside the pass)."""
        return build_resume_state(self.epoch, 0, self.iter + 1, None)
