"""``HPUCheckpointHook``: mmcv's ``CheckpointHook`` with crash-safe writes.

Same options and bookkeeping as ``mmcv.runner.CheckpointHook`` (``interval``,
``by_epoch``, ``save_optimizer``, ``out_dir``, ``max_keep_ckpts``, ``save_last``,
``filename_tmpl``, ``create_symlink``, ``hook_msgs['last_ckpt']``), but the file
is written by :func:`~.saving.save_checkpoint_atomic` instead of
``runner.save_checkpoint``, so it works the same with any runner, and an
interrupted save never replaces a good checkpoint or ``latest.pth``.
"""
import copy
import os.path as osp

from mmcv.runner import HOOKS, CheckpointHook, IterBasedRunner
from mmcv.runner.dist_utils import master_only

from .saving import remove_partial_files, save_checkpoint_atomic, update_latest

LOCAL_BACKEND = 'HardDiskBackend'


@HOOKS.register_module()
class HPUCheckpointHook(CheckpointHook):
    """Crash-safe ``CheckpointHook``; takes the same arguments."""

    def before_run(self, runner):
        """Resolve ``out_dir`` as mmcv does and delete leftovers of interrupted saves."""
        super().before_run(runner)
        if self._is_local():
            removed = remove_partial_files(self.out_dir)
            if removed:
                runner.logger.warning(f'removed {len(removed)} partial checkpoint file(s) '
                                      f'left by an interrupted save in {self.out_dir}')

    def _is_local(self):
        return getattr(self.file_client, 'name', LOCAL_BACKEND) == LOCAL_BACKEND

    def _step(self, runner):
        """The 1-based epoch or iteration number that names the checkpoint."""
        return runner.epoch + 1 if self.by_epoch else runner.iter + 1

    def _filename(self, runner):
        default = 'epoch_{}.pth' if self.by_epoch else 'iter_{}.pth'
        return self.args.get('filename_tmpl', default).format(self._step(runner))

    def _meta(self, runner):
        """The ``meta`` dict ``runner.save_checkpoint`` would write."""
        return runner_meta(runner, self.args.get('meta'))

    @master_only
    def _save_checkpoint(self, runner):
        """Save atomically, update ``latest.pth`` and ``hook_msgs``, drop old checkpoints."""
        if not self._is_local():  # object stores: no rename, fall back to mmcv's path
            super()._save_checkpoint(runner)
            return
        filepath = osp.join(self.out_dir, self._filename(runner))
        optimizer = runner.optimizer if self.save_optimizer else None
        save_checkpoint_atomic(runner.model, filepath, optimizer=optimizer,
                               meta=self._meta(runner))
        if self.args.get('create_symlink', True):
            update_latest(filepath)
        if runner.meta is not None:
            runner.meta.setdefault('hook_msgs', dict())
            runner.meta['hook_msgs']['last_ckpt'] = filepath
        self._remove_old_checkpoints(runner)

    def _remove_old_checkpoints(self, runner):
        """``max_keep_ckpts`` as in mmcv: delete older checkpoints of this interval."""
        if self.max_keep_ckpts <= 0:
            return
        default = 'epoch_{}.pth' if self.by_epoch else 'iter_{}.pth'
        filename_tmpl = self.args.get('filename_tmpl', default)
        current = self._step(runner)
        for step in range(current - self.max_keep_ckpts * self.interval, 0, -self.interval):
            path = osp.join(self.out_dir, filename_tmpl.format(step))
            if not osp.isfile(path):
                break
            self.file_client.remove(path)


def runner_meta(runner, extra=None):
    """The ``meta`` mmcv's ``runner.save_checkpoint`` writes: ``extra``, ``runner.meta``,
    then ``epoch``/``iter`` as the runner kind counts them.
    """
    if extra is not None and not isinstance(extra, dict):
        raise TypeError(f'meta should be a dict or None, but got {type(extra)}')
    meta = copy.copy(extra or {})
    if runner.meta is not None:
        meta.update(runner.meta)
    if isinstance(runner, IterBasedRunner):
        meta.update(iter=runner.iter + 1, epoch=runner.epoch + 1)
    else:
        meta.update(epoch=runner.epoch + 1, iter=runner.iter)
    return meta


def save_runner_checkpoint(runner, out_dir, filename_tmpl=None, save_optimizer=True, meta=None,
                           create_symlink=True):
    """``runner.save_checkpoint`` of mmcv's runners, written atomically (local paths).

    Same file name and ``meta`` as stock (``epoch + 1`` and ``iter`` for both runner
    kinds; :class:`HPUCheckpointHook` writes ``iter + 1`` for iteration runners).

    Returns:
        str: The checkpoint path.
    """
    is_iter = isinstance(runner, IterBasedRunner)
    template = filename_tmpl or ('iter_{}.pth' if is_iter else 'epoch_{}.pth')
    filepath = osp.join(out_dir, template.format(runner.iter + 1 if is_iter
                                                 else runner.epoch + 1))
    optimizer = runner.optimizer if save_optimizer else None
    if meta is not None and not isinstance(meta, dict):
        raise TypeError(f'meta should be a dict or None, but got {type(meta)}')
    full_meta = copy.copy(meta or {})
    if runner.meta is not None:
        full_meta.update(runner.meta)
    full_meta.update(epoch=runner.epoch + 1, iter=runner.iter)  # as both stock runners write
    save_checkpoint_atomic(runner.model, filepath, optimizer=optimizer, meta=full_meta)
    if create_symlink:
        update_latest(filepath)
    return filepath


def use_atomic_checkpoints(cfg):
    """Make the config's ``checkpoint_config`` build :class:`HPUCheckpointHook`.

    A missing ``type`` or ``type='CheckpointHook'`` is replaced; a custom hook type
    and ``checkpoint_config=None`` are left alone.

    Returns:
        The config (changed in place).
    """
    ckpt_cfg = cfg.get('checkpoint_config')
    if ckpt_cfg is not None and ckpt_cfg.get('type', 'CheckpointHook') == 'CheckpointHook':
        ckpt_cfg['type'] = 'HPUCheckpointHook'
    return cfg
