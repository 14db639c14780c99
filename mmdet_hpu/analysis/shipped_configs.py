"""Config paths, including the ``mmdet::`` shorthand for the configs shipped inside mmdet.

mmdet 2.28 installs its model-zoo configs in the package (``mmdet/.mim/configs/``), so
``mmdet::retinanet/retinanet_r50_fpn_1x_coco.py`` names one without a checkout of mmdet.
"""
import difflib
import os
import os.path as osp
from typing import List

from mmdet_hpu.errors import ConfigError

SHORTHAND = 'mmdet::'


def shipped_config_root() -> str:
    """The folder of the configs shipped inside the installed mmdet package."""
    import mmdet

    return osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs')


def shipped_configs(root: str) -> List[str]:
    """Every shipped config, relative to ``root`` (``_base_`` files excluded), sorted."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != '_base_']
        rel = osp.relpath(folder, root)
        found += [osp.normpath(osp.join(rel, f)) for f in files if f.endswith('.py')]
    return sorted(found)


def resolve_config(spec: str) -> str:
    """The file a config argument names.

    Args:
        spec (str): A path, or ``mmdet::<folder>/<name>.py`` (``.py`` optional) for a config
            shipped with mmdet.

    Returns:
        str: An existing file.

    Raises:
        ConfigError: If the file does not exist; for the shorthand the message lists the
            closest shipped names.
    """
    if not spec.startswith(SHORTHAND):
        if not osp.isfile(spec):
            raise ConfigError(f'config file not found: {spec!r}. Pass the path of a config such '
                              'as configs/yolov3/yolov3_d53_320_273e_coco.py, or a config shipped '
                              'with mmdet as mmdet::retinanet/retinanet_r50_fpn_1x_coco.py.')
        return spec
    name = spec[len(SHORTHAND):].strip('/')
    if not name.endswith('.py'):
        name += '.py'
    root = shipped_config_root()
    path = osp.join(root, name)
    if osp.isfile(path):
        return path
    raise ConfigError(_missing_message(spec, name, root))


def _missing_message(spec: str, name: str, root: str) -> str:
    if not osp.isdir(root):
        return (f'{spec!r}: the installed mmdet has no shipped configs ({root} does not exist); '
                'install mmdet 2.x from PyPI (its wheel ships them) or pass a config path.')
    names = shipped_configs(root)
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    base_close = set(difflib.get_close_matches(osp.basename(name),
                                               [osp.basename(n) for n in names], n=5, cutoff=0.6))
    close += [n for n in names if osp.basename(n) in base_close]
    close = list(dict.fromkeys(close))[:8]
    hint = ('closest: ' + ', '.join(SHORTHAND + n for n in close)) if close else \
        f'see the folders under {root}'
    return (f'{spec!r}: no config {name!r} is shipped with mmdet ({len(names)} are, under '
            f'{root}); {hint}.')
