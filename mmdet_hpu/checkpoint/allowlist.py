"""The pickled types that mmcv/mmdet checkpoints contain beyond torch's own allow-list.

torch's ``weights_only`` unpickler already accepts tensors, storages, dtypes,
``torch.Size``, ``collections.OrderedDict`` (the ``state_dict``, with its
``_metadata``) and plain Python containers and scalars (``meta``: ``CLASSES``
tuple, ``hook_msgs``, ``config`` text, ``epoch``/``iter``; optimizer
``param_groups``). The only other objects found in checkpoints written by
``mmcv.runner.save_checkpoint``, ``EpochBasedRunner.save_checkpoint`` and
mmdet's hooks are numpy values put into ``meta``:

* numpy scalars (``best_score`` of an evaluation hook is a ``np.float64`` for
  VOC-style metrics; a seed drawn with numpy may be a ``np.int64``):
  ``numpy._core.multiarray.scalar`` + ``numpy.dtype`` + the concrete dtype class
  (``numpy.dtypes.Float64DType``...) that ``BUILD`` sets the dtype state on;
* numpy arrays (e.g. ``np.random.get_state()`` kept for exact resume):
  ``numpy._core.multiarray._reconstruct`` + ``numpy.ndarray``.

Only boolean, integer and floating dtypes are listed: no object, string or void
dtype. Files written with numpy 1.x name the reconstructors
``numpy.core.multiarray.*``; both spellings are listed.
"""
import numpy as np

# Scalar types whose dtype classes may be rebuilt (np.dtype(...).__class__).
_NUMERIC_TYPES = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
                  np.uint32, np.uint64, np.float16, np.float32, np.float64)


def _multiarray():
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    return multiarray


def _dtype_classes():
    classes = []
    for scalar_type in _NUMERIC_TYPES:
        cls = type(np.dtype(scalar_type))
        if cls is not np.dtype and cls not in classes:
            classes.append(cls)
    return classes


def safe_globals():
    """The list to pass to ``torch.serialization.safe_globals``.

    Returns:
        list: Callables/classes, and ``(callable, 'qualified.name')`` pairs for the
        numpy-1 spellings of the same functions.
    """
    multiarray = _multiarray()
    entries = [multiarray.scalar, multiarray._reconstruct, np.ndarray, np.dtype]
    entries += _dtype_classes()
    for func in (multiarray.scalar, multiarray._reconstruct):
        for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
            entries.append((func, f'{module}.{func.__name__}'))
    return entries


def describe():
    """Human-readable names of the allow-listed globals (for docs and logs)."""
    names = []
    for entry in safe_globals():
        name = entry[1] if isinstance(entry, tuple) else f'{entry.__module__}.{entry.__qualname__}'
        if name not in names:
            names.append(name)
    return names
