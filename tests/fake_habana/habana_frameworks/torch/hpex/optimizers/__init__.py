"""Fake Habana fused optimizers: torch optimizers that record construction and steps."""
import torch
from fake_habana_recorder import RECORDER


class FusedSGD(torch.optim.SGD):
    """Signature of the real ``FusedSGD`` (lr required)."""

    def __init__(self, params, lr, momentum=0, weight_decay=0, dampening=0, nesterov=False):
        RECORDER.record('hpex.FusedSGD.__init__', lr=lr, momentum=momentum)
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                         dampening=dampening, nesterov=nesterov)

    def step(self, closure=None):
        RECORDER.record('hpex.FusedSGD.step')
        return super().step(closure)


class FusedAdamW(torch.optim.AdamW):
    """Signature of the real ``FusedAdamW``: note ``eps=1e-6`` and ``weight_decay=0``."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0,
                 bias_correction=True, moments_dtype=None):
        RECORDER.record('hpex.FusedAdamW.__init__', lr=lr, eps=eps)
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def step(self, closure=None):
        RECORDER.record('hpex.FusedAdamW.step')
        return super().step(closure)
