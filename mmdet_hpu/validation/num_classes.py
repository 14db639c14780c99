"""A checkpoint for a different number of classes (or another model) than the config.

A checkpoint whose weights differ from the model's only in the class-dependent
layers of the detection head is reported as a class-count mismatch (with the
``num_classes`` fix); one with missing or extra weights, or shape differences
outside the head, holds the weights of another architecture and is reported so,
without a ``num_classes`` hint.
"""
from .errors import ValidationError

FIXES = {
    'resume': ('Resume only with the config the checkpoint was trained with; to fine-tune it '
               'on the new classes start a new run with --cfg-options load_from={path} '
               '(the class-dependent head layers are then re-initialised).'),
    'test': ('Test with the config it was trained with: --cfg-options '
             'model.bbox_head.num_classes={n} and the matching data.test.classes.'),
    'load_from': ('The mismatched head layers are re-initialised (fine-tuning); if you meant '
                  'to keep them set model.bbox_head.num_classes={n}.'),
}
ARCH_FIXES = {
    'resume': 'Resume only with the config the checkpoint was trained with (mmdet keeps its '
              "text in the checkpoint's meta['config']).",
    'test': 'Test it with the config it was trained with (mmdet keeps its text in the '
            "checkpoint's meta['config']); evaluating it with this config would use untrained "
            'weights.',
    'load_from': 'Only the matching weights are loaded; the others keep their initialisation.',
}
MAX_LISTED = 3


def _state_dict(checkpoint):
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else {}
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}


def key_mismatches(checkpoint, model):
    """``(missing, unexpected)``: model weights absent from the checkpoint, and the reverse."""
    state = _state_dict(checkpoint)
    ours = model.state_dict()
    return ([k for k in ours if k not in state], [k for k in state if k not in ours])


def _head_prefix(model):
    """``'bbox_head.'`` or ``'roi_head.bbox_head.'``: where class-dependent layers live."""
    if hasattr(getattr(model, 'bbox_head', None), 'num_classes'):
        return 'bbox_head.'
    if hasattr(getattr(getattr(model, 'roi_head', None), 'bbox_head', None), 'num_classes'):
        return 'roi_head.bbox_head.'
    return None


def _bbox_head(model):
    head = getattr(model, 'bbox_head', None)
    if head is None and getattr(model, 'roi_head', None) is not None:
        head = getattr(model.roi_head, 'bbox_head', None)
    return head if hasattr(head, 'num_classes') else None


def shape_mismatches(checkpoint, model):
    """``[(key, checkpoint shape, model shape)]`` for weights present in both."""
    state = _state_dict(checkpoint)
    out = []
    for key, value in model.state_dict().items():
        theirs = state.get(key)
        if hasattr(theirs, 'shape') and tuple(theirs.shape) != tuple(value.shape):
            out.append((key, tuple(theirs.shape), tuple(value.shape)))
    return out


def _infer_classes(head, mismatches):
    """Number of classes of the checkpoint, from the first output layer that differs."""
    ours = head.num_classes
    for _, theirs_shape, our_shape in mismatches:
        if not theirs_shape or theirs_shape[1:] != our_shape[1:]:
            continue
        theirs, mine = theirs_shape[0], our_shape[0]
        priors = getattr(head, 'num_base_priors', None) or getattr(head, 'num_anchors', None)
        extra = getattr(head, 'num_attrib', ours) - ours  # YOLOv3: 5 box/objectness channels
        if priors and mine == priors * (ours + extra) and theirs % priors == 0:
            return theirs // priors - extra
        if mine % ours == 0 and (theirs * ours) % mine == 0:
            return theirs * ours // mine
    return None


def checkpoint_num_classes(checkpoint, model, mismatches=None):
    """The checkpoint's class count: ``meta['CLASSES']``, else inferred from shapes."""
    classes = (checkpoint.get('meta') or {}).get('CLASSES') if isinstance(checkpoint, dict) \
        else None
    if classes:
        return len(classes)
    head = _bbox_head(model)
    if head is None:
        return None
    return _infer_classes(head, shape_mismatches(checkpoint, model) if mismatches is None
                          else mismatches)


def _listed(keys):
    more = f' and {len(keys) - MAX_LISTED} more' if len(keys) > MAX_LISTED else ''
    return ', '.join(keys[:MAX_LISTED]) + more


def architecture_message(checkpoint, model, filename='checkpoint', source='resume'):
    """The text for weights of another architecture, or None when the keys match.

    Another architecture: the checkpoint lacks weights of the model or has weights the
    model does not, or shapes differ outside the detection head's class-dependent layers.
    """
    missing, unexpected = key_mismatches(checkpoint, model)
    prefix = _head_prefix(model)
    outside = [m for m in shape_mismatches(checkpoint, model)
               if prefix is None or not m[0].startswith(prefix)]
    if not (missing or unexpected or outside):
        return None
    total = len(model.state_dict())
    parts = []
    if missing:
        parts.append(f'{len(missing)} of the model\'s {total} weights are not in it '
                     f'({_listed(missing)})')
    if unexpected:
        parts.append(f'{len(unexpected)} of its weights are not in the model '
                     f'({_listed(unexpected)})')
    if outside:
        parts.append(f'{len(outside)} weight(s) differ in shape outside the detection head ('
                     + ', '.join(f'{k} {a} vs {b}' for k, a, b in outside[:MAX_LISTED]) + ')')
    return (f'checkpoint {filename!r} holds the weights of another architecture: it does not '
            f'match the model of the config ({"; ".join(parts)}). '
            f'{ARCH_FIXES.get(source, ARCH_FIXES["resume"])}')


def class_mismatch_message(checkpoint, model, filename='checkpoint', source='resume'):
    """The error text when ``checkpoint`` does not fit ``model``, or None when it does.

    Another architecture is reported as such (:func:`architecture_message`); only a
    checkpoint that differs in the head's class-dependent layers gets the class count.
    """
    arch = architecture_message(checkpoint, model, filename, source)
    if arch:
        return arch
    mismatches = shape_mismatches(checkpoint, model)
    if not mismatches:
        return None
    head = _bbox_head(model)
    theirs = checkpoint_num_classes(checkpoint, model, mismatches)
    listed = ', '.join(f'{k} {a} vs {b}' for k, a, b in mismatches[:MAX_LISTED])
    fix = FIXES.get(source, FIXES['resume']).format(path=filename, n=theirs)
    if head is not None and theirs is not None and theirs != head.num_classes:
        return (f'checkpoint {filename!r} has {theirs} classes, the config has '
                f'{head.num_classes} (model.bbox_head.num_classes); {len(mismatches)} weight(s) '
                f'differ in shape ({listed}). {fix}')
    return (f'checkpoint {filename!r} does not match the model of the config: '
            f'{len(mismatches)} weight(s) of the detection head differ in shape ({listed}). '
            'Use the config it was trained with.')


def check_num_classes(checkpoint, model, filename='checkpoint', source='resume'):
    """Raise when the checkpoint's weights do not fit the model (class count first).

    Args:
        checkpoint (dict): A loaded checkpoint (``state_dict`` and optional ``meta``).
        model (torch.nn.Module): The model built from the config.
        filename (str): For the message.
        source (str): ``'resume'``, ``'test'`` or ``'load_from'``: selects the fix.

    Raises:
        ValidationError: Naming both class counts and the fix.
    """
    message = class_mismatch_message(checkpoint, model, filename, source)
    if message:
        raise ValidationError(message)
