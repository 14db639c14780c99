"""Missing dataset root, image folder or annotation file, reported before training."""
import os.path as osp

from .datasets_cfg import iter_split_cfgs, resolve
from .errors import ValidationError

DEMO_CLASSES = ('circle', 'square', 'triangle')


def _demo_hint(cfg, root):
    data = cfg.get('data') or {}
    classes = [tuple(d.get('classes') or ()) for d in data.values() if isinstance(d, dict)]
    if DEMO_CLASSES not in classes:
        return ''
    return (' For the demo config, generate the dataset first: mmdet-hpu-demo-data --out '
            f'{(root or "data/demo/").rstrip("/")}')


def _fix(cfg):
    return (' Fix: point the config at your dataset with --cfg-options data_root=/path/to/'
            'dataset/ (or edit the paths in the config).' + _demo_hint(cfg, cfg.get('data_root')))


def _root_problem(cfg):
    root = cfg.get('data_root')
    if root and not osp.isdir(root):
        return (f'data_root {root!r} (config key data_root) does not exist or is not a '
                f'directory (absolute path: {osp.abspath(root)}).')
    return None


def _leaf_problems(key, dataset_cfg):
    problems = []
    ann_files = dataset_cfg.get('ann_file')
    ann_list = ann_files if isinstance(ann_files, (list, tuple)) else [ann_files]
    for ann_file in ann_list:
        path = resolve(ann_file, dataset_cfg)
        if path and not osp.isfile(path):
            problems.append(f'annotation file {path!r} (config key {key}.ann_file) not found.')
    prefix = resolve(dataset_cfg.get('img_prefix'), dataset_cfg)
    if prefix and not osp.isdir(prefix):
        problems.append(f'image folder {prefix!r} (config key {key}.img_prefix) not found.')
    return problems


def check_data_paths(cfg, splits=('train', 'val')):
    """Check that ``data_root``, every ``ann_file`` and every ``img_prefix`` exist.

    Args:
        cfg (mmcv.Config): The config after command-line overrides.
        splits (tuple[str]): Keys of ``cfg.data`` to check (the test script: ``('test',)``).

    Raises:
        ValidationError: Naming each missing path, its config key and the fix.
    """
    root_problem = _root_problem(cfg)
    if root_problem:
        raise ValidationError(root_problem + _fix(cfg))
    problems = []
    for key, dataset_cfg in iter_split_cfgs(cfg, splits):
        problems += [p for p in _leaf_problems(key, dataset_cfg) if p not in problems]
    if problems:
        raise ValidationError(' '.join(problems) + _fix(cfg))
