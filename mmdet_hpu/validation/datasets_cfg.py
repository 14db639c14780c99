"""Walk the dataset entries of ``cfg.data`` (wrappers such as RepeatDataset included)."""
import os.path as osp


def iter_dataset_cfgs(node, key):
    """Yield ``(config_key, dataset_cfg)`` for every leaf dataset under ``node``.

    Args:
        node (dict | list): A dataset config, a list of them (concatenated), or a
            wrapper with ``dataset`` / ``datasets``.
        key (str): The config key of ``node``, e.g. ``'data.train'``.
    """
    if isinstance(node, (list, tuple)):
        for i, item in enumerate(node):
            yield from iter_dataset_cfgs(item, f'{key}[{i}]')
    elif isinstance(node, dict):
        if 'dataset' in node:
            yield from iter_dataset_cfgs(node['dataset'], f'{key}.dataset')
        elif 'datasets' in node:
            yield from iter_dataset_cfgs(node['datasets'], f'{key}.datasets')
        else:
            yield key, node


def iter_split_cfgs(cfg, splits):
    """:func:`iter_dataset_cfgs` over ``cfg.data[split]`` for each present split."""
    data = cfg.get('data') or {}
    for split in splits:
        if data.get(split) is not None:
            yield from iter_dataset_cfgs(data[split], f'data.{split}')


def resolve(path, dataset_cfg):
    """The path mmdet's ``CustomDataset`` opens: joined to the dataset's own ``data_root``."""
    root = dataset_cfg.get('data_root')
    if path and root and not osp.isabs(path):
        return osp.join(root, path)
    return path
