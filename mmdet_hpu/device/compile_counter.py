"""Count the graphs ``torch.compile`` hands to its backend: one per (re)compilation.

A graph compiler (Gaudi's ``hpu_backend``, inductor) is asked for a new graph whenever dynamo
sees inputs its guards do not accept (another shape, another Python value). Wrapping the
backend counts exactly those requests, on any device and for any backend::

    fn = torch.compile(fn, backend=COMPILED_GRAPHS.wrap('eager'), dynamic=False)
    fn(x)
    assert COMPILED_GRAPHS.graphs == 1
"""
import logging
from typing import Callable, Union

import torch

logger = logging.getLogger(__name__)

#: Default recompile limit for :func:`raise_recompile_limit`: far above the graphs a static
#: model needs (5 GT buckets x a last, smaller batch x train/test), far below a per-batch leak.
RECOMPILE_LIMIT = 64


class GraphCounter:
    """Counts the graphs compiled through the backends it wraps.

    Attributes:
        graphs (int): Graphs compiled so far.
    """

    def __init__(self) -> None:
        self.graphs = 0

    def wrap(self, backend: Union[str, Callable]) -> Callable:
        """A dynamo backend that counts each graph and compiles it with ``backend``.

        Args:
            backend (str | callable): A registered backend name (``'hpu_backend'``,
                ``'inductor'``, ``'eager'``) or a backend function ``(gm, example_inputs)``.

        Returns:
            callable: The counting backend.
        """
        from torch._dynamo import lookup_backend

        compile_graph = lookup_backend(backend) if isinstance(backend, str) else backend

        def counting_backend(graph_module, example_inputs):
            self.graphs += 1
            return compile_graph(graph_module, example_inputs)

        return counting_backend


#: Process-wide counter of the graphs compiled by :func:`mmdet_hpu.device.compile_model`.
COMPILED_GRAPHS = GraphCounter()


def compiled_graphs() -> int:
    """Graphs compiled so far by :func:`mmdet_hpu.device.compile_model` in this process."""
    return COMPILED_GRAPHS.graphs


def raise_recompile_limit(limit: int = RECOMPILE_LIMIT) -> None:
    """Let dynamo compile up to ``limit`` graphs per function and fail, never fall back, above.

    torch's default (8) is below the graphs of a bucketed model (one per GT bucket and batch
    size); past it dynamo silently runs the function uncompiled. Here the limit is raised and,
    where torch supports it, hitting it raises instead
    (``fail_on_recompile_limit_hit``, torch >= 2.7; torch 2.6 calls it
    ``cache_size_limit`` and only warns).

    Args:
        limit (int): Graphs per compiled function.
    """
    config = torch._dynamo.config
    for name in ('recompile_limit', 'cache_size_limit'):
        if hasattr(config, name):
            setattr(config, name, max(getattr(config, name), limit))
    for name in ('accumulated_recompile_limit', 'accumulated_cache_size_limit'):
        if hasattr(config, name):
            setattr(config, name, max(getattr(config, name), 4 * limit))
    if hasattr(config, 'fail_on_recompile_limit_hit'):
        config.fail_on_recompile_limit_hit = True
    else:
        logger.warning('this torch cannot fail on the dynamo recompile limit (%d graphs); '
                       'watch the compiled-graph count in the log', limit)
