"""Audit a YOLOv3 config for HPU-hostile code: host syncs, dynamic shapes, copies, graph breaks.

For the configured detector/head **and** a stock mmdet ``YOLOV3``/``YOLOV3Head`` copy with the
same weights, :func:`run_audit` runs one training iteration and one inference batch on
synthetic data (see :mod:`mmdet_hpu.analysis.synthetic`) under :class:`~mmdet_hpu.analysis.
op_audit.OpAudit`, phase by phase:

========================  ==================================================================
phase                     what runs (as the runner / ``simple_test`` do)
========================  ==================================================================
forward                   ``extract_feat`` + head forward
targets+loss              ``bbox_head.loss`` + ``_parse_losses`` + ``log_buffer.update``
backward                  ``optimizer.zero_grad`` + ``loss.backward()``
optimizer                 grad clipping as configured (+ its logging) + ``optimizer.step()``
inference forward         ``extract_feat`` + head forward, ``torch.no_grad()``
post-processing           ``bbox_head.get_bboxes(rescale=True)`` + ``bbox2result``
========================  ==================================================================

The optimizer phase uses the hook the runner would use: for the configured side the config's
optimizer hook as an HPU runner upgrades it (``HPUOptimizerHook``, a non-logging iteration,
``DeviceLogBuffer``); for the stock side mmcv's ``OptimizerHook`` (``float(grad_norm)`` into a
``LogBuffer``). Post-processing is split into the part before NMS, the NMS calls and the part
after the last NMS call (see :meth:`~mmdet_hpu.analysis.op_audit.PhaseStats.segment_of`).
``torch._dynamo.explain`` counts graph breaks of ``bbox_head.loss``, of post-processing up to NMS
(``get_bboxes_pre_nms``; stock heads have no such entry point: n/a) and of the whole
``get_bboxes``.
"""
import contextlib
import logging
import types
import warnings
from typing import Dict, List, Optional, Sequence

import mmcv
import torch
from mmcv.runner import HOOKS, LogBuffer, OptimizerHook, build_optimizer
from mmdet.core import bbox2result
from mmdet.models.detectors.base import BaseDetector

from mmdet_hpu.runner.base import upgrade_optimizer_config
from mmdet_hpu.runner.log_buffer import DeviceLogBuffer

from . import compile_count, synthetic
from .op_audit import KINDS, OpAudit, total_counts

TRAIN_PHASES = ('forward', 'targets+loss', 'backward', 'optimizer')
POST = 'post-processing'
INFER_PHASES = ('inference forward', POST)
SIDES = ('configured', 'stock')


class AuditSettings(types.SimpleNamespace):
    """Sizes of the audited batches; None means "from the config".

    Attributes:
        batch_size (int | None): Training images.
        test_batch_size (int | None): Inference images.
        img_size (int | None): Square input size for training and inference.
        num_gt (int | None): Boxes per image (default: COCO-like counts).
        device (str): ``cpu`` (default) or ``cuda``.
        explain (bool): Run ``torch._dynamo.explain``.
        seed (int): Seed of weights and data.
        top (int): Offending call sites listed per side.
        checkpoint (str | None): Weights to load (default: freshly initialised).
        compile_batches (int): Training batches of the compiled-graph count (0: skip it).
    """

    def __init__(self, **kwargs):
        defaults = dict(batch_size=None, test_batch_size=None, img_size=None, num_gt=None,
                        device='cpu', explain=True, seed=0, top=5, checkpoint=None,
                        compile_batches=0)
        unknown = set(kwargs) - set(defaults)
        if unknown:
            raise TypeError(f'unknown audit settings: {sorted(unknown)}')
        defaults.update(kwargs)
        super().__init__(**defaults)


# ------------------------------------------------------------------------------ training
def _is_hpu_runner(cfg: mmcv.Config) -> bool:
    return str(cfg.get('runner', {}).get('type', '')).startswith('HPU')


def optimizer_hook_for(cfg: mmcv.Config, stock: bool):
    """The optimizer hook and log buffer the runner would use for one side.

    Args:
        cfg (mmcv.Config): The config (``optimizer_config``, ``runner``).
        stock (bool): Stock side: mmcv ``OptimizerHook`` + ``LogBuffer``.

    Returns:
        tuple[OptimizerHook, LogBuffer]: For an HPU runner, the upgraded hook
        (``HPUOptimizerHook``) and a ``DeviceLogBuffer``.
    """
    hook_cfg = dict(cfg.get('optimizer_config') or {})
    if stock or not _is_hpu_runner(cfg):
        hook_cfg.pop('type', None)
        return OptimizerHook(**hook_cfg), LogBuffer()
    return mmcv.build_from_cfg(upgrade_optimizer_config(hook_cfg), HOOKS), DeviceLogBuffer()


def fake_runner(model, optimizer, log_buffer, cfg, num_samples):
    """What the hooks read from a runner, at the first (non-logging) iteration of an epoch.

    Returns:
        types.SimpleNamespace: ``model``, ``optimizer``, ``log_buffer``, ``outputs``,
        ``log_interval`` (``log_config.interval``), ``iter``, ``inner_iter``, ``epoch``.
    """
    interval = cfg.get('log_config', {}).get('interval', 50)
    return types.SimpleNamespace(model=model, optimizer=optimizer, log_buffer=log_buffer,
                                 outputs=dict(num_samples=num_samples), log_interval=interval,
                                 iter=0, inner_iter=0, epoch=0)


def loss_kwargs(batch: Dict) -> Dict:
    """``gt_valid`` for ``bbox_head.loss`` when the batch has padded ground truth."""
    return {'gt_valid': batch['gt_valid']} if 'gt_valid' in batch else {}


def _forward(model, batch):
    BaseDetector.forward_train(model, batch['img'], batch['img_metas'])
    return model.bbox_head(model.extract_feat(batch['img']))


def _targets_loss(model, outs, batch, runner):
    head = model.bbox_head
    losses = head.loss(*outs, batch['gt_bboxes'], batch['gt_labels'], batch['img_metas'],
                       gt_bboxes_ignore=None, **loss_kwargs(batch))
    loss, log_vars = model._parse_losses(losses)
    runner.log_buffer.update(log_vars, runner.outputs['num_samples'])
    return loss


def backward_step(hook, runner, loss):
    """``zero_grad`` + ``backward``, as the hook's ``after_train_iter`` starts."""
    if isinstance(hook, OptimizerHook) and type(hook) is not OptimizerHook:
        runner.optimizer.zero_grad(set_to_none=True)  # HPUOptimizerHook
    else:
        runner.optimizer.zero_grad()
    loss.backward()


def optimizer_step(hook, runner):
    """The rest of ``after_train_iter``: clipping, its logging, the step."""
    if hook.grad_clip is not None:
        grad_norm = hook.clip_grads(runner.model.parameters())
        if grad_norm is not None:
            if hasattr(hook, '_log_grad_norm'):  # HPUOptimizerHook
                hook._log_grad_norm(runner, grad_norm)
            else:  # mmcv OptimizerHook.after_train_iter
                runner.log_buffer.update({'grad_norm': float(grad_norm)},
                                         runner.outputs['num_samples'])
    runner.optimizer.step()


def host_step_counters(optimizer) -> list:
    """``step`` tensors that ``torch.optim`` keeps on the host (neither capturable nor fused)."""
    if optimizer.defaults.get('capturable') or optimizer.defaults.get('fused'):
        return []
    return [state['step'] for state in optimizer.state.values()
            if torch.is_tensor(state.get('step'))]


def audit_training(model, batch: Dict, cfg: mmcv.Config, stock: bool, audit: OpAudit) -> list:
    """Run one training iteration phase by phase under ``audit``.

    A first, unrecorded iteration warms caches (anchors, optimizer state) as a real run's
    earlier iterations would.

    Returns:
        list[Tensor]: The predicted maps of the recorded forward (detached).
    """
    hook, log_buffer = optimizer_hook_for(cfg, stock)
    optimizer = build_optimizer(model, cfg.optimizer)
    runner = fake_runner(model, optimizer, log_buffer, cfg, len(batch['img_metas']))
    model.train()
    for record in (False, True):
        phase = audit.phase if record else (lambda name: contextlib.nullcontext())
        with phase('forward'):
            outs = _forward(model, batch)
        with phase('targets+loss'):
            loss = _targets_loss(model, outs, batch, runner)
        with phase('backward'):
            backward_step(hook, runner, loss)
        with phase('optimizer'):
            optimizer_step(hook, runner)
        audit.mark_host_tensors(host_step_counters(optimizer))
    return [pred.detach() for pred in outs[0]]


# ------------------------------------------------------------------------------ inference
def _postprocess(model, outs, metas):
    if hasattr(model, 'results_from_maps'):  # HPUYOLOV3: one host copy per batch
        return model.results_from_maps(outs[0], metas, rescale=True)
    results = model.bbox_head.get_bboxes(*outs, img_metas=metas, rescale=True)
    return [bbox2result(bboxes, labels, model.bbox_head.num_classes) for bboxes, labels in results]


@torch.no_grad()
def audit_inference(model, batch: Dict, audit: OpAudit) -> list:
    """Run ``simple_test`` of one batch split into forward and post-processing.

    Returns:
        list[Tensor]: The predicted maps.
    """
    model.eval()
    img, metas = batch['img'], batch['img_metas']
    _postprocess(model, model.bbox_head(model.extract_feat(img)), metas)  # warm-up
    with audit.phase('inference forward'):
        outs = model.bbox_head(model.extract_feat(img))
    with audit.phase(POST):
        _postprocess(model, outs, metas)
    return list(outs[0])


# ------------------------------------------------------------------------------ dynamo
def _explain(fn, *args, **kwargs) -> Dict:
    """``torch._dynamo.explain`` summary: graphs, breaks and their reasons."""
    torch._dynamo.reset()
    shapes_log = logging.getLogger('torch.fx.experimental.symbolic_shapes')
    level = shapes_log.level
    try:
        shapes_log.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            out = torch._dynamo.explain(fn)(*args, **kwargs)
    finally:
        shapes_log.setLevel(level)
        torch._dynamo.reset()
    reasons = [dict(reason=str(r.reason).splitlines()[0][:200],
                    where=_frame_text(r.user_stack[-1]) if r.user_stack else '?')
               for r in out.break_reasons]
    return dict(graph_count=out.graph_count, graph_break_count=out.graph_break_count,
                break_reasons=reasons)


def _frame_text(frame) -> str:
    from .op_audit import _short_path

    return f'{_short_path(frame.filename)}:{frame.lineno} ({frame.name})'


def _pre_nms_explain(head, pred_maps, metas) -> Optional[Dict]:
    """Graph breaks of ``get_bboxes_pre_nms`` (None for a head without it)."""
    if hasattr(head, 'get_bboxes_pre_nms'):
        cfg = head.test_cfg
        scale = head._scale_factors(metas, pred_maps[0].device)
        result = _explain(head.get_bboxes_pre_nms, list(pred_maps), scale, cfg.get('conf_thr', -1),
                          cfg['score_thr'], cfg.get('nms_pre', 1000))
        result['source'] = 'get_bboxes_pre_nms'
        return result
    # Stock heads have no pre-NMS entry point; explain() reports one reason per graph, not
    # per break, so the reasons cannot be split reliably: see the get_bboxes row instead.
    return None


def explain_head(model, train_maps, train_batch: Dict, test_maps, test_metas) -> Dict:
    """Dynamo graph breaks of the loss, of post-processing up to NMS and of ``get_bboxes``."""
    head = model.bbox_head
    pred_maps = [m.detach().clone().requires_grad_() for m in train_maps]
    loss = _explain(head.loss, pred_maps, train_batch['gt_bboxes'], train_batch['gt_labels'],
                    train_batch['img_metas'], **loss_kwargs(train_batch))
    with torch.no_grad():
        full = _explain(head.get_bboxes, list(test_maps), test_metas, rescale=True)
        pre_nms = _pre_nms_explain(head, test_maps, test_metas)
    return {'loss': loss, 'post-processing up to NMS': pre_nms, 'get_bboxes': full}


# ------------------------------------------------------------------------------ driver
def _phase_report(audit: OpAudit, top: int) -> Dict:
    report = {}
    for name, stats in audit.phases.items():
        report[name] = dict(counts=stats.counts(), num_ops=stats.num_ops,
                            nms_calls=stats.nms_calls,
                            host_scalar_reads=stats.host_scalar_reads,
                            offenders=stats.offenders(top=top))
        if name == POST:
            for segment in ('pre_nms', 'nms', 'post_nms'):
                report[name][f'counts_{segment}'] = stats.counts(segment)
    report['training iteration'] = dict(
        counts=total_counts([audit.phases[p] for p in TRAIN_PHASES]))
    return report


def audit_side(cfg, model, stock: bool, sizes: Dict, settings: AuditSettings) -> Dict:
    """Audit one side (configured or stock).

    Args:
        cfg (mmcv.Config): The config.
        model (nn.Module): The detector of this side.
        stock (bool): Whether it is the stock side.
        sizes (dict): ``batch_size``, ``test_batch_size``, ``train_hw``, ``test_hw``,
            ``gt_counts``.
        settings (AuditSettings): Options.

    Returns:
        dict: ``detector``, ``head``, ``phases`` and (when enabled) ``explain``.
    """
    train_batch = synthetic.make_train_batch(cfg, stock, sizes['batch_size'], sizes['train_hw'],
                                             sizes['gt_counts'], settings.device, settings.seed)
    test_batch = synthetic.make_test_batch(cfg, sizes['test_batch_size'], sizes['test_hw'],
                                           settings.device, settings.seed + 1)
    audit = OpAudit()
    train_maps = audit_training(model, train_batch, cfg, stock, audit)
    test_maps = audit_inference(model, test_batch, audit)
    result = dict(detector=type(model).__name__, head=type(model.bbox_head).__name__,
                  phases=_phase_report(audit, settings.top))
    if settings.explain:
        result['explain'] = explain_head(model, train_maps, train_batch, test_maps,
                                         test_batch['img_metas'])
    return result


def resolve_sizes(cfg: mmcv.Config, settings: AuditSettings) -> Dict:
    """Batch sizes, input sizes and GT counts from the settings, else the config."""
    train_bs, test_bs = synthetic.config_batch_sizes(cfg)
    train_hw, test_hw = synthetic.config_sizes(cfg, settings.img_size)
    batch_size = settings.batch_size or train_bs
    counts = synthetic.gt_counts(batch_size, settings.num_gt, synthetic.max_gt_of(cfg))
    return dict(batch_size=batch_size, test_batch_size=settings.test_batch_size or test_bs,
                train_hw=train_hw, test_hw=test_hw, gt_counts=counts)


def run_audit(cfg: mmcv.Config, settings: Optional[AuditSettings] = None,
              config_path: str = '') -> Dict:
    """Audit the configured model and its stock copy side by side.

    Args:
        cfg (mmcv.Config): A YOLOv3 config (``HPUYOLOV3``/``HPUYOLOV3Head`` or stock).
        settings (AuditSettings | None): Sizes and options.
        config_path (str): Shown in the report.

    Returns:
        dict: JSON-serialisable report: ``config``, ``sizes`` and ``sides`` (``configured``,
        ``stock``), see :func:`audit_side`.
    """
    settings = settings or AuditSettings()
    sizes = resolve_sizes(cfg, settings)
    configured, stock = synthetic.build_model_pair(cfg, settings.device, settings.seed,
                                                   checkpoint=settings.checkpoint)
    sides = {}
    for name, model in zip(SIDES, (configured, stock)):
        sides[name] = audit_side(cfg, model, name == 'stock', sizes, settings)
    report = dict(config=config_path, device=settings.device, sizes=sizes, sides=sides)
    if settings.compile_batches and hasattr(configured, 'train_graph'):
        report['compile'] = compile_count.count_compiled_graphs(
            configured, cfg, sizes, settings.compile_batches, settings.seed, settings.device)
    return report


# ------------------------------------------------------------------------------ table
_ROWS = [('forward', 'forward', 'counts'), ('targets+loss', 'targets+loss', 'counts'),
         ('backward', 'backward', 'counts'), ('optimizer (clip + step)', 'optimizer', 'counts'),
         ('= training iteration', 'training iteration', 'counts'),
         ('inference forward', 'inference forward', 'counts'),
         ('post-proc. before NMS', POST, 'counts_pre_nms'),
         ('post-proc. NMS', POST, 'counts_nms'),
         ('post-proc. after NMS', POST, 'counts_post_nms')]
_COL = 6
_KIND_LABELS = ('sync', 'dyn', 'h2d', 'd2h', 'nms')


def _cells(phase: Dict, key: str) -> str:
    counts = phase.get(key, {})
    nms = phase.get('nms_calls', '') if key in ('counts', 'counts_nms') else ''
    return ''.join(f'{counts.get(kind, 0):>{_COL}}' for kind in KINDS) + f'{nms!s:>{_COL}}'


def _breaks(side: Dict, key: str) -> str:
    result = side.get('explain', {}).get(key)
    return 'n/a' if result is None else str(result['graph_break_count'])


def _header(report: Dict) -> List[str]:
    sizes, sides = report['sizes'], report['sides']
    (th, tw), (vh, vw) = sizes['train_hw'], sizes['test_hw']
    counts = sizes['gt_counts']
    names = {s: f"{sides[s]['detector']} + {sides[s]['head']}" for s in SIDES}
    width = _COL * len(_KIND_LABELS)
    kinds = ''.join(f'{k:>{_COL}}' for k in _KIND_LABELS)
    return [f"mmdet-hpu audit: {report['config']} on {report['device']}",
            f"train: batch {sizes['batch_size']} @ {th}x{tw}, {sum(counts)} GT boxes "
            f"{tuple(counts)}; inference: batch {sizes['test_batch_size']} @ {vh}x{vw}",
            f"configured = {names['configured']}; stock = {names['stock']} (mmdet, same "
            'weights)',
            'sync = aten::_local_scalar_dense; dyn = dynamic-shape ops (nonzero, unique, '
            'masked_select, bool-mask index/index_put, NMS);',
            'h2d / d2h = host->device / device->host copies (tensors from host data, '
            'tolist/numpy); nms = NMS calls',
            '',
            f"{'':<26}|{'configured':>{width}} |{'stock':>{width}}",
            f"{'phase':<26}|{kinds} |{kinds}"]


def format_table(report: Dict) -> str:
    """Render :func:`run_audit`'s report as a fixed-width text table."""
    sides = report['sides']
    lines = _header(report)
    for label, phase, key in _ROWS:
        cells = [_cells(sides[s]['phases'].get(phase, {}), key) for s in SIDES]
        lines.append(f'{label:<26}|{cells[0]} |{cells[1]}')
    if 'explain' in sides['configured']:
        lines += ['', 'torch._dynamo.explain graph breaks    configured    stock']
        for key in ('loss', 'post-processing up to NMS', 'get_bboxes'):
            lines.append(f'{key:<36}{_breaks(sides["configured"], key):>11}'
                         f'{_breaks(sides["stock"], key):>9}')
    lines += compile_count.format_compile_lines(report)
    for side in SIDES:
        lines += _offender_lines(side, sides[side])
    return '\n'.join(lines)


def _offender_lines(name: str, side: Dict) -> List[str]:
    found = []
    for phase, data in side['phases'].items():
        found += [dict(item, phase=phase) for item in data.get('offenders', ())]
    if not found:
        return ['', f'{name}: no host sync, dynamic-shape op or copy recorded']
    found.sort(key=lambda item: -item['count'])
    lines = ['', f'{name}: most frequent offending call sites']
    for item in found[:8]:
        lines.append(f"  {item['count']:>4} x {item['kind']:<7} {item['op']:<32} "
                     f"{item['phase']:<17} {item['where']}")
    return lines


def summary(report: Dict, side: str = 'configured') -> Dict[str, int]:
    """Key numbers of one side (what the tests and the README check).

    Returns:
        dict[str, int]: ``train_sync``, ``train_dynamic``, ``train_d2h``, ``pre_nms_sync``,
        ``pre_nms_dynamic``, ``nms_calls`` and, with explain, ``loss_breaks`` and
        ``pre_nms_breaks``.
    """
    data = report['sides'][side]
    train = data['phases']['training iteration']['counts']
    pre = data['phases'][POST]['counts_pre_nms']
    result = dict(train_sync=train['sync'], train_dynamic=train['dynamic'],
                  train_d2h=train['d2h'], pre_nms_sync=pre['sync'],
                  pre_nms_dynamic=pre['dynamic'], nms_calls=data['phases'][POST]['nms_calls'])
    if 'explain' in data:
        result['loss_breaks'] = data['explain']['loss']['graph_break_count']
        pre_nms = data['explain']['post-processing up to NMS']
        result['pre_nms_breaks'] = None if pre_nms is None else pre_nms['graph_break_count']
    return result


def phases_of(report: Dict, side: str) -> Sequence[str]:
    """Names of the recorded phases of one side."""
    return [p for p in report['sides'][side]['phases'] if p != 'training iteration']
