"""Which ATen ops a call spends its time in (``torch.profiler``), per call.

Used by ``tools/benchmark_dense_heads.py --profile-post`` to show where an HPU head's
post-processing time goes (the README's fresh-head breakdown).
"""
from collections import defaultdict
from typing import Callable, List, NamedTuple, Optional, Tuple

from torch.profiler import ProfilerActivity, profile, record_function

_MARK = 'mmdet_hpu.op_profile.call'


class OpTime(NamedTuple):
    """One ATen op's share of a call (means per call)."""

    name: str  # e.g. 'aten::topk'
    self_ms: float  # time inside the op itself (not its children)
    calls: float  # how many times one call runs it


def profile_ops(fn: Callable[[], object], calls: int,
                before: Optional[Callable[[], object]] = None
                ) -> Tuple[List[OpTime], float, float]:
    """Profile ``calls`` runs of ``fn`` on the CPU.

    Args:
        fn (Callable): What to profile.
        calls (int): Profiled runs.
        before (Callable | None): Run before each call, outside the measured range (e.g. the
            stock call, as in the alternating benchmark).

    Returns:
        tuple[list[OpTime], float, float]: every op under ``fn``, most self time first; ops
        called directly by ``fn`` per call (nested ops not counted twice); the profiled ms
        per call (profiler overhead included).
    """
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            if before is not None:
                before()
            with record_function(_MARK):
                fn()
    marks = [event for event in prof.events() if event.name == _MARK]
    totals = defaultdict(lambda: [0.0, 0])
    top_level = 0
    for mark in marks:
        top_level += len(mark.cpu_children)
        for event in _descendants(mark):
            totals[event.name][0] += event.self_cpu_time_total
            totals[event.name][1] += 1
    ops = [OpTime(name, us / 1e3 / calls, count / calls) for name, (us, count) in totals.items()]
    ops.sort(key=lambda op: -op.self_ms)
    total_ms = sum(mark.cpu_time_total for mark in marks) / 1e3 / calls
    return ops, top_level / calls, total_ms


def _descendants(event):
    for child in event.cpu_children:
        yield child
        yield from _descendants(child)


def format_ops(ops: List[OpTime], limit: int) -> List[str]:
    """The ``limit`` first ops as aligned lines: name, ms per call, calls per call."""
    return [f'  {op.name:32s} {op.self_ms:8.3f} ms  {op.calls:6.1f} calls' for op in ops[:limit]]
