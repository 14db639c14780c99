"""The stock mmdet counterpart of a model config, and model configs that download nothing.

* :func:`strip_pretrained` removes every ``pretrained`` key and every
  ``init_cfg=dict(type='Pretrained', ...)`` from a config tree, so building and initialising the
  model never fetches weights (the audit runs offline on freshly initialised models).
* :func:`stock_model_cfg` replaces every ``HPU*`` type of a model config by its stock parent
  class and drops the arguments only the HPU class takes. The parent is found generically: an
  HPU class may declare it (``STOCK_TYPE = 'RetinaHead'``, and ``HPU_ONLY_ARGS`` for its extra
  arguments); otherwise it is the first class of its MRO defined in mmdet/mmcv and registered
  under its own name in the same registry, and the HPU-only arguments are the keyword parameters
  of the ``__init__`` of the classes before it in the MRO that no ``__init__`` of the stock
  class's MRO names.
"""
import copy
import inspect
from typing import Dict, List, Optional, Tuple

import mmcv

from mmdet_hpu.errors import ConfigError

HPU_PREFIX = 'HPU'
_STOCK_MODULES = ('mmdet.', 'mmcv.')


def _registries() -> List[mmcv.Registry]:
    """The registries a model config's ``type`` keys are looked up in (models first)."""
    from mmdet.core.anchor.builder import PRIOR_GENERATORS
    from mmdet.core.bbox.builder import BBOX_ASSIGNERS, BBOX_CODERS, BBOX_SAMPLERS
    from mmdet.core.bbox.iou_calculators.builder import IOU_CALCULATORS
    from mmdet.core.bbox.match_costs.builder import MATCH_COST
    from mmdet.models.builder import MODELS

    return [MODELS, BBOX_ASSIGNERS, BBOX_SAMPLERS, BBOX_CODERS, PRIOR_GENERATORS,
            IOU_CALCULATORS, MATCH_COST]


# ------------------------------------------------------------------------------ pretrained
def _is_pretrained_init(value) -> bool:
    return isinstance(value, dict) and value.get('type') == 'Pretrained'


def strip_pretrained(node):
    """A copy of a config tree without ``pretrained`` keys and ``Pretrained`` inits.

    ``init_cfg=dict(type='Pretrained', ...)`` is removed (the module then uses its default
    initialisation); a list ``init_cfg`` loses its ``Pretrained`` entries.

    Args:
        node (dict | list | Any): ``cfg.model`` or any part of it.

    Returns:
        The same structure (plain ``dict``/``list``) with nothing to download.
    """
    if isinstance(node, dict):
        result = {}
        for key, value in node.items():
            if key == 'pretrained' or (key == 'init_cfg' and _is_pretrained_init(value)):
                continue
            if key == 'init_cfg' and isinstance(value, (list, tuple)):
                value = [item for item in value if not _is_pretrained_init(item)]
            result[key] = strip_pretrained(value)
        return result
    if isinstance(node, (list, tuple)):
        return type(node)(strip_pretrained(item) for item in node)
    return node


def downloads_in(node, path: str = 'model') -> List[str]:
    """Where a config tree would fetch weights: ``pretrained`` keys and ``Pretrained`` inits.

    Returns:
        list[str]: Dotted paths, e.g. ``['model.backbone.init_cfg']``; empty when offline.
    """
    if _is_pretrained_init(node):
        return [path]
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'pretrained' and value:
                found.append(f'{path}.{key}')
            else:
                found += downloads_in(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, item in enumerate(node):
            found += downloads_in(item, f'{path}[{i}]')
    return found


# ------------------------------------------------------------------------------ HPU -> stock
def find_type(name: str) -> Tuple[Optional[mmcv.Registry], Optional[type]]:
    """The registry and class of a config ``type`` name (None, None when unknown)."""
    for registry in _registries():
        cls = registry.get(name)
        if cls is not None:
            return registry, cls
    return None, None


def is_hpu_class(cls: type) -> bool:
    """Whether a class is one of this package's (an ``HPU*`` type)."""
    return cls.__module__.startswith('mmdet_hpu')


def stock_parent(cls: type, registry: mmcv.Registry) -> type:
    """The stock mmdet/mmcv class an HPU class stands in for.

    Args:
        cls (type): An HPU class.
        registry (mmcv.Registry): The registry it was found in.

    Returns:
        type: ``cls.STOCK_TYPE`` when declared, else the first class of ``cls.__mro__``
        defined in mmdet/mmcv and registered under its own name in ``registry``.

    Raises:
        ConfigError: If there is none.
    """
    declared = getattr(cls, 'STOCK_TYPE', None)
    if isinstance(declared, type):
        return declared
    if isinstance(declared, str):
        found = registry.get(declared)
        if found is not None:
            return found
    for parent in cls.__mro__[1:]:
        if parent.__module__.startswith(_STOCK_MODULES) and \
                registry.get(parent.__name__) is parent:
            return parent
    raise ConfigError(f'{cls.__name__} has no stock mmdet parent class registered in '
                      f'{registry.name!r}; the audit cannot build its stock counterpart. Pass '
                      '--skip-stock to audit the configured model only.')


def _init_params(classes) -> set:
    names = set()
    for cls in classes:
        init = cls.__dict__.get('__init__')
        if init is None:
            continue
        for param in inspect.signature(init).parameters.values():
            if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                names.add(param.name)
    return names


def hpu_only_args(cls: type, stock: type) -> set:
    """Constructor arguments of an HPU class that its stock parent does not take."""
    declared = set(getattr(cls, 'HPU_ONLY_ARGS', ()))
    mro = cls.__mro__
    before_stock = mro[:mro.index(stock)] if stock in mro else (cls,)
    return declared | (_init_params(before_stock) - _init_params(stock.__mro__) - {'self'})


def _stock_node(node: dict, replaced: Dict[str, str]) -> dict:
    name = node.get('type')
    if not isinstance(name, str) or not name.startswith(HPU_PREFIX):
        return node
    registry, cls = find_type(name)
    if cls is None or not is_hpu_class(cls):
        return node
    stock = stock_parent(cls, registry)
    dropped = hpu_only_args(cls, stock)
    replaced[name] = stock.__name__
    return dict({k: v for k, v in node.items() if k not in dropped}, type=stock.__name__)


def _to_stock(node, replaced: Dict[str, str]):
    if isinstance(node, dict):
        node = _stock_node(node, replaced)
        return {key: _to_stock(value, replaced) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return type(node)(_to_stock(item, replaced) for item in node)
    return node


def stock_model_cfg(model_cfg: dict) -> mmcv.ConfigDict:
    """A copy of a model config that uses stock mmdet classes only.

    Args:
        model_cfg (dict): ``cfg.model`` (its ``train_cfg``/``test_cfg`` included).

    Returns:
        mmcv.ConfigDict: The same model with every ``HPU*`` type replaced by its stock parent
        (see :func:`stock_parent`) and the HPU-only arguments dropped.
    """
    return mmcv.ConfigDict(_to_stock(copy.deepcopy(plain_dict(model_cfg)), {}))


def hpu_replacements(model_cfg: dict) -> Dict[str, str]:
    """``{HPU type: stock type}`` for every HPU type of a model config (empty: not ported)."""
    replaced = {}
    _to_stock(copy.deepcopy(plain_dict(model_cfg)), replaced)
    return replaced


def plain_dict(node):
    """mmcv ``ConfigDict``s as plain dicts (deep)."""
    if isinstance(node, dict):
        return {key: plain_dict(value) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return type(node)(plain_dict(item) for item in node)
    return node
