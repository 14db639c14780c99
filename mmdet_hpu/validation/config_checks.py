"""Typos in config keys and registry type names, found before anything is built.

mmcv ignores a top-level key it does not know (``optimzer = dict(lr=...)`` in a
derived config silently keeps the base optimizer), and a wrong ``type`` or
runner/optimizer argument only fails minutes later with a traceback. These
checks report all such mistakes at once, each with the closest valid name.
"""
import inspect

from .errors import ValidationError
from .registries import all_registries, did_you_mean, is_registered, registered_names

# Top-level keys that mmcv/mmdet/mmdet-hpu read. A key close to one of these but not
# equal to it is a typo; other unknown keys are helper variables and are allowed.
CONSUMED_KEYS = (
    'model', 'data', 'optimizer', 'optimizer_config', 'lr_config', 'momentum_config', 'runner',
    'total_epochs', 'checkpoint_config', 'log_config', 'evaluation', 'workflow', 'dist_params',
    'log_level', 'load_from', 'resume_from', 'work_dir', 'custom_hooks', 'custom_imports',
    'opencv_num_threads', 'mp_start_method', 'auto_scale_lr', 'fp16', 'gpu_ids', 'seed',
    'device', 'auto_resume', 'find_unused_parameters', 'train_cfg', 'test_cfg', 'data_root',
    'bucket_cap_mb', 'execution_mode', 'autocast')
TYPO_CUTOFF = 0.85
RUNNER_DEFAULT_ARGS = ('model', 'batch_processor', 'optimizer', 'work_dir', 'logger', 'meta')
OPTIMIZER_EXTRA_KEYS = ('type', 'paramwise_cfg', 'constructor')
# Dicts under these keys name functions, not registered classes (mmcv.ops nms variants).
NON_REGISTRY_KEYS = ('nms', 'rpn_nms')
# Types whose nested dicts are built by another library (albumentations).
OPAQUE_TYPES = ('Albu',)
MAX_LISTED = 10


def accepted_kwargs(cls):
    """Keyword arguments ``cls(...)`` accepts, following ``**kwargs`` up the MRO.

    Returns:
        set[str] | None: The names, or None when some ``__init__`` accepts anything.
    """
    names = set()
    for klass in cls.__mro__:
        if '__init__' not in vars(klass) or klass is object:
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        names.update(p.name for p in params
                     if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return names - {'self'}
    return None


def _top_level_typos(cfg):
    problems = []
    for key in cfg.keys():
        if key in CONSUMED_KEYS:
            continue
        hint = did_you_mean(key, CONSUMED_KEYS, n=1, cutoff=TYPO_CUTOFF)
        if hint:
            problems.append(f'unknown top-level key {key!r} (mmdet ignores it, so it has no '
                            f'effect).{hint}')
    return problems


def _unknown_kwargs(section, section_cfg, cls, allowed_extra=()):
    accepted = accepted_kwargs(cls)
    if accepted is None:
        return []
    accepted |= set(allowed_extra)
    problems = []
    for key in section_cfg:
        if key not in accepted:
            problems.append(f'unknown key {section}.{key} for {cls.__name__}.'
                            f'{did_you_mean(key, sorted(accepted), n=1)}')
    return problems


def _registered_class(registry_attr, type_name):
    import mmcv.runner as runner_mod

    try:
        return getattr(runner_mod, registry_attr).get(type_name)
    except (KeyError, ValueError):
        return None


def _runner_keys(cfg):
    runner = cfg.get('runner')
    if not isinstance(runner, dict) or not isinstance(runner.get('type'), str):
        return []
    cls = _registered_class('RUNNERS', runner['type'])
    if cls is None:
        return []  # reported by _unknown_types
    keys = [k for k in runner if k not in ('type', 'constructor')]
    return _unknown_kwargs('runner', keys, cls, RUNNER_DEFAULT_ARGS)


def _optimizer_keys(cfg):
    optimizer = cfg.get('optimizer')
    if not isinstance(optimizer, dict) or not isinstance(optimizer.get('type'), str):
        return []
    if optimizer.get('constructor') not in (None, 'DefaultOptimizerConstructor'):
        return []  # a custom constructor may take other keys
    cls = _registered_class('OPTIMIZERS', optimizer['type'])
    if cls is None:
        return []
    keys = [k for k in optimizer if k not in OPTIMIZER_EXTRA_KEYS]
    return _unknown_kwargs('optimizer', keys, cls, ('params',))


def _iter_types(node, path):
    """Yield ``(path, type_name)`` for every ``type=<str>`` in nested dicts/lists."""
    if isinstance(node, dict):
        type_name = node.get('type')
        if isinstance(type_name, str) and path.rsplit('.', 1)[-1] not in NON_REGISTRY_KEYS:
            yield path, type_name
        if type_name in OPAQUE_TYPES:
            return
        for key, value in node.items():
            yield from _iter_types(value, f'{path}.{key}' if path else str(key))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _iter_types(value, f'{path}[{i}]')


def _is_op_name(type_name):
    """mmcv builds some types by name without a registry: ``roi_layer=dict(type='RoIAlign')``
    (``getattr(mmcv.ops, ...)``), and lower-case names such as ``'nms'``, ``'conv'`` or
    ``'dilation'`` select functions or modes inside a module."""
    if type_name == type_name.lower():
        return True
    try:
        import mmcv.ops
    except ImportError:  # mmcv without compiled ops
        return False
    return hasattr(mmcv.ops, type_name)


def _unknown_types(cfg):
    registries = all_registries()
    names = None
    problems = []
    tree = cfg._cfg_dict.to_dict()
    for key in CONSUMED_KEYS:  # helper variables are checked where they are used
        for path, type_name in _iter_types(tree.get(key), key):
            if is_registered(type_name, registries) or _is_op_name(type_name):
                continue
            names = names or registered_names(registries)
            problems.append(f"unknown type {type_name!r} at {path}.type (not registered in any "
                            f"mmcv/mmdet/mmdet_hpu registry).{did_you_mean(type_name, names)}")
    return problems


def _policy_problems(cfg, key, suffix):
    section = cfg.get(key)
    if not isinstance(section, dict) or not isinstance(section.get('policy'), str):
        return []
    policy = section['policy']
    hook_policy = policy.title() if policy == policy.lower() else policy
    if is_registered(hook_policy + suffix):
        return []
    policies = [n[:-len(suffix)] for n in registered_names() if n.endswith(suffix)]
    return [f'unknown {key}.policy {policy!r}.{did_you_mean(hook_policy, policies)}']


def check_config_keys(cfg):
    """Reject top-level key typos, unknown runner/optimizer keys and unknown types.

    Args:
        cfg (mmcv.Config): The config after command-line overrides.

    Raises:
        ValidationError: Listing every problem, each with the closest valid name.
    """
    problems = (_top_level_typos(cfg) + _runner_keys(cfg) + _optimizer_keys(cfg)
                + _unknown_types(cfg) + _policy_problems(cfg, 'lr_config', 'LrUpdaterHook')
                + _policy_problems(cfg, 'momentum_config', 'MomentumUpdaterHook'))
    if not problems:
        return
    shown = problems[:MAX_LISTED]
    more = f' (and {len(problems) - MAX_LISTED} more)' if len(problems) > MAX_LISTED else ''
    raise ValidationError(f'config {cfg.filename!r} has {len(problems)} mistake(s){more}: '
                          + ' '.join(f'({i}) {p}' for i, p in enumerate(shown, 1))
                          + ' Fix the config file or override with --cfg-options KEY=VALUE.')
