"""HPU detector vs its stock counterpart on real batches: same-weights agreement and drift.

:func:`same_weights_agreement`: both detectors with the same weights (a checkpoint, e.g. a
trained one, or a fresh init) on the same batches: the relative difference of every loss term
and of the whole gradient. This is the property a training run depends on.

:func:`loss_drift`: how fast the two drift apart when trained side by side.

Both start from the same weights and take the same real batches (each sample built with the
same NumPy seed on both sides, so random augmentation agrees) and the same optimizer steps;
the HPU side gets its batches through :class:`~mmdet_hpu.parallel.HPUDataParallel` (padded
ground truth, as in training), the stock side gets per-image lists. The reference is the stock
detector against itself with every weight perturbed by a relative ``perturb`` (1e-7: float32
rounding): if the HPU run drifts no faster than that, the differences of two full trainings
(e.g. their final mAP) are run-to-run noise of the training itself, not a difference of the
heads.
"""
from typing import Dict, List, NamedTuple, Optional

import mmcv
import numpy as np
import torch
from mmcv.parallel import collate
from mmcv.runner import build_optimizer, load_checkpoint
from mmdet.datasets import build_dataset
from mmdet.models import build_detector

from mmdet_hpu.parallel import HPUDataParallel

from .compare_stock import stock_config


class DriftStep(NamedTuple):
    """Losses of one training step on both sides and their relative difference."""
    step: int
    loss_a: float
    loss_b: float
    relative: float


def _batch(dataset, step: int, batch_size: int) -> Dict:
    """Collated samples ``step * batch_size ...`` of ``dataset``, each built under its own seed."""
    samples = []
    for j in range(batch_size):
        np.random.seed(1000 * step + j)
        samples.append(dataset[(batch_size * step + j) % len(dataset)])
    return collate(samples, samples_per_gpu=batch_size)


def _unwrapped(batch: Dict) -> Dict:
    """A collated batch as plain ``forward_train`` arguments (per-image lists)."""
    return {key: (value.data[0] if hasattr(value, 'data') else value)
            for key, value in batch.items()}


def _step(optimizer, loss: torch.Tensor, max_norm: float) -> None:
    optimizer.zero_grad()
    loss.backward()
    params = [p for group in optimizer.param_groups for p in group['params']]
    torch.nn.utils.clip_grad_norm_(params, max_norm)
    optimizer.step()


def _detector_pair(cfg: mmcv.Config, seed: int, checkpoint: Optional[str] = None):
    """The stock config, and the HPU and stock detectors with the same weights.

    The weights are a fresh init under ``seed``, or ``checkpoint`` when given.

    Returns:
        tuple: (stock ``mmcv.Config``, HPU detector, stock detector).
    """
    stock_cfg, _ = stock_config(cfg)
    torch.manual_seed(seed)
    hpu = build_detector(cfg.model)
    hpu.init_weights()
    if checkpoint is not None:
        load_checkpoint(hpu, checkpoint, map_location='cpu', strict=True)
    stock = build_detector(stock_cfg.model)
    stock.load_state_dict(hpu.state_dict(), strict=True)
    return stock_cfg, hpu, stock


def loss_drift(cfg: mmcv.Config, steps: int, perturb: float = 0.0, batch_size: int = 8,
               seed: int = 0) -> List[DriftStep]:
    """Train side A and stock side B for ``steps`` steps on the same batches.

    Args:
        cfg (mmcv.Config): A config with HPU model types (and maybe ``HPUPadGT``).
        steps (int): Optimizer steps.
        perturb (float): 0: side A is the HPU detector. > 0: side A is the stock detector with
            every weight multiplied by ``1 + perturb * N(0, 1)`` (the reference drift).
        batch_size (int): Images per step.
        seed (int): Seed of the initial weights.

    Returns:
        list[DriftStep]: One entry per step.
    """
    stock_cfg, hpu, stock = _detector_pair(cfg, seed)
    if perturb > 0:
        side_a = build_detector(stock_cfg.model)
        side_a.load_state_dict(stock.state_dict(), strict=True)
        gen = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for param in side_a.parameters():
                param.mul_(1 + perturb * torch.randn(param.shape, generator=gen))
    else:
        side_a = hpu
    datasets = (build_dataset(cfg.data.train if perturb == 0 else stock_cfg.data.train),
                build_dataset(stock_cfg.data.train))
    optimizers = (build_optimizer(side_a, cfg.optimizer), build_optimizer(stock, cfg.optimizer))
    grad_clip = (cfg.get('optimizer_config') or {}).get('grad_clip') or {}
    max_norm = float(grad_clip.get('max_norm', float('inf')))
    wrapped = HPUDataParallel(side_a, device='cpu') if perturb == 0 else None
    side_a.train()
    stock.train()
    results = []
    for step in range(steps):
        batch_a = _batch(datasets[0], step, batch_size)
        out_a = (wrapped.train_step(batch_a, None) if wrapped is not None
                 else side_a.train_step(_unwrapped(batch_a), None))
        out_b = stock.train_step(_unwrapped(_batch(datasets[1], step, batch_size)), None)
        _step(optimizers[0], out_a['loss'], max_norm)
        _step(optimizers[1], out_b['loss'], max_norm)
        # Host reads on purpose: this is a CPU diagnostic, not a training loop.
        loss_a, loss_b = float(out_a['loss'].detach()), float(out_b['loss'].detach())
        results.append(DriftStep(step, loss_a, loss_b, abs(loss_a - loss_b) / abs(loss_b)))
    return results


class Agreement(NamedTuple):
    """HPU vs stock on one batch with the same weights."""
    batch: int
    losses: Dict[str, float]  # the stock detector's logged loss terms
    loss_terms: Dict[str, float]  # relative difference of each logged loss term
    gradient: float  # ||g_hpu - g_stock|| / ||g_stock|| over all parameters


def _flat_grad(model) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def same_weights_agreement(cfg: mmcv.Config, batches: int, checkpoint: Optional[str] = None,
                           batch_size: int = 8, seed: int = 0) -> List[Agreement]:
    """Losses and gradients of the HPU and stock detectors with the same weights.

    Args:
        cfg (mmcv.Config): A config with HPU model types (and maybe ``HPUPadGT``).
        batches (int): Training batches compared (no optimizer step in between).
        checkpoint (str | None): Weights for both; None: a fresh init under ``seed``.
        batch_size (int): Images per batch.
        seed (int): Seed of the fresh init.

    Returns:
        list[Agreement]: One entry per batch.
    """
    stock_cfg, hpu, stock = _detector_pair(cfg, seed, checkpoint)
    hpu.train()
    stock.train()
    datasets = build_dataset(cfg.data.train), build_dataset(stock_cfg.data.train)
    wrapped = HPUDataParallel(hpu, device='cpu')
    results = []
    for index in range(batches):
        hpu.zero_grad()
        stock.zero_grad()
        out_hpu = wrapped.train_step(_batch(datasets[0], index, batch_size), None)
        out_stock = stock.train_step(_unwrapped(_batch(datasets[1], index, batch_size)), None)
        out_hpu['loss'].backward()
        out_stock['loss'].backward()
        terms = {key: abs(float(out_hpu['log_vars'][key]) - value) / max(abs(value), 1e-12)
                 for key, value in out_stock['log_vars'].items()}
        grad_hpu, grad_stock = _flat_grad(hpu), _flat_grad(stock)
        gradient = float((grad_hpu - grad_stock).norm() / grad_stock.norm())
        results.append(Agreement(index, dict(out_stock['log_vars']), terms, gradient))
    return results
