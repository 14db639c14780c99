"""Hooks that end a training process abruptly, for the resume and rank-death tests.

Imported by the training subprocesses through ``custom_imports`` (this folder is
put on ``PYTHONPATH``), so they register in mmcv's ``HOOKS`` there.
"""
import os
import signal

from mmcv.runner import HOOKS, Hook, get_dist_info


@HOOKS.register_module()
class DieAtIterHook(Hook):
    """End the process right after iteration ``iteration`` (1-based) on rank ``rank``.

    Register with priority ``LOWEST`` so that the checkpoint hook of that iteration
    has written its file first.

    Args:
        iteration (int): 1-based iteration after which to die.
        how (str): ``'sigkill'`` (a real ``SIGKILL`` of this process: no cleanup, no
            exit handlers) or ``'exit'`` (``os._exit(code)``).
        rank (int): Only this rank dies. Defaults to 0.
        code (int): Exit status for ``how='exit'``. Defaults to 0.
    """

    def __init__(self, iteration, how='sigkill', rank=0, code=0):
        self.iteration, self.how, self.rank, self.code = iteration, how, rank, code

    def after_train_iter(self, runner):
        if runner.iter + 1 != self.iteration or get_dist_info()[0] != self.rank:
            return
        if self.how == 'sigkill':
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(self.code)
