"""Where the time of a step goes: wall-clock time inside named methods of one object.

Used by ``tools/benchmark_anchor_heads.py --phases`` to split an HPU head's training step
(targets, losses, the rest: backward and the loss's glue) the way the README reports it.
"""
import time
from typing import Callable, Dict, List, Optional, Sequence

from .method_patch import wrapped_methods

OTHER, STEP = 'other', 'step'


def time_phases(obj, methods: Sequence[str], step: Callable[[], object], steps: int,
                before: Optional[Callable[[], object]] = None,
                clock: Callable[[], float] = time.perf_counter) -> Dict[str, List[float]]:
    """Run ``step`` ``steps`` times and split each run's time by the methods it calls.

    Args:
        obj: The object whose methods are timed (e.g. a head).
        methods (Sequence[str]): Its methods to time. None may call another while timed.
        step (Callable): One step (e.g. loss + backward), calling some of ``methods``.
        steps (int): Timed runs.
        before (Callable | None): Run before each step, untimed (e.g. the stock step, so that
            the caches are as in the alternating benchmark).
        clock (Callable): Seconds.

    Returns:
        dict[str, list[float]]: ms per step spent in each method (all its calls of the step),
        ``'other'`` (the rest of the step) and ``'step'`` (the whole step).

    Raises:
        ValueError: When a timed method calls another timed method (its time would count
            twice).
    """
    times = {name: [] for name in (*methods, OTHER, STEP)}
    inside = {name: 0.0 for name in methods}
    active = []

    def timed(name, method):
        def wrapper(*args, **kwargs):
            if active:
                raise ValueError(f'{name} was called inside {active[-1]}: time one of them')
            active.append(name)
            start = clock()
            try:
                return method(*args, **kwargs)
            finally:
                inside[name] += clock() - start
                active.pop()
        return wrapper

    with wrapped_methods([(obj, name, timed(name, getattr(obj, name))) for name in methods]):
        for _ in range(steps):
            if before is not None:
                before()
            inside.update(dict.fromkeys(methods, 0.0))
            start = clock()
            step()
            total = clock() - start
            for name in methods:
                times[name].append(inside[name] * 1e3)
            times[OTHER].append((total - sum(inside.values())) * 1e3)
            times[STEP].append(total * 1e3)
    return times
