"""Record what a function dispatches (op name, dtype of every tensor it touches), and run the
device path of ``mmdet_hpu.models.utils.cpu_speedups`` on the CPU."""
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


def dispatched_dtypes(fn):
    """Run ``fn``; return the set of (op overload name, dtype) of every tensor argument and
    result, plus (op overload name, None) for every op."""
    seen = set()

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            name = str(func)
            seen.add((name, None))
            seen.update((name, leaf.dtype) for leaf in tree_leaves((args, kwargs, out))
                        if isinstance(leaf, torch.Tensor))
            return out

    with Record():
        fn()
    return seen


def byte_ops_and_dtype_views(fn):
    """(ops touching a uint8 tensor, dtype-reinterpreting views) that ``fn`` dispatches."""
    seen = dispatched_dtypes(fn)
    return ({op for op, dtype in seen if dtype == torch.uint8},
            {op for op, _ in seen if op == 'aten.view.dtype'})


def take_device_path(monkeypatch):
    """Make ``use_cpu_speedups`` answer False: the path HPU and CUDA tensors take."""
    from mmdet_hpu.models.utils import cpu_speedups
    monkeypatch.setattr(cpu_speedups, 'use_cpu_speedups', lambda tensor: False)
