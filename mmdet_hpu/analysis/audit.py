"""Audit any mmdet 2.x detector config for HPU-hostile code: host syncs, dynamic shapes, copies,
graph breaks.

For the configured detector **and** a stock mmdet copy with the same weights (every ``HPU*`` type
replaced by its stock parent class, see :mod:`mmdet_hpu.analysis.stock`), :func:`run_audit` runs
one training iteration and one inference batch on synthetic data (see
:mod:`mmdet_hpu.analysis.synthetic`) under :class:`~mmdet_hpu.analysis.op_audit.OpAudit`, as the
runner does: ``model.train_step`` + the log buffer, the optimizer hook's backward, clipping and
step; ``model(return_loss=False, rescale=True, ...)`` for the test batch. The ops are attributed
to phases as :mod:`mmdet_hpu.analysis.phases` describes (single-stage: forward, targets+loss,
backward, optimizer, inference forward, post-processing; two-stage adds the RPN proposals in
training and at inference). Post-processing and proposals are split into the part before NMS,
the NMS calls and the part after the last NMS call (see
:meth:`~mmdet_hpu.analysis.op_audit.PhaseStats.segment_of`).

The optimizer phase uses the hook the runner would use: for the configured side the config's
optimizer hook as an HPU runner upgrades it (``HPUOptimizerHook``, a non-logging iteration,
``DeviceLogBuffer``); for the stock side mmcv's ``OptimizerHook`` (``float(grad_norm)`` into a
``LogBuffer``). A config with HPU model types runs with an HPU runner even if it names
mmdet's (``mmdet-hpu-train`` upgrades it). ``torch._dynamo.explain`` counts the graph breaks of
the heads' ``loss`` and ``get_bboxes`` calls made during the audited iteration, and of
post-processing up to NMS of a single-stage head (:data:`PRE_NMS_ENTRIES`): an HPU head's
``get_bboxes_pre_nms`` with the arguments its own post-processing passes, a stock
``BaseDenseHead``'s ``get_bboxes(..., with_nms=False)``; other heads (stock ``YOLOV3Head``,
two-stage detectors): n/a.

A config without any ``HPU*`` model type is audited once, as-is (its stock counterpart is the
same model); ``skip_stock`` audits the configured side only.

The per-side report is assembled in one place, :func:`assemble_side`: a new per-side section
(e.g. compiled graph counts) is one more key there and one more block in
:mod:`mmdet_hpu.analysis.audit_table`.
"""
import contextlib
import logging
import types
import warnings
from typing import Callable, Dict, List, Optional

import mmcv
import torch
from mmcv.runner import HOOKS, LogBuffer, OptimizerHook, build_optimizer

import mmdet_hpu  # noqa: F401  (registers the HPU types a stock config's audit may meet)
from mmdet_hpu.runner.base import upgrade_optimizer_config
from mmdet_hpu.runner.log_buffer import DeviceLogBuffer

from . import compile_count, synthetic
from .audit_table import format_table  # noqa: F401  (re-exported)
from .op_audit import OpAudit, total_counts
from .phases import POST, SINGLE_STAGE, Call, PhasePlan, plan_for, routed
from .stock import hpu_replacements

#: Phases of a single-stage detector (two-stage: see :data:`mmdet_hpu.analysis.phases.TWO_STAGE`).
TRAIN_PHASES = SINGLE_STAGE.train_phases
INFER_PHASES = SINGLE_STAGE.infer_phases
SIDES = ('configured', 'stock')
TRAINING_TOTAL, INFERENCE_TOTAL = 'training iteration', 'inference'
NMS_SEGMENTS = ('pre_nms', 'nms', 'post_nms')


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
        top (int | None): Offending call sites kept per phase (None: all).
        checkpoint (str | None): Weights to load (default: freshly initialised).
        skip_stock (bool): Audit the configured side only.
        compile_batches (int): Training batches of the compiled-graph count (0: skip it).
    """

    def __init__(self, **kwargs):
        defaults = dict(batch_size=None, test_batch_size=None, img_size=None, num_gt=None,
                        device='cpu', explain=True, seed=0, top=None, checkpoint=None,
                        skip_stock=False, compile_batches=0)
        unknown = set(kwargs) - set(defaults)
        if unknown:
            raise TypeError(f'unknown audit settings: {sorted(unknown)}')
        defaults.update(kwargs)
        super().__init__(**defaults)


# ------------------------------------------------------------------------------ training
def _is_hpu_runner(cfg: mmcv.Config) -> bool:
    return str(cfg.get('runner', {}).get('type', '')).startswith('HPU')


def trains_with_hpu_runner(cfg: mmcv.Config) -> bool:
    """Whether ``mmdet-hpu-train`` runs the configured side with an HPU runner and hook.

    True for an HPU runner type, and for a config with HPU model types (this project's
    RetinaNet / SSD / FCOS / ATSS configs keep mmdet's ``EpochBasedRunner``, which
    ``mmdet-hpu-train`` upgrades, see :func:`mmdet_hpu.apis.config_types.upgrade_config_types`).
    A config without HPU types (a zoo config audited before porting) keeps its own runner.
    """
    return _is_hpu_runner(cfg) or bool(hpu_replacements(cfg.model))


def optimizer_hook_for(cfg: mmcv.Config, stock: bool, hpu_runner: Optional[bool] = None):
    """The optimizer hook and log buffer the runner would use for one side.

    Args:
        cfg (mmcv.Config): The config (``optimizer_config``, ``runner``).
        stock (bool): Stock side: mmcv ``OptimizerHook`` + ``LogBuffer``.
        hpu_runner (bool | None): Whether the configured side runs with an HPU runner (None:
            when ``cfg.runner`` is one).

    Returns:
        tuple[OptimizerHook, LogBuffer]: For an HPU runner, the upgraded hook
        (``HPUOptimizerHook``) and a ``DeviceLogBuffer``.
    """
    hook_cfg = dict(cfg.get('optimizer_config') or {})
    if hpu_runner is None:
        hpu_runner = _is_hpu_runner(cfg)
    if stock or not hpu_runner:
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


def _nothing(name):
    return contextlib.nullcontext()


def audit_training(model, batch: Dict, cfg: mmcv.Config, stock: bool, audit: OpAudit,
                   plan: PhasePlan, captures: Dict[str, Call]) -> None:
    """Run one training iteration phase by phase under ``audit``.

    A first, unrecorded iteration warms caches (anchors, optimizer state) as a real run's
    earlier iterations would.

    Args:
        model (nn.Module): The detector.
        batch (dict): A collated training batch (see :func:`synthetic.make_train_batch`).
        cfg (mmcv.Config): The config (optimizer, its hook, the runner).
        stock (bool): The stock side (mmcv's hook and log buffer).
        audit (OpAudit): Records the phases.
        plan (PhasePlan): How the step splits into phases.
        captures (dict[str, Call]): Filled with the calls to explain.
    """
    hook, log_buffer = optimizer_hook_for(cfg, stock, trains_with_hpu_runner(cfg))
    optimizer = build_optimizer(model, cfg.optimizer)
    runner = fake_runner(model, optimizer, log_buffer, cfg, len(batch['img_metas']))
    model.train()
    audit.declare(plan.train_phases)
    with routed(model, plan.train_routes, audit, captures):
        for record in (False, True):
            phase = audit.phase if record else _nothing
            with phase(plan.train_default):
                outputs = model.train_step(batch, optimizer)
                runner.log_buffer.update(outputs['log_vars'], outputs['num_samples'])
            with phase('backward'):
                backward_step(hook, runner, outputs['loss'])
            with phase('optimizer'):
                optimizer_step(hook, runner)
            audit.mark_host_tensors(host_step_counters(optimizer))


@torch.no_grad()
def audit_inference(model, batch: Dict, audit: OpAudit, plan: PhasePlan,
                    captures: Dict[str, Call]) -> None:
    """Run one test batch as the test loop does (``rescale=True``), after a warm-up batch."""
    model.eval()
    audit.declare(plan.infer_phases)
    with routed(model, plan.infer_routes, audit, captures):
        for record in (False, True):
            phase = audit.phase if record else _nothing
            with phase(plan.infer_default):
                model(return_loss=False, rescale=True, img=[batch['img']],
                      img_metas=[batch['img_metas']])


# ------------------------------------------------------------------------------ dynamo
def _explain(fn: Callable, *args, **kwargs) -> Dict:
    """``torch._dynamo.explain`` summary: graphs, breaks and their reasons (or the error)."""
    torch._dynamo.reset()
    # Dynamo logs every break as a warning; the report lists them.
    quiet = [logging.getLogger(name) for name in ('torch.fx.experimental.symbolic_shapes',
                                                   'torch._dynamo')]
    levels = [log.level for log in quiet]
    try:
        for log in quiet:
            log.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            out = torch._dynamo.explain(fn)(*args, **kwargs)
    except Exception as err:  # an op dynamo cannot trace at all: report, do not abort
        return dict(graph_count=None, graph_break_count=None, break_reasons=[],
                    error=f'{type(err).__name__}: {str(err).splitlines()[0][:200]}')
    finally:
        for log, level in zip(quiet, levels):
            log.setLevel(level)
        torch._dynamo.reset()
    reasons = [dict(reason=str(r.reason).splitlines()[0][:200],
                    where=_frame_text(r.user_stack[-1]) if r.user_stack else '?')
               for r in out.break_reasons]
    return dict(graph_count=out.graph_count, graph_break_count=out.graph_break_count,
                break_reasons=reasons)


def _frame_text(frame) -> str:
    from .op_audit import _short_path

    return f'{_short_path(frame.filename)}:{frame.lineno} ({frame.name})'


def _yolov3_pre_nms(head, call: Call):
    """``HPUYOLOV3Head.get_bboxes_pre_nms`` with the arguments its ``get_bboxes`` (or
    ``static_detections``, what ``HPUYOLOV3.simple_test`` calls) would use."""
    if not (hasattr(head, 'get_bboxes_pre_nms') and hasattr(head, '_scale_factors')):
        return None
    pred_maps = list(call.args[0])
    if getattr(call.fn, '__name__', '') == 'static_detections':
        scale, params = call.args[1], call.args[2]
        return head.get_bboxes_pre_nms, (pred_maps, scale, params.conf_thr, params.score_thr,
                                         params.nms_pre)
    metas = call.kwargs.get('img_metas', call.args[1] if len(call.args) > 1 else None)
    cfg = head.test_cfg
    scale = head._scale_factors(metas, pred_maps[0].device)
    return head.get_bboxes_pre_nms, (pred_maps, scale, cfg.get('conf_thr', -1),
                                     cfg['score_thr'], cfg.get('nms_pre', 1000))


def _clone_tree(value):
    """Tensors of a nested tuple/list/dict cloned (a replay must not change the captured call)."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, tuple) and hasattr(value, '_fields'):  # a NamedTuple
        return type(value)(*(_clone_tree(item) for item in value))
    if isinstance(value, (list, tuple)):
        return type(value)(_clone_tree(item) for item in value)
    if type(value) is dict:  # noqa: E721  (a ConfigDict holds no tensors: kept as it is)
        return {key: _clone_tree(item) for key, item in value.items()}
    return value


def _recorded_pre_nms(head, call: Call):
    """Any head with a ``get_bboxes_pre_nms`` method (HPURetinaHead, HPUSSDHead, HPUFCOSHead,
    HPUATSSHead, ...): that method with the arguments its post-processing passes to it.

    The captured ``get_bboxes`` call is replayed once (no grad, on cloned inputs) with the method
    wrapped to record its first call, so the entry follows each head's own signature. None when
    the replay does not reach it (e.g. ``score_factors`` sending an anchor head to stock code).
    """
    original = getattr(head, 'get_bboxes_pre_nms', None)
    if not callable(original):
        return None
    recorded = []

    def recording(*args, **kwargs):
        if not recorded:
            recorded.append((_clone_tree(args), _clone_tree(kwargs)))
        return original(*args, **kwargs)

    previous = head.__dict__.get('get_bboxes_pre_nms')
    head.__dict__['get_bboxes_pre_nms'] = recording
    try:
        with torch.no_grad():
            call.fn(*_clone_tree(call.args), **_clone_tree(call.kwargs))
    finally:
        if previous is None:
            del head.__dict__['get_bboxes_pre_nms']
        else:
            head.__dict__['get_bboxes_pre_nms'] = previous
    if not recorded:
        return None
    args, kwargs = recorded[0]
    return original, args, kwargs


def _stock_dense_pre_nms(head, call: Call):
    """A stock ``BaseDenseHead`` (RetinaHead, SSDHead, FCOSHead, ATSSHead, GFLHead, ...):
    ``get_bboxes(..., with_nms=False)``, which stops right before the NMS of
    ``BaseDenseHead._bbox_post_process``. None for heads that override either method (their
    ``with_nms=False`` may still run NMS, as stock ``YOLOV3Head.get_bboxes`` does)."""
    from mmdet.models.dense_heads.base_dense_head import BaseDenseHead

    if hasattr(head, 'get_bboxes_pre_nms') or not isinstance(head, BaseDenseHead):
        return None
    if type(head).get_bboxes is not BaseDenseHead.get_bboxes or \
            type(head)._bbox_post_process is not BaseDenseHead._bbox_post_process:
        return None
    if getattr(call.fn, '__name__', '') != 'get_bboxes':
        return None
    return call.fn, _clone_tree(call.args), dict(_clone_tree(call.kwargs), with_nms=False)


#: Functions ``(head, get_bboxes call) -> (fn, args) | (fn, args, kwargs) | None`` giving a
#: head's post-processing up to NMS; the first that answers is explained.
PRE_NMS_ENTRIES: List[Callable] = [_yolov3_pre_nms, _recorded_pre_nms, _stock_dense_pre_nms]


def _pre_nms_explain(model, plan: PhasePlan, captures: Dict[str, Call]) -> Optional[Dict]:
    call = captures.get('get_bboxes')
    if plan is not SINGLE_STAGE or call is None:
        return None
    for entry in PRE_NMS_ENTRIES:
        found = entry(model.bbox_head, call)
        if found is not None:
            fn, args, kwargs = found if len(found) == 3 else (*found, {})
            source = fn.__name__ + ('(with_nms=False)' if 'with_nms' in kwargs else '')
            with torch.no_grad():
                return dict(_explain(fn, *args, **kwargs), source=source)
    # explain() reports one reason per graph, not per break, so get_bboxes' reasons cannot be
    # split at NMS reliably: see the get_bboxes row instead.
    return None


def explain_side(model, plan: PhasePlan, captures: Dict[str, Call]) -> Dict:
    """Graph breaks of each captured call, and of post-processing up to NMS.

    Returns:
        dict[str, dict | None]: Keyed by capture label (``loss``, ``get_bboxes``; two-stage:
        ``RPN loss``, ``RoI loss``, ``RPN get_bboxes``, ``RoI get_bboxes``) plus
        ``post-processing up to NMS`` (None: no pre-NMS entry point).
    """
    pre_nms = _pre_nms_explain(model, plan, captures)
    result = {}
    for label, call in captures.items():
        if label == 'get_bboxes':  # listed before the whole get_bboxes
            result['post-processing up to NMS'] = pre_nms
        with torch.set_grad_enabled('loss' in label):
            result[label] = _explain(call.fn, *call.args, **call.kwargs)
    result.setdefault('post-processing up to NMS', pre_nms)
    return result


# ------------------------------------------------------------------------------ report
def _phase_entry(stats, nms_split: bool, top: Optional[int]) -> Dict:
    entry = dict(counts=stats.counts(), num_ops=stats.num_ops, nms_calls=stats.nms_calls,
                 host_scalar_reads=stats.host_scalar_reads, offenders=stats.offenders(top=top))
    if nms_split:
        for segment in NMS_SEGMENTS:
            entry[f'counts_{segment}'] = stats.counts(segment)
    return entry


def phase_report(audit: OpAudit, plan: PhasePlan, top: Optional[int]) -> Dict:
    """Per-phase counts, NMS splits, offenders, and the training / inference totals."""
    report = {name: _phase_entry(audit.phases[name], name in plan.nms_phases, top)
              for name in plan.train_phases + plan.infer_phases}
    report[TRAINING_TOTAL] = dict(
        counts=total_counts([audit.phases[p] for p in plan.train_phases]))
    report[INFERENCE_TOTAL] = dict(
        counts=total_counts([audit.phases[p] for p in plan.infer_phases]),
        nms_calls=sum(audit.phases[p].nms_calls for p in plan.infer_phases))
    return report


def head_names(model) -> str:
    """The heads of a detector: ``YOLOV3Head``; two-stage ``RPNHead + Shared2FCBBoxHead``."""
    if getattr(model, 'bbox_head', None) is not None:
        return type(model.bbox_head).__name__
    roi_bbox = getattr(model.roi_head, 'bbox_head', None)
    roi = type(roi_bbox).__name__ if roi_bbox is not None else type(model.roi_head).__name__
    return f'{type(model.rpn_head).__name__} + {roi}'


def assemble_side(model, plan: PhasePlan, audit: OpAudit, explain: Optional[Dict],
                  settings: AuditSettings) -> Dict:
    """The report of one side: THE place where the per-side sections are put together.

    Args:
        model (nn.Module): The audited detector.
        plan (PhasePlan): Its phases.
        audit (OpAudit): The recorded phases.
        explain (dict | None): :func:`explain_side`'s result (None: not run).
        settings (AuditSettings): Options.

    Returns:
        dict: ``detector``, ``head``, ``kind``, ``phases`` (see :func:`phase_report`) and,
        when run, ``explain``.
    """
    side = dict(detector=type(model).__name__, head=head_names(model), kind=plan.kind,
                phases=phase_report(audit, plan, settings.top))
    if explain is not None:
        side['explain'] = explain
    return side


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
        dict: See :func:`assemble_side`.
    """
    train_batch = synthetic.make_train_batch(cfg, stock, sizes['batch_size'], sizes['train_hw'],
                                             sizes['gt_counts'], settings.device, settings.seed)
    test_batch = synthetic.make_test_batch(cfg, sizes['test_batch_size'], sizes['test_hw'],
                                           settings.device, settings.seed + 1)
    plan = plan_for(model)
    audit, captures = OpAudit(), {}
    audit_training(model, train_batch, cfg, stock, audit, plan, captures)
    audit_inference(model, test_batch, audit, plan, captures)
    explain = explain_side(model, plan, captures) if settings.explain else None
    return assemble_side(model, plan, audit, explain, settings)


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
        cfg (mmcv.Config): Any mmdet 2.x detector config (single- or two-stage, HPU types or
            not).
        settings (AuditSettings | None): Sizes and options.
        config_path (str): Shown in the report.

    Returns:
        dict: JSON-serialisable report: ``config``, ``device``, ``sizes``, ``hpu_types``
        (``{HPU type: stock type}``, empty for a config that is not HPU-ported), ``stock``
        (``'audited'``, ``'same as configured'`` or ``'skipped'``) and ``sides``
        (``configured`` and, when audited, ``stock``; see :func:`audit_side`).
    """
    settings = settings or AuditSettings()
    sizes = resolve_sizes(cfg, settings)
    replacements = hpu_replacements(cfg.model)
    configured, stock = synthetic.build_model_pair(cfg, settings.device, settings.seed,
                                                   checkpoint=settings.checkpoint)
    if settings.skip_stock:
        stock_state = 'skipped'
    elif not replacements and not _is_hpu_runner(cfg) and not synthetic.pads_gt(cfg):
        stock_state = 'same as configured'
    else:
        stock_state = 'audited'
    sides = dict(configured=audit_side(cfg, configured, False, sizes, settings))
    if stock_state == 'audited':
        sides['stock'] = audit_side(cfg, stock, True, sizes, settings)
    report = dict(config=config_path, device=settings.device, sizes=sizes,
                  hpu_types=replacements, stock=stock_state, sides=sides)
    if settings.compile_batches and hasattr(configured, 'train_graph'):
        report['compile'] = compile_count.count_compiled_graphs(
            configured, cfg, sizes, settings.compile_batches, settings.seed, settings.device)
    return report


# ------------------------------------------------------------------------------ summaries
def side_report(report: Dict, side: str) -> Dict:
    """One side's report; ``'stock'`` of a config that is not HPU-ported is the configured one.

    Raises:
        KeyError: For the stock side of a report made with ``skip_stock``.
    """
    if side == 'stock' and report.get('stock') == 'same as configured':
        return report['sides']['configured']
    return report['sides'][side]


def _breaks(explain: Dict, pick: Callable[[str], bool]) -> Optional[int]:
    counts = [value['graph_break_count'] for key, value in explain.items()
              if pick(key) and value is not None]
    if not counts or any(count is None for count in counts):
        return None
    return sum(counts)


def summary(report: Dict, side: str = 'configured') -> Dict[str, int]:
    """Key numbers of one side (what the tests and the README check).

    Returns:
        dict[str, int]: ``train_sync``, ``train_dynamic``, ``train_d2h``, ``pre_nms_sync``,
        ``pre_nms_dynamic`` (post-processing before NMS, see
        :meth:`~mmdet_hpu.analysis.op_audit.PhaseStats.segment_of`), ``nms_calls``
        (post-processing), ``infer_sync``,
        ``infer_dynamic`` (the whole inference: forward, proposals, post-processing) and, with
        explain, ``loss_breaks`` (every captured loss) and ``pre_nms_breaks`` (None: no
        pre-NMS entry point).
    """
    data = side_report(report, side)
    train = data['phases'][TRAINING_TOTAL]['counts']
    infer = data['phases'][INFERENCE_TOTAL]['counts']
    pre = data['phases'][POST]['counts_pre_nms']
    result = dict(train_sync=train['sync'], train_dynamic=train['dynamic'],
                  train_d2h=train['d2h'], pre_nms_sync=pre['sync'],
                  pre_nms_dynamic=pre['dynamic'], nms_calls=data['phases'][POST]['nms_calls'],
                  infer_sync=infer['sync'], infer_dynamic=infer['dynamic'])
    if 'explain' in data:
        explain = data['explain']
        result['loss_breaks'] = _breaks(explain, lambda key: key.endswith('loss'))
        pre_nms = explain.get('post-processing up to NMS')
        result['pre_nms_breaks'] = None if pre_nms is None else pre_nms['graph_break_count']
    return result


def phases_of(report: Dict, side: str) -> List[str]:
    """Names of the recorded phases of one side (totals excluded)."""
    return [p for p in side_report(report, side)['phases']
            if p not in (TRAINING_TOTAL, INFERENCE_TOTAL)]

