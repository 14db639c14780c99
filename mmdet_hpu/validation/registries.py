"""Every mmcv registry loaded in this process, and "did you mean" suggestions."""
import difflib
import sys

_CLOSE_CUTOFF = 0.6


def all_registries():
    """Every ``mmcv.utils.Registry`` reachable from an imported module, children included.

    mmdet's and the plugin's registries (``MODELS``, ``HOOKS``, ``RUNNERS``,
    ``OPTIMIZERS``, ``DATASETS``, ``PIPELINES``...) are module-level objects; types
    added by ``custom_imports`` are in them too once the config is loaded.

    Returns:
        list[Registry]: Distinct registries.
    """
    from mmcv.utils import Registry

    found = {}
    for module in list(sys.modules.values()):
        for value in list(getattr(module, '__dict__', {}).values()):
            if issubclass(type(value), Registry):  # type(): no lazy-proxy __class__ calls
                found[id(value)] = value
    pending = list(found.values())
    while pending:
        for child in pending.pop().children.values():
            if id(child) not in found:
                found[id(child)] = child
                pending.append(child)
    return list(found.values())


def is_registered(type_name, registries=None):
    """Whether any registry can build ``type_name`` (scoped names like ``mmdet.X`` too)."""
    for registry in registries or all_registries():
        try:
            if registry.get(type_name) is not None:
                return True
        except (KeyError, ValueError):
            continue
    return False


def registered_names(registries=None):
    """Sorted names of every registered type."""
    names = set()
    for registry in registries or all_registries():
        names.update(registry.module_dict)
    return sorted(names)


def close_matches(word, candidates, n=3, cutoff=_CLOSE_CUTOFF):
    """``difflib.get_close_matches``, case-insensitively, returning the original spellings."""
    lowered = {}
    for name in candidates:
        lowered.setdefault(name.lower(), name)
    hits = difflib.get_close_matches(word.lower(), list(lowered), n=n, cutoff=cutoff)
    return [lowered[h] for h in hits]


def did_you_mean(word, candidates, n=3, cutoff=_CLOSE_CUTOFF):
    """``" Did you mean 'x'?"`` (or ``'x' or 'y'``), or ``''`` when nothing is close."""
    hits = close_matches(word, candidates, n=n, cutoff=cutoff)
    if not hits:
        return ''
    return ' Did you mean ' + ' or '.join(repr(h) for h in hits) + '?'
