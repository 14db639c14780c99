"""Which phase each part of a detector's training step and inference belongs to.

The audit runs the detector as the runner does (``train_step``, then the optimizer hook;
``model(return_loss=False, rescale=True, ...)`` for a test batch) and attributes the ops to
phases by wrapping a few methods of the model for the duration of the run (:func:`routed`):
a routed call is recorded in its phase and the code around it in the plan's default phase.

==============  ==========================================================================
detector kind   phases
==============  ==========================================================================
single-stage    training: ``forward`` (``extract_feat`` + ``bbox_head.forward``),
                ``targets+loss`` (everything else in ``train_step``: ``bbox_head.loss``,
                ``_parse_losses``, the log buffer), ``backward``, ``optimizer``.
                inference: ``inference forward`` (``extract_feat`` + ``bbox_head.forward``),
                ``post-processing`` (the rest: ``get_bboxes`` with its NMS, ``bbox2result``).
two-stage       training: ``forward`` (``extract_feat``, ``rpn_head.forward``,
                ``roi_head._bbox_forward`` / ``_mask_forward``: RoI extraction and the RoI
                heads), ``proposals`` (``rpn_head.get_bboxes``: RPN post-processing and NMS),
                ``targets+loss`` (the rest: RPN targets and loss, RoI assignment and sampling,
                RoI targets and loss, ``_parse_losses``), ``backward``, ``optimizer``.
                inference: ``inference forward`` (as in training), ``inference proposals``
                (``rpn_head.get_bboxes``), ``post-processing`` (the rest: ``bbox2roi``,
                the RoI head's ``get_bboxes`` with its NMS, ``bbox2result``).
==============  ==========================================================================

The phases in :attr:`PhasePlan.nms_phases` are reported before / during / after NMS.
A route may also capture the arguments of its first recorded call (for
``torch._dynamo.explain``).
"""
import contextlib
from dataclasses import dataclass
from typing import Dict, Iterator, Optional, Tuple

from .method_patch import wrapped_methods
from .op_audit import OpAudit

FORWARD, TARGETS_LOSS, BACKWARD, OPTIMIZER = 'forward', 'targets+loss', 'backward', 'optimizer'
INFER_FORWARD, POST = 'inference forward', 'post-processing'
PROPOSALS, INFER_PROPOSALS = 'proposals', 'inference proposals'


@dataclass(frozen=True)
class Route:
    """A method whose calls are recorded in another phase and/or captured.

    Attributes:
        owner (str): Dotted attribute path from the detector (``''``: the detector itself).
        method (str): Method name.
        phase (str | None): Phase of its calls (None: the caller's phase).
        capture (str | None): Label under which its first recorded call is kept.
    """

    owner: str
    method: str
    phase: Optional[str] = None
    capture: Optional[str] = None


@dataclass(frozen=True)
class PhasePlan:
    """How one kind of detector is split into phases.

    Attributes:
        kind (str): ``'single-stage'`` or ``'two-stage'``.
        train_phases (tuple[str]): Training phases, in order.
        infer_phases (tuple[str]): Inference phases, in order.
        nms_phases (tuple[str]): Phases reported before / during / after NMS.
        train_default (str): Phase of ``train_step`` code that no route claims.
        infer_default (str): Phase of test code that no route claims.
        train_routes (tuple[Route]): Routes while training.
        infer_routes (tuple[Route]): Routes at inference.
    """

    kind: str
    train_phases: Tuple[str, ...]
    infer_phases: Tuple[str, ...]
    nms_phases: Tuple[str, ...]
    train_default: str
    infer_default: str
    train_routes: Tuple[Route, ...]
    infer_routes: Tuple[Route, ...]


SINGLE_STAGE = PhasePlan(
    kind='single-stage',
    train_phases=(FORWARD, TARGETS_LOSS, BACKWARD, OPTIMIZER),
    infer_phases=(INFER_FORWARD, POST),
    nms_phases=(POST,),
    train_default=TARGETS_LOSS,
    infer_default=POST,
    train_routes=(Route('', 'extract_feat', FORWARD), Route('bbox_head', 'forward', FORWARD),
                  Route('bbox_head', 'loss', capture='loss'),
                  # HPUYOLOV3's train_graph calls its head's padded-GT loss directly.
                  Route('bbox_head', 'loss_padded', capture='loss')),
    infer_routes=(Route('', 'extract_feat', INFER_FORWARD),
                  Route('bbox_head', 'forward', INFER_FORWARD),
                  Route('bbox_head', 'get_bboxes', capture='get_bboxes'),
                  # HPUYOLOV3 post-processes through its head's static entry point instead.
                  Route('bbox_head', 'static_detections', capture='get_bboxes')),
)

TWO_STAGE = PhasePlan(
    kind='two-stage',
    train_phases=(FORWARD, PROPOSALS, TARGETS_LOSS, BACKWARD, OPTIMIZER),
    infer_phases=(INFER_FORWARD, INFER_PROPOSALS, POST),
    nms_phases=(PROPOSALS, INFER_PROPOSALS, POST),
    train_default=TARGETS_LOSS,
    infer_default=POST,
    train_routes=(Route('', 'extract_feat', FORWARD), Route('rpn_head', 'forward', FORWARD),
                  Route('rpn_head', 'loss', capture='RPN loss'),
                  Route('rpn_head', 'get_bboxes', PROPOSALS),
                  Route('roi_head', '_bbox_forward', FORWARD),
                  Route('roi_head', '_mask_forward', FORWARD),
                  Route('roi_head.bbox_head', 'loss', capture='RoI loss')),
    infer_routes=(Route('', 'extract_feat', INFER_FORWARD),
                  Route('rpn_head', 'forward', INFER_FORWARD),
                  Route('rpn_head', 'get_bboxes', INFER_PROPOSALS, capture='RPN get_bboxes'),
                  Route('roi_head', '_bbox_forward', INFER_FORWARD),
                  Route('roi_head', '_mask_forward', INFER_FORWARD),
                  Route('roi_head.bbox_head', 'get_bboxes', capture='RoI get_bboxes')),
)


def plan_for(model) -> PhasePlan:
    """The phase plan of a detector: two-stage when it has an RPN and a RoI head.

    Raises:
        TypeError: If the detector has neither a ``bbox_head`` nor ``rpn_head`` + ``roi_head``.
    """
    if getattr(model, 'rpn_head', None) is not None and \
            getattr(model, 'roi_head', None) is not None:
        return TWO_STAGE
    if getattr(model, 'bbox_head', None) is not None:
        return SINGLE_STAGE
    raise TypeError(f'{type(model).__name__} has neither a bbox_head (single-stage) nor an '
                    'rpn_head and a roi_head (two-stage)')


def _resolve(model, owner: str):
    obj = model
    for name in filter(None, owner.split('.')):
        obj = getattr(obj, name, None)
    return obj


@dataclass
class Call:
    """A captured call: the bound method and its arguments (tensors detached)."""

    fn: object
    args: tuple
    kwargs: Dict


@contextlib.contextmanager
def routed(model, routes, audit: OpAudit, captures: Dict[str, Call]) -> Iterator[None]:
    """Wrap the routed methods of ``model`` for the duration of the block.

    Routes whose owner or method the model lacks are skipped (e.g. ``_mask_forward`` of a
    detector without masks).

    Args:
        model (nn.Module): The detector.
        routes (Iterable[Route]): What to wrap.
        audit (OpAudit): Records the phases.
        captures (dict[str, Call]): Filled with the first recorded call of each capturing
            route.
    """
    wrappers = []
    for route in routes:
        obj = _resolve(model, route.owner)
        original = getattr(obj, route.method, None) if obj is not None else None
        if callable(original):
            wrappers.append((obj, route.method, _wrap(original, route, audit, captures)))
    with wrapped_methods(wrappers):
        yield


def _wrap(original, route: Route, audit: OpAudit, captures: Dict[str, Call]):
    def wrapper(*args, **kwargs):
        if route.capture and audit.active and route.capture not in captures:
            captures[route.capture] = Call(original, detach_tree(args), detach_tree(kwargs))
        if route.phase is None:
            return original(*args, **kwargs)
        with audit.switch(route.phase):
            return original(*args, **kwargs)

    return wrapper


def detach_tree(value):
    """Tensors of a nested tuple/list/dict detached (those that needed grad still do)."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().requires_grad_() if value.requires_grad else value
    if isinstance(value, tuple) and hasattr(value, '_fields'):  # a NamedTuple
        return type(value)(*(detach_tree(item) for item in value))
    if isinstance(value, (list, tuple)):
        return type(value)(detach_tree(item) for item in value)
    if type(value) is dict:  # noqa: E721  (a ConfigDict holds no tensors: kept as it is)
        return {key: detach_tree(item) for key, item in value.items()}
    return value
