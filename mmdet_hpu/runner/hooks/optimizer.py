"""Optimizer hook with HPU graph cuts and no per-iteration host read."""
from typing import List, Optional, Tuple

import torch
from mmcv.runner import HOOKS, IterBasedRunner, OptimizerHook

from mmdet_hpu import device

from ..log_buffer import DeviceLogBuffer
from ..nonfinite import NonFiniteMonitor, check_mode, describe_terms, step_is_finite

_DEFAULT_LOG_INTERVAL = 50


@HOOKS.register_module()
class HPUOptimizerHook(OptimizerHook):
    """:class:`mmcv.runner.OptimizerHook` for HPU (runs unchanged on CPU and CUDA).

    ``after_train_iter`` does, in this order:

    1. ``optimizer.zero_grad(set_to_none=True)``;
    2. optional ``detect_anomalous_parameters`` (debugging, as stock);
    3. ``loss.backward()``, then ``device.mark_step()`` (lazy HPU only: cuts the
       backward graph);
    4. optional gradient clipping with ``torch.nn.utils.clip_grad_norm_``; the norm
       stays on the device and goes to ``runner.log_buffer`` only at the log interval
       (stock calls ``float(grad_norm)``, a host sync, every iteration);
    5. ``optimizer.step()``, then ``device.mark_step()``.

    Unlike the Habana fork, ``grad_clip=None`` works.

    Non-finite losses (see :mod:`mmdet_hpu.runner.nonfinite`): with
    ``nonfinite_loss='stop'`` (default) the loss terms are recorded on the device
    (:attr:`nonfinite_monitor`, read with the log buffer) and the runner stops with
    :class:`~mmdet_hpu.runner.nonfinite.NonFiniteLossError` before any checkpoint
    is written after the bad step; with ``'skip'`` a non-finite step is checked on
    the host every iteration and its ``optimizer.step`` skipped; the model's buffers
    (BatchNorm running statistics) are copied on the device before the forward pass
    and restored after a skipped step, so a skipped step leaves no trace (device
    copies only, no extra host read).

    Args:
        grad_clip (dict, optional): Keyword arguments of ``clip_grad_norm_``, e.g.
            ``dict(max_norm=35, norm_type=2)``. Defaults to None (no clipping).
        detect_anomalous_params (bool): Log parameters that are not in the loss graph
            (slow; debugging only). Defaults to False.
        log_interval (int, optional): Iterations between ``grad_norm`` log entries.
            Defaults to None: ``runner.log_interval`` (set by the HPU runners from
            ``log_config.interval``), else 50.
        nonfinite_loss (str): ``'stop'`` or ``'skip'``. Defaults to ``'stop'``.

    Attributes:
        nonfinite_monitor (NonFiniteMonitor | None): The device record (stop mode).
        skipped_steps (int): Steps skipped so far (skip mode).

    Raises:
        ValueError: If ``log_interval`` is not a positive integer or
            ``nonfinite_loss`` is not a mode.
    """

    def __init__(self,
                 grad_clip: Optional[dict] = None,
                 detect_anomalous_params: bool = False,
                 log_interval: Optional[int] = None,
                 nonfinite_loss: str = 'stop') -> None:
        super().__init__(grad_clip=grad_clip, detect_anomalous_params=detect_anomalous_params)
        if log_interval is not None and (not isinstance(log_interval, int) or log_interval <= 0):
            raise ValueError(f'log_interval must be a positive int, but got {log_interval!r}')
        self.log_interval = log_interval
        self.nonfinite_loss = check_mode(nonfinite_loss)
        self.nonfinite_monitor = NonFiniteMonitor() if nonfinite_loss == 'stop' else None
        self.skipped_steps = 0
        self._buffer_copies: List[Tuple[torch.Tensor, torch.Tensor]] = []

    def before_train_iter(self, runner) -> None:
        """Skip mode: copy the model's buffers (BN statistics) before the forward pass."""
        if self.nonfinite_loss != 'skip':
            return
        buffers = list(runner.model.buffers())
        if len(buffers) != len(self._buffer_copies) or any(
                b is not saved[0] for b, saved in zip(buffers, self._buffer_copies)):
            self._buffer_copies = [(b, torch.empty_like(b)) for b in buffers]
        with torch.no_grad():
            for buffer, copy in self._buffer_copies:
                copy.copy_(buffer)  # device-to-device, no host read

    def _restore_buffers(self) -> None:
        with torch.no_grad():
            for buffer, copy in self._buffer_copies:
                buffer.copy_(copy)

    def after_train_iter(self, runner) -> None:
        """Backward, clip and step, with a ``mark_step`` after backward and after step."""
        optimizer = runner.optimizer
        loss = runner.outputs['loss']
        optimizer.zero_grad(set_to_none=True)
        finite = self._watch_loss(runner, loss)
        if self.detect_anomalous_params:
            self.detect_anomalous_parameters(loss, runner)
        loss.backward()
        device.mark_step()
        if not finite:
            self._skip_step(runner, loss)
            return
        if self.grad_clip is not None:
            grad_norm = self.clip_grads(runner.model.parameters())
            if grad_norm is not None:
                self._log_grad_norm(runner, grad_norm)
        optimizer.step()
        device.mark_step()

    def _watch_loss(self, runner, loss) -> bool:
        """Stop mode: record on the device, return True. Skip mode: the host check."""
        log_vars = runner.outputs.get('log_vars')
        if self.nonfinite_monitor is not None:
            self.nonfinite_monitor.record(runner.iter, log_vars, loss)
            if isinstance(runner.log_buffer, DeviceLogBuffer):
                self.nonfinite_monitor.attach_to(runner.log_buffer)
            else:  # stock LogBuffer: it already reads every loss every iteration
                self.nonfinite_monitor.check_now()
                self.nonfinite_monitor.raise_if_found(runner)
            return True
        finite = step_is_finite(loss)
        if isinstance(runner.log_buffer, DeviceLogBuffer):
            runner.log_buffer.set_latest('nonfinite_skipped', self.skipped_steps + (not finite))
        return finite

    def _skip_step(self, runner, loss) -> None:
        """Skip mode after a non-finite loss: drop the gradients, no ``optimizer.step``,
        buffers as before the forward pass."""
        runner.optimizer.zero_grad(set_to_none=True)
        self._restore_buffers()
        device.mark_step()
        self.skipped_steps += 1
        runner.logger.warning(
            f'iteration {runner.iter + 1}: non-finite loss '
            f"({describe_terms(runner.outputs.get('log_vars'), runner.outputs['loss'])}); "
            f'optimizer step skipped ({self.skipped_steps} skipped so far)')

    def _is_log_iter(self, runner) -> bool:
        interval = self.log_interval or getattr(runner, 'log_interval', None) \
            or _DEFAULT_LOG_INTERVAL
        if isinstance(runner, IterBasedRunner):  # its inner_iter restarts every iteration
            return self.every_n_iters(runner, interval)
        return self.every_n_inner_iters(runner, interval)

    def _log_grad_norm(self, runner, grad_norm) -> None:
        buffer, num_samples = runner.log_buffer, runner.outputs['num_samples']
        if not isinstance(buffer, DeviceLogBuffer):
            # A stock LogBuffer (stock runner) averages host numbers over its last n
            # entries: keep the stock behaviour, one host sync per iteration.
            buffer.update({'grad_norm': float(grad_norm)}, num_samples)
        elif self._is_log_iter(runner):
            buffer.update({'grad_norm': grad_norm.detach()}, num_samples)
