"""Time stock ``YOLOV3Head`` against the configured (HPU) head, and the whole model, in one process.

Head benchmarks (medians over repeated runs, same weights, same inputs):

* ``targets+loss+backward``: ``bbox_head.loss`` (targets included) + ``_parse_losses`` +
  ``backward`` to the predicted maps, for a training batch with COCO-like ground truth (the
  configured side gets it padded through ``HPUPadGT`` when the config uses it, as in training);
* ``post-processing``: ``bbox_head.get_bboxes(rescale=True)`` of an inference batch, for

  - **dense** predictions, as from a freshly initialised head: objectness logits ~ N(0, 1), so
    almost every anchor passes ``conf_thr``; class logits ~ logit(0.01) + N(0, 0.3): mmdet's
    class-prior bias plus the small spread of its std-0.01 weight init, so (almost) no
    anchor x class pair passes ``score_thr``;
  - **crowded** predictions: as dense, but class logits ~ N(logit(0.01), 1), so a few % of the
    anchor x class pairs pass both thresholds (tens of thousands per image: NMS-heavy);
  - **sparse** predictions, as from a trained head: a few dozen confident anchors per image,
    everything else far below the thresholds.

Whole model: training step (``train_step`` + the optimizer hook's backward, clipping and step) and
``simple_test`` images/s, for the configured and the stock model, on the chosen device.
"""
import math
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import mmcv
import numpy as np
import torch
from mmcv.runner import build_optimizer

from mmdet_hpu import device as hpu_device

from . import synthetic
from .audit import backward_step, fake_runner, loss_kwargs, optimizer_hook_for, optimizer_step

SPARSE_OBJECTS = 40
POST_KINDS = ('dense', 'crowded', 'sparse')


# ------------------------------------------------------------------------------ inputs
def _level_sizes(head, hw) -> List[tuple]:
    return [(hw[0] // s, hw[1] // s) for s in head.featmap_strides]


def _to_maps(flat: torch.Tensor, sizes, num_base: int) -> List[torch.Tensor]:
    """(B, A, attrib) in the heads' anchor order -> per level (B, num_base * attrib, h, w)."""
    maps, start = [], 0
    for h, w in sizes:
        count = h * w * num_base
        level = flat[:, start:start + count].reshape(flat.shape[0], h, w, -1)
        maps.append(level.permute(0, 3, 1, 2).contiguous())
        start += count
    return maps


def synthetic_pred_maps(head, batch_size: int, hw, kind: str, seed: int = 0
                        ) -> List[torch.Tensor]:
    """Raw head outputs with controlled statistics (see the module docstring).

    Args:
        head (YOLOV3Head): Gives the strides, anchors per cell and the class count.
        batch_size (int): Images.
        hw (tuple[int, int]): Input size.
        kind (str): One of :data:`POST_KINDS` (see the module docstring).
        seed (int): Random seed.

    Returns:
        list[Tensor]: Per level, (B, num_base * (5 + C), h, w).
    """
    gen = torch.Generator().manual_seed(seed)
    sizes = _level_sizes(head, hw)
    num_base = head.num_base_priors
    num_anchors = sum(h * w for h, w in sizes) * num_base
    flat = torch.randn(batch_size, num_anchors, head.num_attrib, generator=gen)
    if kind == 'dense':
        flat[..., 5:] = flat[..., 5:] * 0.3 + math.log(0.01 / 0.99)
    elif kind == 'crowded':
        flat[..., 5:] += math.log(0.01 / 0.99)
    elif kind == 'sparse':
        flat[..., 4] -= 10.0
        flat[..., 5:] -= 6.0
        for img in range(batch_size):
            picked = torch.randperm(num_anchors, generator=gen)[:SPARSE_OBJECTS]
            labels = torch.randint(0, head.num_classes, (SPARSE_OBJECTS,), generator=gen)
            flat[img, picked, 4] = 3.0
            flat[img, picked, 5 + labels] = 3.0
    else:
        raise ValueError(f'kind must be one of {POST_KINDS}, got {kind!r}')
    return _to_maps(flat, sizes, num_base)


def candidate_stats(head, pred_maps: Sequence[torch.Tensor]) -> Dict[str, float]:
    """Anchors passing ``conf_thr`` and pairs also passing ``score_thr``, per image (mean)."""
    cfg = head.test_cfg
    num_imgs = pred_maps[0].shape[0]
    flat = torch.cat([p.permute(0, 2, 3, 1).reshape(num_imgs, -1, head.num_attrib)
                      for p in pred_maps], dim=1)
    conf = flat[..., 4].sigmoid() >= cfg.get('conf_thr', -1)
    pairs = conf[..., None] & (flat[..., 5:].sigmoid() > cfg['score_thr'])
    return dict(anchors=flat.shape[1], conf_pass=conf.sum(1).float().mean().item(),
                pairs_pass=pairs.sum((1, 2)).float().mean().item())


# ------------------------------------------------------------------------------ timing
def _sync(dev: torch.device) -> None:
    hpu_device.mark_step()
    hpu_device.synchronize(dev)


def _run_ms(fn: Callable[[], object], dev: torch.device) -> float:
    """Wall-clock time of one run of ``fn`` in ms, device synchronised at the end."""
    start = time.perf_counter()
    fn()
    _sync(dev)
    return (time.perf_counter() - start) * 1e3


def time_ms(fn: Callable[[], object], dev: torch.device, reps: int, warmup: int) -> List[float]:
    """Wall-clock times of ``fn`` in ms (device synchronised after each run).

    Args:
        fn (Callable): What to time.
        dev (torch.device): Device to synchronise.
        reps (int): Timed runs.
        warmup (int): Untimed runs first.

    Returns:
        list[float]: One time per timed run.
    """
    for _ in range(warmup):
        fn()
    _sync(dev)
    return [_run_ms(fn, dev) for _ in range(reps)]


def time_pair_ms(fn_a: Callable[[], object], fn_b: Callable[[], object], dev: torch.device,
                 reps: int, warmup: int) -> Tuple[List[float], List[float]]:
    """Wall-clock times of two functions in ms, run alternately (a, b, a, b, ...).

    Alternating exposes both to the same machine load, so their ratio stays steady on a busy
    machine where timing all runs of one and then all of the other does not.

    Returns:
        tuple[list[float], list[float]]: ``reps`` times of ``fn_a`` and of ``fn_b``.
    """
    for _ in range(warmup):
        fn_a()
        fn_b()
    _sync(dev)
    times_a, times_b = [], []
    for _ in range(reps):
        times_a.append(_run_ms(fn_a, dev))
        times_b.append(_run_ms(fn_b, dev))
    return times_a, times_b


def _median(times: Sequence[float]) -> float:
    return float(np.median(times))


def speedup_runs(stock_fn: Callable[[], object], hpu_fn: Callable[[], object],
                 dev: torch.device, runs: int, reps: int, warmup: int
                 ) -> List[Tuple[float, float]]:
    """``runs`` separate :func:`time_pair_ms` measurements of stock against HPU.

    One measurement's ratio moves by ~10% on a shared machine; several runs show the spread
    that one median hides (a target met "at the median of runs" or in every run).

    Returns:
        list[tuple[float, float]]: Per run, the median stock and HPU times in ms.
    """
    return [tuple(_median(times) for times in time_pair_ms(stock_fn, hpu_fn, dev, reps, warmup))
            for _ in range(runs)]


SPEEDUP_HEADER = (f'{"case":34s} {"stock ms":>10s} {"hpu ms":>10s} {"speed-up":>9s}  '
                  'speed-up of each run')


def speedup_row(case: str, runs_ms: Sequence[Tuple[float, float]]) -> str:
    """One line of a head benchmark: the median over runs of the stock and HPU times and of the
    speed-up, then every run's speed-up (see :func:`speedup_runs`)."""
    ratios = [stock / hpu for stock, hpu in runs_ms]
    stock_ms = _median([stock for stock, _ in runs_ms])
    hpu_ms = _median([hpu for _, hpu in runs_ms])
    each = ', '.join(f'{ratio:.2f}' for ratio in ratios)
    return f'{case:34s} {stock_ms:10.1f} {hpu_ms:10.1f} {_median(ratios):8.2f}x  {each}'


def _pair(stock_times, hpu_times, **extra) -> Dict:
    stock_ms, hpu_ms = _median(stock_times), _median(hpu_times)
    return dict(stock_ms=stock_ms, hpu_ms=hpu_ms, speedup=stock_ms / hpu_ms, **extra)


# ------------------------------------------------------------------------------ head cases
def _loss_fn(model, maps, batch) -> Callable[[], None]:
    head = model.bbox_head

    def run():
        for pred in maps:
            pred.grad = None
        losses = head.loss(maps, batch['gt_bboxes'], batch['gt_labels'], batch['img_metas'],
                           **loss_kwargs(batch))
        loss, _ = model._parse_losses(losses)
        loss.backward()

    return run


def bench_loss(cfg, models, dev, batch_size: int, hw, counts, reps: int, warmup: int) -> Dict:
    """targets+loss+backward of the stock and the configured head."""
    base = synthetic_pred_maps(models['configured'].bbox_head, batch_size, hw, 'dense', seed=3)
    times = {}
    for side, model in models.items():
        batch = synthetic.make_train_batch(cfg, side == 'stock', batch_size, hw, counts, dev)
        maps = [m.clone().to(dev).requires_grad_() for m in base]
        times[side] = time_ms(_loss_fn(model, maps, batch), dev, reps, warmup)
    return _pair(times['stock'], times['configured'], batch_size=batch_size, hw=list(hw),
                 num_gt=sum(counts))


def bench_postprocess(cfg, models, dev, batch_size: int, hw, kind: str, reps: int,
                      warmup: int) -> Dict:
    """``get_bboxes(rescale=True)`` of the stock and the configured head."""
    head = models['configured'].bbox_head
    maps = [m.to(dev) for m in synthetic_pred_maps(head, batch_size, hw, kind, seed=4)]
    metas = synthetic.make_test_batch(cfg, batch_size, hw, 'cpu')['img_metas']
    times = {}
    for side, model in models.items():
        model.eval()
        with torch.no_grad():
            times[side] = time_ms(
                lambda m=model: m.bbox_head.get_bboxes(maps, metas, rescale=True), dev, reps,
                warmup)
    return _pair(times['stock'], times['configured'], batch_size=batch_size, hw=list(hw),
                 **candidate_stats(head, [m.cpu() for m in maps]))


# ------------------------------------------------------------------------------ whole model
def _train_step_fn(cfg, model, stock: bool, batch) -> Callable[[], None]:
    hook, log_buffer = optimizer_hook_for(cfg, stock)
    optimizer = build_optimizer(model, cfg.optimizer)
    runner = fake_runner(model, optimizer, log_buffer, cfg, len(batch['img_metas']))

    def run():
        outputs = model.train_step(batch, optimizer)
        runner.log_buffer.update(outputs['log_vars'], outputs['num_samples'])
        backward_step(hook, runner, outputs['loss'])
        optimizer_step(hook, runner)

    return run


def bench_model(cfg, models, dev, batch_size: int, test_batch_size: int, hw, counts,
                reps: int, warmup: int) -> Dict:
    """Images/s of a training step and of ``simple_test`` for both models."""
    result = {}
    test = synthetic.make_test_batch(cfg, test_batch_size, hw, dev)
    for side, model in models.items():
        batch = synthetic.make_train_batch(cfg, side == 'stock', batch_size, hw, counts, dev)
        model.train()
        train_ms = _median(time_ms(_train_step_fn(cfg, model, side == 'stock', batch), dev,
                                   reps, warmup))
        model.eval()
        with torch.no_grad():
            infer_ms = _median(time_ms(
                lambda m=model: m.simple_test(test['img'], test['img_metas'], rescale=True),
                dev, reps, warmup))
        result[side] = dict(train_step_ms=train_ms, train_img_s=batch_size * 1e3 / train_ms,
                            infer_ms=infer_ms, infer_img_s=test_batch_size * 1e3 / infer_ms)
    result.update(batch_size=batch_size, test_batch_size=test_batch_size, hw=list(hw))
    return result


# ------------------------------------------------------------------------------ driver
def run_benchmark(cfg: mmcv.Config, device: str = 'cpu', batch_size: int = 8,
                  test_batch_size: int = 16, img_size: Optional[int] = None,
                  num_gt: Optional[int] = None, reps: int = 20, warmup: int = 3,
                  model_reps: int = 2, model_img_size: Optional[int] = None,
                  with_model: bool = True, seed: int = 0,
                  post_batch_sizes: Sequence[int] = (), post_reps: int = 3) -> Dict:
    """Run every benchmark of this module.

    Args:
        cfg (mmcv.Config): A YOLOv3 config.
        device (str): ``auto``, ``cpu``, ``cuda`` or ``hpu``.
        batch_size (int): Training batch of the loss and train-step benchmarks.
        test_batch_size (int): Inference batch.
        img_size (int | None): Square input size (default: the train pipeline's).
        num_gt (int | None): Boxes per image (default: COCO-like counts).
        reps (int): Timed runs per head case.
        warmup (int): Untimed runs first.
        model_reps (int): Timed runs per whole-model case (after one warm-up run).
        model_img_size (int | None): Input size of the whole-model cases (default: as heads).
        with_model (bool): Run the whole-model cases.
        seed (int): Seed of the weights.
        post_batch_sizes (Sequence[int]): Also time post-processing of every kind at these
            batch sizes (``post_scaling`` rows), e.g. (8, 16, 32, 64).
        post_reps (int): Timed runs per ``post_scaling`` row (after one warm-up run).

    Returns:
        dict: ``loss``, ``post_dense``, ``post_crowded``, ``post_sparse`` (``stock_ms``,
        ``hpu_ms``, ``speedup`` and the case's sizes) and, with the model, ``model``; plus the
        environment.
    """
    dev = hpu_device.torch_device(hpu_device.resolve_device(device))
    hw = synthetic.config_sizes(cfg, img_size)[0]
    counts = synthetic.gt_counts(batch_size, num_gt, synthetic.max_gt_of(cfg))
    configured, stock = synthetic.build_model_pair(cfg, dev, seed)
    models = dict(configured=configured, stock=stock)
    report = dict(device=str(dev), threads=torch.get_num_threads(), torch=torch.__version__,
                  heads=[type(configured.bbox_head).__name__, type(stock.bbox_head).__name__],
                  target_mode=getattr(configured.bbox_head, 'target_mode', None),
                  reps=reps, warmup=warmup)
    report['loss'] = bench_loss(cfg, models, dev, batch_size, hw, counts, reps, warmup)
    for kind in POST_KINDS:
        report[f'post_{kind}'] = bench_postprocess(cfg, models, dev, test_batch_size, hw, kind,
                                                   reps, warmup)
    report['post_scaling'] = [
        dict(kind=kind, **bench_postprocess(cfg, models, dev, size, hw, kind, post_reps, 1))
        for kind in POST_KINDS for size in post_batch_sizes]
    if with_model:
        model_hw = (model_img_size, model_img_size) if model_img_size else hw
        report['model'] = bench_model(cfg, models, dev, batch_size, test_batch_size, model_hw,
                                      counts, model_reps, 1)
    return report


def format_report(report: Dict) -> str:
    """Render :func:`run_benchmark`'s report as text."""
    stock_head, hpu_head = report['heads'][1], report['heads'][0]
    lines = [f"device {report['device']}, torch {report['torch']}, {report['threads']} threads; "
             f"{stock_head} (stock) vs {hpu_head} (target_mode={report['target_mode']}); "
             f"median of {report['reps']} runs after {report['warmup']} warm-up runs",
             '',
             f"{'case':<52}{'stock ms':>10}{'hpu ms':>10}{'speed-up':>10}"]
    loss = report['loss']
    rows = [(f"targets+loss+backward  batch {loss['batch_size']}, {loss['hw'][0]} px, "
             f"{loss['num_gt']} GT", loss)]
    for kind in POST_KINDS:
        case = report[f'post_{kind}']
        rows.append((f"post-processing {kind:<7} batch {case['batch_size']}, {case['hw'][0]} px",
                     case))
    for label, case in rows:
        lines.append(f"{label:<52}{case['stock_ms']:>10.1f}{case['hpu_ms']:>10.1f}"
                     f"{case['speedup']:>9.1f}x")
    for kind in POST_KINDS:
        case = report[f'post_{kind}']
        lines.append(f"  {kind}: {case['conf_pass']:.0f} of {case['anchors']} anchors pass "
                     f"conf_thr, {case['pairs_pass']:.0f} anchor x class pairs pass both "
                     'thresholds (per image, mean)')
    lines += _scaling_lines(report.get('post_scaling', []))
    if 'model' in report:
        lines += _model_lines(report['model'])
    return '\n'.join(lines)


def _scaling_lines(cases: List[Dict]) -> List[str]:
    """Post-processing rows by kind and batch size (medians of ``post_reps`` runs)."""
    if not cases:
        return []
    lines = ['', f"{'post-processing by batch size':<52}{'stock ms':>10}{'hpu ms':>10}"
                 f"{'speed-up':>10}"]
    for case in cases:
        label = (f"  {case['kind']:<8} batch {case['batch_size']:>3} "
                 f"({case['pairs_pass']:.0f} pairs pass / image)")
        lines.append(f"{label:<52}{case['stock_ms']:>10.1f}{case['hpu_ms']:>10.1f}"
                     f"{case['speedup']:>9.1f}x")
    return lines


def _model_lines(model: Dict) -> List[str]:
    size = model['hw'][0]
    lines = ['', f"whole model on this device ({size} px)   train step batch "
                 f"{model['batch_size']}      inference batch {model['test_batch_size']}"]
    for side in ('configured', 'stock'):
        data = model[side]
        lines.append(f"  {side:<34}{data['train_img_s']:>8.2f} img/s "
                     f"({data['train_step_ms']:.0f} ms){data['infer_img_s']:>10.2f} img/s "
                     f"({data['infer_ms']:.0f} ms)")
    return lines
