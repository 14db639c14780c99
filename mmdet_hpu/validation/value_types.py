"""Config values of the wrong type or range, e.g. ``--cfg-options runner.max_epochs=two``.

mmcv's ``--cfg-options`` keeps a value it cannot parse as a number as a string, and
the mistake surfaced as a traceback minutes later (after the work dir was written).
Each known numeric key is checked here, before anything is built.
"""
import math

from .errors import ValidationError

# key -> (kind, minimum, example); kind 'int' = an integer, 'number' = int or float.
# A key that is absent (or None where None is allowed) is not checked.
NUMERIC_KEYS = {
    'data.samples_per_gpu': ('int', 1, 8),
    'data.workers_per_gpu': ('int', 0, 2),
    'data.train_dataloader.samples_per_gpu': ('int', 1, 8),
    'data.train_dataloader.workers_per_gpu': ('int', 0, 2),
    'data.val_dataloader.samples_per_gpu': ('int', 1, 8),
    'data.val_dataloader.workers_per_gpu': ('int', 0, 2),
    'data.test_dataloader.samples_per_gpu': ('int', 1, 8),
    'data.test_dataloader.workers_per_gpu': ('int', 0, 2),
    'optimizer.lr': ('number', 0, 0.001),
    'optimizer.momentum': ('number', 0, 0.9),
    'optimizer.weight_decay': ('number', 0, 0.0005),
    'log_config.interval': ('int', 1, 50),
    'runner.max_epochs': ('int', 1, 12),
    'runner.max_iters': ('int', 1, 10000),
    'runner.max_iters_per_epoch': ('int', 1, 100),
    'total_epochs': ('int', 1, 12),
    'evaluation.interval': ('int', 1, 1),
    'checkpoint_config.interval': ('int', -1, 1),
    'checkpoint_config.max_keep_ckpts': ('int', -1, 3),
}
MISSING = object()


def _lookup(cfg, dotted):
    node = getattr(cfg, '_cfg_dict', cfg)  # mmcv.Config is not a dict; its ConfigDict is
    for part in dotted.split('.'):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def _is_number(value, kind):
    if isinstance(value, bool):
        return False
    if kind == 'int':
        return isinstance(value, int)
    return isinstance(value, (int, float)) and math.isfinite(value)


def value_problem(key, value):
    """Why ``value`` cannot be used for ``key`` of :data:`NUMERIC_KEYS`, or None."""
    kind, minimum, example = NUMERIC_KEYS[key]
    noun = 'an integer' if kind == 'int' else 'a finite number'
    if not _is_number(value, kind) or value < minimum:
        return (f'{key}={value!r} must be {noun} >= {minimum} (e.g. --cfg-options '
                f'{key}={example})')
    return None


def check_value_types(cfg):
    """Check every key of :data:`NUMERIC_KEYS` present in ``cfg``.

    Raises:
        ValidationError: Listing every bad value with an example of a good one.
    """
    problems = []
    for key in NUMERIC_KEYS:
        value = _lookup(cfg, key)
        if value is MISSING or (value is None and key == 'runner.max_iters_per_epoch'):
            continue
        problem = value_problem(key, value)
        if problem:
            problems.append(problem)
    if problems:
        raise ValidationError(f'config {cfg.filename!r} has {len(problems)} value(s) of the '
                              f'wrong type or range: ' + '; '.join(problems) + '. Fix them with '
                              '--cfg-options KEY=VALUE or in the config file.')
