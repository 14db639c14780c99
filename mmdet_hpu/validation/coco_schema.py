"""COCO files of the wrong shape: valid JSON that mmdet would crash on or misread.

Checked before any box: every ``images`` / ``annotations`` / ``categories`` entry
must be an object with integer ids (``width``/``height`` positive integers, a
``file_name`` string), ids must be unique, and a dataset must have images and
(for training and evaluation) boxes. These problems always stop, whatever
``--bad-annotations`` says: they are not single bad boxes but a broken file.
"""
from .errors import ValidationError

MAX_EXAMPLES = 5
# (section, field, kind): kind 'id' = an integer, 'size' = an integer >= 1, 'name' = a string.
REQUIRED_FIELDS = {
    'images': (('id', 'id'), ('file_name', 'name'), ('width', 'size'), ('height', 'size')),
    'annotations': (('id', 'id'), ('image_id', 'id'), ('category_id', 'id')),
    'categories': (('id', 'id'), ('name', 'name')),
}
KIND_TEXT = {'id': 'an integer', 'size': 'an integer >= 1', 'name': 'a non-empty string'}


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _field_ok(value, kind):
    if kind == 'name':
        return isinstance(value, str) and bool(value)
    if kind == 'size':
        return _is_int(value) and value >= 1
    return _is_int(value)


def _entry_problems(section, entries):
    """Entries that are not objects, or whose required fields have the wrong type."""
    problems = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.append(f'{section}[{index}] is {type(entry).__name__} {_short(entry)}, '
                            'not an object')
            continue
        for name, kind in REQUIRED_FIELDS[section]:
            if name not in entry:
                problems.append(f'{section}[{index}] has no {name!r}')
            elif not _field_ok(entry[name], kind):
                problems.append(f'{section}[{index}].{name} is {_short(entry[name])} '
                                f'({type(entry[name]).__name__}), not {KIND_TEXT[kind]}')
    return problems


def _duplicate_ids(section, entries):
    seen, duplicates = set(), []
    for entry in entries:
        entry_id = entry['id']
        if entry_id in seen and entry_id not in duplicates:
            duplicates.append(entry_id)
        seen.add(entry_id)
    if not duplicates:
        return []
    return [f'{len(duplicates)} duplicate {section} id(s) (each must be unique): '
            + ', '.join(map(str, duplicates[:MAX_EXAMPLES]))
            + (' ...' if len(duplicates) > MAX_EXAMPLES else '')]


def _short(value, limit=40):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + '...'


def structure_problems(data, require_boxes=True):
    """Every shape problem of parsed COCO ``data`` (its three lists exist).

    Args:
        data (dict): The parsed file, with ``images``, ``annotations`` and ``categories``
            lists.
        require_boxes (bool): An empty ``annotations`` list is a problem.

    Returns:
        list[str]: One sentence per problem, at most :data:`MAX_EXAMPLES` per kind.
    """
    problems = []
    for section in ('images', 'annotations', 'categories'):
        entry_problems = _entry_problems(section, data[section])
        if entry_problems:
            problems += entry_problems[:MAX_EXAMPLES]
            if len(entry_problems) > MAX_EXAMPLES:
                problems.append(f'... {len(entry_problems) - MAX_EXAMPLES} more in {section}')
        else:
            problems += _duplicate_ids(section, data[section])
    if not data['images']:
        problems.append('the images list is empty (a dataset needs at least one image)')
    elif require_boxes and not data['annotations']:
        problems.append(f'the annotations list is empty ({len(data["images"])} images, not one '
                        'box to learn from or evaluate against)')
    return problems


def check_coco_structure(data, ann_file, key='ann_file', require_boxes=True):
    """Stop on a COCO file of the wrong shape (see the module docstring).

    Raises:
        ValidationError: Listing the problems, with the file and its config key.
    """
    problems = structure_problems(data, require_boxes)
    if problems:
        raise ValidationError(
            f'annotation file {ann_file!r} (config key {key}) is not a usable COCO detection '
            f'file: ' + '; '.join(problems) + '. Fix or regenerate the file (COCO format: '
            'https://cocodataset.org/#format-data).')
