"""Methods of objects replaced by wrappers for the duration of a block, then restored."""
import contextlib
from typing import Callable, Iterable, Iterator, Tuple

_ABSENT = object()


@contextlib.contextmanager
def wrapped_methods(wrappers: Iterable[Tuple[object, str, Callable]]) -> Iterator[None]:
    """Install each ``(obj, name, fn)`` as the instance attribute ``obj.name`` for the block.

    Whatever the instance held under that name before (usually nothing: the class's method)
    is put back afterwards, also when the block raises.

    Args:
        wrappers (Iterable[tuple[object, str, Callable]]): What to install where.
    """
    installed = []
    try:
        for obj, name, fn in wrappers:
            installed.append((obj, name, obj.__dict__.get(name, _ABSENT)))
            obj.__dict__[name] = fn
        yield
    finally:
        for obj, name, previous in reversed(installed):
            if previous is _ABSENT:
                del obj.__dict__[name]
            else:
                obj.__dict__[name] = previous
