"""Bad COCO annotations: malformed JSON, bad boxes, unknown categories, bad images.

Policies (``--bad-annotations``):

* ``skip`` (default): drop bad boxes, boxes of unknown categories, and missing or
  unreadable images (with their boxes); print one warning with the counts; write
  the cleaned copy under the work dir and point the config at it. The user's
  file is never modified.
* ``fail``: stop with an error that lists the first offenders.
* ``off``: no box or image check (mmdet's own behaviour; for very large datasets).
  The boxes per image are still counted for ``HPUPadGT`` (``preflight``).

Malformed JSON, a file that is not COCO or of the wrong shape (``coco_schema``),
image files whose size differs from the declared width/height (``image_sizes``),
config classes missing from the file's categories, or nothing left after cleaning
always stop.
"""
import json
import math
import os
import os.path as osp
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from hashlib import sha1

from .coco_schema import check_coco_structure
from .errors import ValidationError
from .image_sizes import mismatch_message, size_mismatches
from .registries import did_you_mean

POLICIES = ('skip', 'fail', 'off')
DEFAULT_POLICY = 'skip'
BORDER_TOLERANCE = 1.0  # px a box may extend past the image (float rounding in real data)
MAX_EXAMPLES = 5
CLEAN_DIR = 'cleaned_annotations'


@dataclass
class AnnotationReport:
    """What :func:`find_problems` found in one annotation file."""

    num_images: int = 0
    num_annotations: int = 0
    bad_boxes: list = field(default_factory=list)  # (ann id, reason)
    unknown_categories: list = field(default_factory=list)  # (ann id, category id)
    missing_images: list = field(default_factory=list)  # file names
    unreadable_images: list = field(default_factory=list)  # file names
    size_mismatches: list = field(default_factory=list)  # always fatal, see image_sizes

    @property
    def clean(self):
        """True when nothing has to be dropped."""
        return not (self.bad_boxes or self.unknown_categories or self.missing_images
                    or self.unreadable_images)

    def counts(self):
        """One-line counts of every kind of problem."""
        return (f'{len(self.bad_boxes)} degenerate/negative/out-of-image box(es), '
                f'{len(self.unknown_categories)} box(es) with an unknown category id, '
                f'{len(self.missing_images)} missing and {len(self.unreadable_images)} '
                f'unreadable image(s)')

    def examples(self):
        """The first few offenders of each kind."""
        parts = []
        for title, items in (('boxes', [f'annotation id {a}: {r}' for a, r in self.bad_boxes]),
                             ('categories', [f'annotation id {a}: category_id {c}'
                                             for a, c in self.unknown_categories]),
                             ('missing', self.missing_images),
                             ('unreadable', self.unreadable_images)):
            if items:
                parts.append(f'{title}: ' + '; '.join(map(str, items[:MAX_EXAMPLES]))
                             + (' ...' if len(items) > MAX_EXAMPLES else ''))
        return ' | '.join(parts)


def read_coco_json(ann_file, key='ann_file'):
    """Parse a COCO detection file, with errors that give the line and column.

    Raises:
        ValidationError: Unreadable file, malformed JSON or a missing COCO section.
    """
    try:
        with open(ann_file, encoding='utf-8') as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise ValidationError(
            f'annotation file {ann_file!r} (config key {key}) is not valid JSON: {err.msg} at '
            f'line {err.lineno}, column {err.colno}. Fix or regenerate the file.') from None
    except UnicodeDecodeError as err:
        raise ValidationError(f'annotation file {ann_file!r} (config key {key}) is not UTF-8 '
                              f'text (byte {err.start}: {err.reason}); JSON files must be '
                              'UTF-8. Re-save it as UTF-8 or regenerate it.') from None
    except RecursionError:
        raise ValidationError(f'annotation file {ann_file!r} (config key {key}) is nested too '
                              'deeply to be a COCO file (thousands of nested lists/objects). '
                              'Fix or regenerate the file.') from None
    except OSError as err:
        raise ValidationError(f'annotation file {ann_file!r} (config key {key}) cannot be '
                              f'read: {err}.') from None
    missing = [s for s in ('images', 'annotations', 'categories')
               if not isinstance(data, dict) or not isinstance(data.get(s), list)]
    if missing:
        raise ValidationError(f'annotation file {ann_file!r} (config key {key}) is not a COCO '
                              f'detection file: no {", ".join(map(repr, missing))} list.')
    return data


def box_problem(bbox, width=None, height=None):
    """Why a COCO ``[x, y, w, h]`` box is unusable, or None when it is fine."""
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 \
            or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox):
        return f'bbox {bbox!r} is not 4 finite numbers'
    x, y, w, h = bbox
    if w <= 0 or h <= 0:
        return f'bbox {list(bbox)} has width or height <= 0'
    if x < 0 or y < 0:
        return f'bbox {list(bbox)} has a negative coordinate'
    if (width and x + w > width + BORDER_TOLERANCE) or \
            (height and y + h > height + BORDER_TOLERANCE):
        return f'bbox {list(bbox)} extends past the {width}x{height} image'
    return None


def _image_readable(path):
    import cv2

    try:
        return cv2.imread(path, cv2.IMREAD_REDUCED_GRAYSCALE_8) is not None
    except cv2.error:  # images smaller than 8 px cannot be reduced: decode them fully
        return cv2.imread(path, cv2.IMREAD_UNCHANGED) is not None


def _check_images(data, img_prefix, report, decode_images):
    """Fill the missing/unreadable lists; return the ids of the bad images."""
    images = data['images']
    paths = [osp.join(img_prefix or '', str(img.get('file_name', ''))) for img in images]
    exists = [osp.isfile(p) for p in paths]
    readable = [True] * len(paths)
    if decode_images:
        todo = [i for i, ok in enumerate(exists) if ok]
        with ThreadPoolExecutor(max_workers=4) as pool:
            for i, ok in zip(todo, pool.map(_image_readable, [paths[i] for i in todo])):
                readable[i] = ok
    if decode_images:
        good = [i for i, (found, ok) in enumerate(zip(exists, readable)) if found and ok]
        report.size_mismatches = size_mismatches([images[i] for i in good],
                                                 [paths[i] for i in good])
    bad_ids = set()
    for img, path, found, ok in zip(images, paths, exists, readable):
        if not found:
            report.missing_images.append(path)
        elif not ok:
            report.unreadable_images.append(path)
        else:
            continue
        bad_ids.add(img.get('id'))
    return bad_ids


def _check_boxes(data, report):
    """Fill the box and category lists; return the ids of the bad annotations."""
    images = {img.get('id'): img for img in data['images']}
    category_ids = {cat.get('id') for cat in data['categories']}
    bad_ids = set()
    for ann in data['annotations']:
        image = images.get(ann.get('image_id'))
        if ann.get('category_id') not in category_ids:
            report.unknown_categories.append((ann.get('id'), ann.get('category_id')))
        else:
            reason = ('image_id not in images' if image is None else
                      box_problem(ann.get('bbox'), image.get('width'), image.get('height')))
            if reason is None:
                continue
            report.bad_boxes.append((ann.get('id'), reason))
        bad_ids.add(id(ann))
    return bad_ids


def check_classes(data, classes, ann_file, key):
    """Every config class must be a category name of the file (else labels shift)."""
    names = [cat.get('name') for cat in data['categories']]
    missing = [c for c in classes or () if c not in names]
    if missing:
        hints = ''.join(did_you_mean(c, [n for n in names if n]) for c in missing)
        raise ValidationError(
            f'class(es) {missing} of the config ({key.rsplit(".", 1)[0]}.classes) are not '
            f'categories of {ann_file!r} (it has {names[:20]}).{hints} Fix the classes in the '
            'config or the annotation file.')


def find_problems(data, img_prefix, decode_images=True):
    """Check every image and box of parsed COCO ``data``.

    Returns:
        tuple[AnnotationReport, set, set]: The report, the ids of bad images and the
        ``id()`` of bad annotation dicts.
    """
    report = AnnotationReport(num_images=len(data['images']),
                              num_annotations=len(data['annotations']))
    bad_images = _check_images(data, img_prefix, report, decode_images)
    bad_anns = _check_boxes(data, report)
    return report, bad_images, bad_anns


def cleaned(data, bad_images, bad_anns):
    """A copy of ``data`` without the bad images, their boxes and the bad boxes."""
    out = dict(data)
    out['images'] = [img for img in data['images'] if img.get('id') not in bad_images]
    out['annotations'] = [ann for ann in data['annotations']
                          if id(ann) not in bad_anns and ann.get('image_id') not in bad_images]
    return out


def _clean_path(ann_file, out_dir):
    digest = sha1(osp.abspath(ann_file).encode()).hexdigest()[:8]
    stem = osp.splitext(osp.basename(ann_file))[0]
    return osp.join(out_dir, CLEAN_DIR, f'{stem}.{digest}.clean.json')


def _write_json(obj, path):
    from mmdet_hpu.checkpoint.saving import atomic_write

    os.makedirs(osp.dirname(path), exist_ok=True)
    with atomic_write(path) as f:
        f.write(json.dumps(obj).encode('utf-8'))


def warn(message):
    """Print a one-paragraph warning on stderr (the logger does not exist yet)."""
    print(f'warning: {message}', file=sys.stderr)


def check_annotations(ann_file, img_prefix, classes=None, policy=DEFAULT_POLICY, out_dir=None,
                      key='ann_file', decode_images=True, require_boxes=True):
    """Check one COCO annotation file and apply ``policy`` to what is wrong.

    Args:
        ann_file (str): The COCO json (never modified).
        img_prefix (str): Folder of the images (``img_prefix`` of the dataset).
        classes (Sequence[str], optional): The config's classes.
        policy (str): ``'skip'``, ``'fail'`` or ``'off'``.
        out_dir (str, optional): Where ``skip`` writes the cleaned copy
            (``<out_dir>/cleaned_annotations/``); required for ``skip``.
        key (str): The config key of ``ann_file``, for messages.
        decode_images (bool): Also decode each image with ``cv2.imread`` and compare
            its header size with the declared one (else only check that it exists).
        require_boxes (bool): A file without any box is an error (training, evaluation).

    Returns:
        str: The annotation file to use: ``ann_file``, or the cleaned copy.

    Raises:
        ValidationError: Malformed file, unknown classes, nothing usable left, or any
            problem under ``policy='fail'``.
    """
    return checked_annotations(ann_file, img_prefix, classes, policy, out_dir, key,
                               decode_images, require_boxes)[0]


def checked_annotations(ann_file, img_prefix, classes=None, policy=DEFAULT_POLICY, out_dir=None,
                        key='ann_file', decode_images=True, require_boxes=True):
    """:func:`check_annotations`, also returning the parsed data that will be used.

    Returns:
        tuple[str, dict | None]: The file to use and its parsed (cleaned) content; None
        with ``policy='off'`` (nothing is read).
    """
    if policy not in POLICIES:
        raise ValueError(f'policy must be one of {POLICIES}, got {policy!r}')
    if policy == 'off':
        return ann_file, None
    data = read_coco_json(ann_file, key)
    check_coco_structure(data, ann_file, key, require_boxes)
    check_classes(data, classes, ann_file, key)
    report, bad_images, bad_anns = find_problems(data, img_prefix, decode_images)
    where = f'annotation file {ann_file!r} (config key {key})'
    if report.size_mismatches:
        raise ValidationError(mismatch_message(report.size_mismatches, where))
    if report.clean:
        return ann_file, data
    if policy == 'fail':
        raise ValidationError(f'{where} has {report.counts()}. First offenders: '
                              f'{report.examples()}. Fix the file, or rerun with '
                              '--bad-annotations skip to train without them.')
    data = cleaned(data, bad_images, bad_anns)
    if not data['images'] or (require_boxes and not data['annotations']):
        left = 'image' if not data['images'] else 'box'
        raise ValidationError(f'{where}: no usable {left} left after skipping '
                              f'{report.counts()}. First offenders: {report.examples()}.')
    path = _clean_path(ann_file, out_dir)
    _write_json(data, path)
    warn(f'{where}: skipping {report.counts()} ({report.num_annotations} boxes, '
         f'{report.num_images} images in the file). Using the cleaned copy {path!r}; your file '
         f'is unchanged. First offenders: {report.examples()}. Use --bad-annotations fail to '
         'stop instead.')
    return path, data
