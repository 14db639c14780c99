"""What a loaded checkpoint must hold to be resumed from, fine-tuned from or tested.

Each check returns the one-paragraph problem (or None) or raises
:class:`~.errors.ValidationError`, before training or testing writes anything.
"""

import torch

from .errors import ValidationError

#: What each use of a checkpoint needs.
NEEDS = {
    'resume': "a dict with a 'state_dict' and a 'meta' dict holding 'epoch' and 'iter' (what "
              'mmcv/mmdet training writes)',
    'load_from': "a dict of weights, or a dict with a 'state_dict'",
    'test': "a dict of weights, or a dict with a 'state_dict'",
}
MAX_LISTED = 3

def _describe(value):
    if isinstance(value, torch.Tensor):
        return f'a bare tensor of shape {tuple(value.shape)}'
    return f'a {type(value).__name__}'

def _weights(checkpoint):
    """The state dict of a checkpoint dict, or None if it holds no mapping of tensors."""
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, dict) or not state:
        return None
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        return None
    return state

def structure_problem(checkpoint, source='resume'):
    """Why ``checkpoint`` cannot serve ``source`` (``'resume'``, ``'load_from'``,
    ``'test'``), or None.
    """
    if not isinstance(checkpoint, dict):
        return f'it is {_describe(checkpoint)}, not a checkpoint'
    if _weights(checkpoint) is None:
        return 'it holds no weights (no state_dict of tensors)'
    if source == 'resume':
        meta = checkpoint.get('meta')
        if not isinstance(meta, dict):
            return f"its meta is {'missing' if meta is None else _describe(meta)}"
        lacking = [k for k in ('epoch', 'iter') if not isinstance(meta.get(k), int)]
        if lacking:
            return f"its meta has no {' or '.join(lacking)}"
    return None

def check_structure(checkpoint, filename, source='resume'):
    """Raise :class:`ValidationError` when :func:`structure_problem` finds one."""
    problem = structure_problem(checkpoint, source)
    if problem:
        option = {'resume': '--resume-from / --auto-resume', 'load_from': 'load_from',
                  'test': 'the test checkpoint'}.get(source, source)
        raise ValidationError(
            f'checkpoint {filename!r} ({option}) cannot be used: {problem}. It needs to be '
            f'{NEEDS.get(source, NEEDS["resume"])}. Pass a checkpoint written by training '
            '(epoch_*.pth / iter_*.pth / latest.pth of a work dir).')

def nonfinite_weights(checkpoint):
    """Names of floating-point tensors of the state dict that hold NaN or Inf."""
    state = _weights(checkpoint) if isinstance(checkpoint, dict) else None
    bad = []
    for key, value in (state or {}).items():
        # Host read per tensor: load time, not the training loop.
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad.append(key)
    return bad

def check_finite_weights(checkpoint, filename):
    """Raise when the checkpoint's weights or buffers hold NaN/Inf (it would detect nothing)."""
    bad = nonfinite_weights(checkpoint)
    if bad:
        total = len(_weights(checkpoint))
        more = f' and {len(bad) - MAX_LISTED} more' if len(bad) > MAX_LISTED else ''
        raise ValidationError(
            f'checkpoint {filename!r} has non-finite values (NaN or Inf) in {len(bad)} of its '
            f'{total} tensors ({", ".join(bad[:MAX_LISTED])}{more}), so its detections would be '
            'meaningless. Training diverged before it was saved: use an earlier checkpoint of '
            'the run, and retrain with a lower learning rate or --on-nonfinite-loss stop.')

def _checkpoint_classes(checkpoint):
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    classes = meta.get('CLASSES') if isinstance(meta, dict) else None
    if isinstance(classes, str):
        classes = (classes,)
    return tuple(classes) if classes else None

def class_names_problem(checkpoint, dataset_classes, filename):
    """The message when the dataset's class names are not the checkpoint's, or None.

    Checkpoints without ``meta['CLASSES']`` are not checked (their count is checked
    from the weight shapes).
    """
    theirs = _checkpoint_classes(checkpoint)
    ours = tuple(dataset_classes or ())
    if theirs is None or theirs == ours:
        return None
    unknown = [c for c in ours if c not in theirs]
    if unknown:
        what = (f'the dataset has class(es) the checkpoint was not trained on: '
                f'{list(unknown[:MAX_LISTED])}')
    elif len(ours) != len(theirs):
        what = f'the dataset has {len(ours)} classes, the checkpoint {len(theirs)}'
    else:
        what = 'the dataset lists the same classes in another order, so labels would be swapped'
    return (f'checkpoint {filename!r} was trained on the classes {list(theirs)}, but {what} '
            f'(dataset classes: {list(ours)}). Evaluating it would score wrong labels. Set '
            'data.test.classes (and model.bbox_head.num_classes) to the checkpoint\'s classes '
            'in this order, or test a checkpoint trained on this dataset.')

def check_class_names(checkpoint, dataset_classes, filename):
    """Raise :class:`ValidationError` when :func:`class_names_problem` finds one."""
    problem = class_names_problem(checkpoint, dataset_classes, filename)
    if problem:
        raise ValidationError(problem)

__all__ = ['check_class_names', 'check_finite_weights', 'check_structure',
           'class_names_problem', 'nonfinite_weights', 'structure_problem']

