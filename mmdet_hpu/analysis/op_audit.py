"""Record, per named phase, the ops that make a model slow on Gaudi: host syncs, dynamic shapes,
host<->device copies.

:class:`OpAudit` runs the code under a ``TorchDispatchMode`` (every aten op) and a
``TorchFunctionMode`` (``Tensor.tolist()``/``numpy()``, which dispatch no aten op) and sorts the
ops into four kinds:

* ``sync``: ``aten::_local_scalar_dense`` (``.item()``, ``float(t)``, ``int(t)``, ``if t:``): the
  host waits for the device;
* ``dynamic``: ops whose output shape depends on the data (``nonzero``, ``unique``,
  ``masked_select``, boolean/uint8-mask ``index``/``index_put``) and NMS: a recompilation or a
  device wait on HPU;
* ``h2d``: tensors built from host data inside the measured code (``torch.tensor``,
  ``new_tensor``, ``from_numpy``; on a device each one is a host-to-device copy) and explicit
  host-to-device copies;
* ``d2h``: bulk reads (``tolist()``/``numpy()``) and explicit device-to-host copies.

The first two reuse :mod:`mmdet_hpu.runner.host_reads` (one source of truth for what counts as a
host read); this module adds NMS, uint8 masks and the copies.

NMS kernels are counted once per call, not op by op: mmcv's compiled NMS (``mmcv.ops.nms``'s
extension module) and ``torchvision.ops.batched_nms``'s two strategies are wrapped while an
audit phase is active, and the ops they run internally are not classified. The calls are
counted (``nms_calls``); a phase's events fall into ``pre_nms``, ``nms`` and ``post_nms``
segments (see :meth:`PhaseStats.segment_of`).

Example::

    audit = OpAudit()
    with audit.phase('loss'):
        loss = head.loss(...)
    print(audit.phases['loss'].counts())   # {'sync': 3, 'dynamic': 0, 'h2d': 0, 'd2h': 0}
"""
import contextlib
import os.path as osp
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from mmdet_hpu.runner.host_reads import _BULK_METHODS, _is_dynamic

SYNC, DYNAMIC, H2D, D2H = 'sync', 'dynamic', 'h2d', 'd2h'
KINDS = (SYNC, DYNAMIC, H2D, D2H)
SEGMENTS = ('all', 'pre_nms', 'nms', 'post_nms')

# Frames of these files are skipped when locating the user code that issued an op.
_SKIP_DIRS = (osp.dirname(torch.__file__), osp.dirname(contextlib.__file__))
_THIS_FILE = osp.abspath(__file__)
_NMS_EXT_FUNCS = ('nms', 'softnms', 'nms_match', 'nms_rotated', 'nms_quadri')
_TV_NMS_FUNCS = ('_batched_nms_vanilla', '_batched_nms_coordinate_trick')
# Python functions whose ops belong to NMS (multiclass_nms's score filter does not).
_NMS_PY_FUNCS = frozenset(('nms', 'batched_nms', 'soft_nms', 'nms_match', 'nms_rotated',
                           'nms_quadri', 'forward') + _TV_NMS_FUNCS)


@dataclass
class OpEvent:
    """One flagged op.

    Attributes:
        kind (str): One of :data:`KINDS`.
        op (str): Op name, e.g. ``aten.nonzero.default`` or ``mmcv.nms``.
        where (str): ``file:line (function)`` of the innermost non-torch frame.
        nms_before (int): NMS calls of the phase started before this op.
        in_nms (bool): The op is an NMS call or runs inside an NMS function (e.g. the per-class
            ``unique``/``nonzero`` loop of mmcv's or torchvision's ``batched_nms``).
    """

    kind: str
    op: str
    where: str
    nms_before: int = 0
    in_nms: bool = False


@dataclass
class PhaseStats:
    """What one phase did.

    Attributes:
        name (str): Phase name.
        events (list[OpEvent]): Flagged ops in order.
        num_ops (int): Every aten op dispatched (flagged or not; NMS internals excluded).
        nms_calls (int): NMS calls.
        host_scalar_reads (int): Scalar reads of tensors registered with
            :meth:`OpAudit.mark_host_tensors` (host-resident by design, so not syncs).
    """

    name: str
    events: List[OpEvent] = field(default_factory=list)
    num_ops: int = 0
    nms_calls: int = 0
    host_scalar_reads: int = 0

    def segment_of(self, event: OpEvent) -> str:
        """``'nms'``, ``'post_nms'`` (after the last NMS call) or ``'pre_nms'`` (the rest).

        With a single NMS call, ``pre_nms`` is everything before it. With one NMS call per
        image (stock mmdet), ``pre_nms`` holds every image's filtering, which all runs before
        the last call. Without any NMS call everything is ``pre_nms``.
        """
        if event.in_nms:
            return 'nms'
        if self.nms_calls and event.nms_before >= self.nms_calls:
            return 'post_nms'
        return 'pre_nms'

    def _selected(self, segment: str) -> List[OpEvent]:
        if segment not in SEGMENTS:
            raise ValueError(f'segment must be one of {SEGMENTS}, got {segment!r}')
        if segment == 'all':
            return self.events
        return [event for event in self.events if self.segment_of(event) == segment]

    def counts(self, segment: str = 'all') -> Dict[str, int]:
        """Flagged ops per kind.

        Args:
            segment (str): ``'all'``, ``'pre_nms'``, ``'nms'`` or ``'post_nms'`` (see
                :meth:`segment_of`).

        Returns:
            dict[str, int]: One count per kind of :data:`KINDS`.
        """
        found = Counter(event.kind for event in self._selected(segment))
        return {kind: found[kind] for kind in KINDS}

    def offenders(self, segment: str = 'all', top: int = 10) -> List[dict]:
        """The most frequent (kind, op, where) triples, to find the code to fix.

        Args:
            segment (str): See :meth:`counts`.
            top (int): How many to return.

        Returns:
            list[dict]: ``kind``, ``op``, ``where`` and ``count``, most frequent first.
        """
        found = Counter((e.kind, e.op, e.where) for e in self._selected(segment))
        return [dict(kind=kind, op=op, where=where, count=count)
                for (kind, op, where), count in found.most_common(top)]


def _is_mask_index(name: str, args) -> bool:
    """uint8 masks index like bool masks (deprecated, still dynamic); host_reads checks bool."""
    if not name.startswith(('aten.index.Tensor', 'aten.index_put')) or len(args) < 2:
        return False
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.uint8 for i in (args[1] or ()))


def _copy_kind(name: str, args, kwargs) -> Optional[str]:
    """``h2d``/``d2h`` for host data turned into a tensor or a copy across devices."""
    if name.startswith('aten.lift_fresh'):
        return H2D
    if name.startswith('aten._to_copy') and args and isinstance(args[0], torch.Tensor):
        src, dst = args[0].device, kwargs.get('device')
    elif name.startswith('aten.copy_') and len(args) > 1 and isinstance(args[1], torch.Tensor):
        src, dst = args[1].device, args[0].device
    else:
        return None
    if dst is None or torch.device(dst).type == src.type:
        return None
    return D2H if torch.device(dst).type == 'cpu' else H2D


def classify(func, args, kwargs) -> Optional[str]:
    """The kind of one dispatched aten op, or None for a harmless one.

    Args:
        func (torch._ops.OpOverload): The op.
        args (tuple): Its positional arguments.
        kwargs (dict): Its keyword arguments.

    Returns:
        str | None: One of :data:`KINDS`, or None.
    """
    name = str(func)
    if name.startswith('aten._local_scalar_dense'):
        return SYNC
    if 'nms' in name or _is_dynamic(name, args) or _is_mask_index(name, args):
        return DYNAMIC
    return _copy_kind(name, args, kwargs or {})


def _caller(depth: int = 2) -> Tuple[str, bool]:
    """Where the user code issued an op, and whether that code is an NMS function.

    Returns:
        tuple[str, bool]: ``file:line (function)`` of the innermost frame outside torch and
        this module, and whether an NMS function of mmcv or torchvision is on the stack.
    """
    frame, where, in_nms = sys._getframe(depth), '?', False
    while frame is not None:
        path = osp.abspath(frame.f_code.co_filename)
        if path != _THIS_FILE and not path.startswith(_SKIP_DIRS):
            if where == '?':
                where = f'{_short_path(path)}:{frame.f_lineno} ({frame.f_code.co_name})'
            in_nms = in_nms or _is_nms_frame(path, frame.f_code.co_name)
        frame = frame.f_back
    return where, in_nms


def _is_nms_frame(path: str, func: str) -> bool:
    """NMS code of mmcv (``mmcv/ops/nms.py``) or torchvision (``torchvision/ops/boxes.py``)."""
    return func in _NMS_PY_FUNCS and path.endswith((osp.join('mmcv', 'ops', 'nms.py'),
                                                    osp.join('torchvision', 'ops', 'boxes.py')))


def _short_path(path: str) -> str:
    """Path from the package root (``mmdet/...``, ``mmdet_hpu/...``) when recognisable."""
    for marker in ('site-packages' + osp.sep, 'dist-packages' + osp.sep):
        if marker in path:
            return path.split(marker, 1)[1]
    parts = path.split(osp.sep)
    for i, part in enumerate(parts):
        if part.startswith('mmdet_hpu'):
            return osp.join(*parts[i:])
    return path


class _DispatchRecorder(TorchDispatchMode):
    """Forwards every aten op to :meth:`OpAudit._on_op`."""

    def __init__(self, audit: 'OpAudit') -> None:
        super().__init__()
        self.audit = audit

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.audit._on_op(func, args, kwargs)
        return func(*args, **kwargs)


class _FunctionRecorder(TorchFunctionMode):
    """Flags ``Tensor.tolist()``/``numpy()``, which dispatch no aten op on the CPU."""

    def __init__(self, audit: 'OpAudit') -> None:
        super().__init__()
        self.audit = audit

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, '__name__', None)
        if name in _BULK_METHODS:
            self.audit._flag(D2H, f'Tensor.{name}')
        return func(*args, **(kwargs or {}))


class OpAudit:
    """Per-phase recorder of host syncs, dynamic-shape ops, NMS calls and host<->device copies.

    Attributes:
        phases (dict[str, PhaseStats]): Results by phase name, in recording order.
    """

    def __init__(self) -> None:
        self.phases: Dict[str, PhaseStats] = {}
        self._current: Optional[PhaseStats] = None
        self._nms_depth = 0
        self._host_tensors: List[torch.Tensor] = []
        self._host_ids = set()

    def mark_host_tensors(self, tensors) -> None:
        """Declare tensors that live on the host even in a device run.

        A CPU audit cannot tell them apart from device tensors. ``torch.optim`` optimizers
        that are neither ``capturable`` nor ``fused`` keep their ``step`` counters on the CPU
        and read them with ``.item()`` (Adam, AdamW...): reading those costs no device sync, so
        such reads are counted in ``host_scalar_reads`` instead of ``sync``.

        Args:
            tensors (Iterable[Tensor]): The host-resident tensors (kept alive by the audit).
        """
        for tensor in tensors:
            self._host_tensors.append(tensor)
            self._host_ids.add(id(tensor))

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[PhaseStats]:
        """Record the ops run inside the ``with`` block as phase ``name``.

        Recording the same name twice adds to it. Phases do not nest.

        Args:
            name (str): Phase name.

        Yields:
            PhaseStats: The phase's record (filled while the block runs).
        """
        if self._current is not None:
            raise RuntimeError(f'phase {name!r} started inside phase {self._current.name!r}')
        stats = self.phases.setdefault(name, PhaseStats(name))
        self._current = stats
        try:
            with self._nms_wrappers(), _FunctionRecorder(self), _DispatchRecorder(self):
                yield stats
        finally:
            self._current = None

    @property
    def active(self) -> bool:
        """Whether a phase is being recorded."""
        return self._current is not None

    def declare(self, names) -> None:
        """Create empty phases in this order (the report lists phases in creation order)."""
        for name in names:
            self.phases.setdefault(name, PhaseStats(name))

    @contextlib.contextmanager
    def switch(self, name: str) -> Iterator[Optional[PhaseStats]]:
        """Record the ``with`` block as phase ``name`` and then return to the current phase.

        Used to attribute a call made inside a phase (e.g. the head's ``loss`` inside the
        detector's ``forward_train``) to another phase. Outside any phase it records nothing.

        Args:
            name (str): Phase name.

        Yields:
            PhaseStats | None: The phase's record, None when nothing is recorded.
        """
        if self._current is None:
            yield None
            return
        saved = self._current
        self._current = self.phases.setdefault(name, PhaseStats(name))
        try:
            yield self._current
        finally:
            self._current = saved

    # ------------------------------------------------------------------ recording
    def _on_op(self, func, args, kwargs) -> None:
        if self._current is None or self._nms_depth:
            return
        self._current.num_ops += 1
        kind = classify(func, args, kwargs)
        if kind is None:
            return
        if kind == SYNC and args and id(args[0]) in self._host_ids:
            self._current.host_scalar_reads += 1
            return
        # torchvision::nms called directly
        self._flag(kind, str(func), nms_call='nms' in str(func))

    def _flag(self, kind: str, op: str, nms_call: bool = False) -> None:
        stats = self._current
        if stats is None or self._nms_depth:
            return
        where, in_nms = _caller(3)
        stats.events.append(OpEvent(kind, op, where, stats.nms_calls, in_nms or nms_call))
        if nms_call:
            stats.nms_calls += 1

    def _nms_call(self, op: str, fn: Callable) -> Callable:
        """Wrap an NMS implementation: one ``dynamic`` event, internals not classified."""

        def wrapper(*args, **kwargs):
            if self._current is not None and not self._nms_depth:
                self._flag(DYNAMIC, op, nms_call=True)
            self._nms_depth += 1
            try:
                return fn(*args, **kwargs)
            finally:
                self._nms_depth -= 1

        return wrapper

    @contextlib.contextmanager
    def _nms_wrappers(self) -> Iterator[None]:
        """Temporarily wrap mmcv's NMS kernels and torchvision's ``batched_nms`` strategies."""
        patches = []
        mmcv_nms = sys.modules.get('mmcv.ops.nms')
        if mmcv_nms is not None and hasattr(mmcv_nms, 'ext_module'):
            patches.append((mmcv_nms, 'ext_module', _ExtProxy(mmcv_nms.ext_module, self)))
        tv_boxes = sys.modules.get('torchvision.ops.boxes')
        for name in _TV_NMS_FUNCS:
            if tv_boxes is not None and hasattr(tv_boxes, name):
                wrapped = self._nms_call(f'torchvision.batched_nms{name[len("_batched_nms"):]}',
                                         getattr(tv_boxes, name))
                patches.append((tv_boxes, name, wrapped))
        saved = [(obj, attr, getattr(obj, attr)) for obj, attr, _ in patches]
        try:
            for obj, attr, value in patches:
                setattr(obj, attr, value)
            yield
        finally:
            for obj, attr, value in reversed(saved):
                setattr(obj, attr, value)


class _ExtProxy:
    """Stands in for mmcv's compiled ``ext_module``; its NMS functions report to the audit."""

    def __init__(self, ext_module, audit: OpAudit) -> None:
        self._ext = ext_module
        self._audit = audit

    def __getattr__(self, name: str):
        value = getattr(self._ext, name)
        if name in _NMS_EXT_FUNCS:
            return self._audit._nms_call(f'mmcv.{name}', value)
        return value


def total_counts(stats: List[PhaseStats], segment: str = 'all') -> Dict[str, int]:
    """Sum :meth:`PhaseStats.counts` over several phases.

    Args:
        stats (list[PhaseStats]): Phases.
        segment (str): See :meth:`PhaseStats.counts`.

    Returns:
        dict[str, int]: One total per kind.
    """
    totals = Counter()
    for phase in stats:
        totals.update(phase.counts(segment))
    return {kind: totals[kind] for kind in KINDS}
