"""Images with more boxes than ``HPUPadGT(max_num_gt=...)`` accepts, found before training.

``HPUPadGT`` raises on such an image, which without this check happens in the middle
of an epoch. The pre-flight counts the boxes mmdet's ``CocoDataset`` will load for
each image (not ignored, not crowd, at least 1x1 px, of a config class) and stops
naming the most crowded image and the config key to raise. When the config leaves
``max_num_gt`` unset, it is chosen from the data: the smallest power-of-two bucket
(at least 8) that holds the most crowded image.
"""
from collections import Counter

from .errors import ValidationError

PAD_GT_TYPE = 'HPUPadGT'
MIN_BUCKET = 8  # mmdet_hpu.models.utils.gt_padding.MIN_GT_BUCKET


def boxes_per_image(data, classes=None):
    """How many boxes ``CocoDataset`` loads for each image id of parsed COCO ``data``.

    Args:
        data (dict): A COCO file of the right shape (``coco_schema``).
        classes (Sequence[str], optional): The config's classes (all categories if None).

    Returns:
        collections.Counter: image id -> number of boxes.
    """
    names = set(classes) if classes else None
    category_ids = {cat['id'] for cat in data['categories']
                    if names is None or cat['name'] in names}
    counts = Counter()
    for ann in data['annotations']:
        bbox = ann.get('bbox')
        if ann.get('ignore', False) or ann.get('iscrowd', False) \
                or ann['category_id'] not in category_ids:
            continue
        if isinstance(bbox, (list, tuple)) and len(bbox) == 4 and bbox[2] >= 1 and bbox[3] >= 1:
            counts[ann['image_id']] += 1
    return counts


def pad_gt_steps(dataset_cfg, key):
    """``(config key, step)`` of every ``HPUPadGT`` step of a dataset's pipeline."""
    for index, step in enumerate(dataset_cfg.get('pipeline') or ()):
        if isinstance(step, dict) and step.get('type') == PAD_GT_TYPE:
            yield f'{key}.pipeline.{index}.max_num_gt', step


def smallest_bucket(num_boxes):
    """The power of two >= ``num_boxes``, at least :data:`MIN_BUCKET`."""
    bucket = MIN_BUCKET
    while bucket < num_boxes:
        bucket *= 2
    return bucket


def apply_gt_limits(dataset_cfg, key, data, classes=None):
    """Check (or, when unset, choose) ``max_num_gt`` of each ``HPUPadGT`` step.

    Args:
        dataset_cfg (dict): A leaf dataset config; an unset ``max_num_gt`` is set in place.
        key (str): Its config key, e.g. ``'data.train'``.
        data (dict): Its parsed COCO content (after cleaning).
        classes (Sequence[str], optional): The config's classes.

    Raises:
        ValidationError: An image has more boxes than a configured ``max_num_gt``.
    """
    steps = list(pad_gt_steps(dataset_cfg, key))
    if not steps:
        return
    counts = boxes_per_image(data, classes)
    image_id, most = counts.most_common(1)[0] if counts else (None, 0)
    for step_key, step in steps:
        limit = step.get('max_num_gt')
        if limit is None:
            step['max_num_gt'] = smallest_bucket(most)
            continue
        if isinstance(limit, int) and most > limit:
            crowded = sum(1 for count in counts.values() if count > limit)
            file_name = next(img['file_name'] for img in data['images'] if img['id'] == image_id)
            raise ValidationError(
                f'image {file_name!r} (image id {image_id}, {key}) has {most} boxes but '
                f'{PAD_GT_TYPE} accepts at most max_num_gt={limit} ({crowded} image(s) have more '
                f'than {limit}). Raise it to at least {most}: --cfg-options {step_key}={most} '
                f'(or edit max_num_gt of {PAD_GT_TYPE} in the config); boxes are never dropped '
                'silently.')
