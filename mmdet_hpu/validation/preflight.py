"""All pre-flight checks of ``mmdet-hpu-train`` / ``mmdet-hpu-test``, in order.

They run right after the command line is applied to the config and before the
work dir is populated, so a mistake costs seconds and never overwrites a file.
"""
import os.path as osp
import tempfile

from .annotations import checked_annotations, read_coco_json, warn
from .checkpoint_checks import check_structure
from .coco_schema import check_coco_structure
from .config_checks import check_config_keys
from .data_paths import check_data_paths
from .datasets_cfg import iter_split_cfgs, resolve
from .gt_limits import apply_gt_limits, pad_gt_steps
from .num_classes import check_num_classes, class_mismatch_message
from .value_types import check_value_types
from .work_dir import check_work_dir


def _is_coco(dataset_cfg):
    from mmdet.datasets import DATASETS, CocoDataset

    try:
        cls = DATASETS.get(dataset_cfg.get('type'))
    except (KeyError, ValueError, TypeError):
        return False
    return isinstance(cls, type) and issubclass(cls, CocoDataset)


def apply_annotation_policy(cfg, policy, out_dir, splits, require_boxes=True):
    """Run :func:`check_annotations` on every COCO dataset of ``splits``.

    A dataset whose file needed cleaning gets ``ann_file`` pointed at the cleaned
    copy (absolute path) in ``cfg``; its ``HPUPadGT`` steps get ``max_num_gt``
    checked against the boxes per image (or chosen, when unset). With ``policy='off'``
    the boxes and images are not checked, but a dataset with ``HPUPadGT`` steps still
    has its JSON read for that count (no image is opened): a too-small ``max_num_gt``
    would otherwise stop training at the first crowded image, mid-epoch.
    """
    for key, dataset_cfg in iter_split_cfgs(cfg, splits):
        ann_file = resolve(dataset_cfg.get('ann_file'), dataset_cfg)
        if not isinstance(ann_file, str) or not ann_file.endswith('.json') \
                or not _is_coco(dataset_cfg):
            continue
        if policy == 'off':
            if any(pad_gt_steps(dataset_cfg, key)):
                data = read_coco_json(ann_file, f'{key}.ann_file')
                check_coco_structure(data, ann_file, f'{key}.ann_file', require_boxes)
                apply_gt_limits(dataset_cfg, key, data, dataset_cfg.get('classes'))
            continue
        used, data = checked_annotations(
            ann_file, resolve(dataset_cfg.get('img_prefix'), dataset_cfg),
            dataset_cfg.get('classes'), policy, out_dir, key=f'{key}.ann_file',
            require_boxes=require_boxes)
        apply_gt_limits(dataset_cfg, key, data, dataset_cfg.get('classes'))
        if used != ann_file:
            dataset_cfg['ann_file'] = osp.abspath(used)
    return cfg


def check_checkpoint_for_config(cfg, filename, source):
    """Load ``filename`` safely and check it fits the model of ``cfg``.

    Any mmcv scheme (``http://``, ``open-mmlab://``...) is fetched and loaded through
    the safe loader too, so a file that would run code is refused here, before
    anything is written. ``resume`` problems raise; ``load_from`` mismatches of the
    weights (fine-tuning) only warn, a file without weights raises.
    """
    if not filename:
        return
    from mmdet.models import build_detector

    from mmdet_hpu.checkpoint import load_checkpoint_any

    checkpoint = load_checkpoint_any(filename)
    check_structure(checkpoint, filename, source)
    model = build_detector(cfg.model, train_cfg=cfg.get('train_cfg'),
                           test_cfg=cfg.get('test_cfg'))
    if source == 'load_from':
        message = class_mismatch_message(checkpoint, model, filename, source)
        if message:
            warn(message)
        return
    check_num_classes(checkpoint, model, filename, source)


def pretrained_checkpoints(model_cfg):
    """Checkpoints a model config loads while initialising (``init_cfg`` Pretrained,
    ``pretrained=``), in config order.
    """
    found = []

    def visit(node):
        if isinstance(node, dict):
            if node.get('type') == 'Pretrained' and isinstance(node.get('checkpoint'), str):
                found.append(node['checkpoint'])
            if isinstance(node.get('pretrained'), str):
                found.append(node['pretrained'])
            for value in node.values():
                visit(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                visit(value)

    visit(model_cfg)
    return list(dict.fromkeys(found))


def check_pretrained(cfg):
    """Fetch and safely load every pretrained checkpoint of ``cfg.model`` (see above)."""
    from mmdet_hpu.checkpoint import load_checkpoint_any

    for filename in pretrained_checkpoints(cfg.get('model')):
        checkpoint = load_checkpoint_any(filename)
        check_structure(checkpoint, filename, 'load_from')


def resolve_auto_resume(cfg):
    """``--auto-resume``: pick the checkpoint now, so a work dir of unusable files fails
    before anything is written (:func:`~mmdet_hpu.apis.auto_resume.find_resume_checkpoint`).
    """
    if cfg.get('auto_resume') and not cfg.get('resume_from'):
        from mmdet_hpu.apis.auto_resume import find_resume_checkpoint

        cfg.resume_from = find_resume_checkpoint(cfg.work_dir)
    return cfg


def train_splits(cfg, args):
    """The splits training reads: train, and val unless ``--no-validate`` (or workflow)."""
    validate = not getattr(args, 'no_validate', False) or len(cfg.get('workflow') or []) == 2
    return ('train', 'val') if validate else ('train',)


def preflight_train(cfg, args):
    """Every check ``mmdet-hpu-train`` runs before it writes anything.

    Args:
        cfg (mmcv.Config): After ``apply_args_to_config``; may be changed (cleaned
            annotation files).
        args (argparse.Namespace): Needs ``bad_annotations``, ``trust_legacy_checkpoint``
            and ``no_validate``.

    Returns:
        mmcv.Config: ``cfg``.
    """
    from mmdet_hpu.checkpoint import set_trust_legacy_checkpoints

    set_trust_legacy_checkpoints(getattr(args, 'trust_legacy_checkpoint', False))
    check_config_keys(cfg)
    check_value_types(cfg)
    splits = train_splits(cfg, args)
    check_data_paths(cfg, splits)
    check_work_dir(cfg.work_dir)
    resolve_auto_resume(cfg)  # checkpoints before the annotation check writes a cleaned copy
    check_checkpoint_for_config(cfg, cfg.get('resume_from'), 'resume')
    check_checkpoint_for_config(cfg, cfg.get('load_from'), 'load_from')
    check_pretrained(cfg)
    apply_annotation_policy(cfg, getattr(args, 'bad_annotations', 'skip'), cfg.work_dir, splits)
    return cfg


def preflight_test(cfg, args):
    """Every check ``mmdet-hpu-test`` runs before it loads the model.

    The checkpoint itself is checked when it is loaded (``_load_model``).
    """
    from mmdet_hpu.checkpoint import set_trust_legacy_checkpoints

    set_trust_legacy_checkpoints(getattr(args, 'trust_legacy_checkpoint', False))
    check_config_keys(cfg)
    check_data_paths(cfg, ('test',))
    if getattr(args, 'work_dir', None):
        check_work_dir(args.work_dir)
    for option in ('out', 'show_dir'):
        target = getattr(args, option, None)
        if target:
            folder = target if option == 'show_dir' else osp.dirname(target) or '.'
            flag = f'--{option.replace("_", "-")}'
            check_work_dir(folder, what=f'{flag} folder', option=flag)
    out_dir = getattr(args, 'work_dir', None) or tempfile.mkdtemp(prefix='mmdet-hpu-ann-')
    apply_annotation_policy(cfg, getattr(args, 'bad_annotations', 'skip'), out_dir, ('test',),
                            require_boxes=not getattr(args, 'format_only', False))
    return cfg
