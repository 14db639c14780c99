# ruff: noqa: F811 (the fixtures cli_state and earlier_run come from cli_helpers)
"""COCO files of the wrong shape and images that do not match them (docs/failures.md).

Through ``mmdet-hpu-train``: exit 2, one paragraph, nothing of the earlier run changed.
"""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from cli_helpers import ann_path, cli_state, earlier_run, edit_coco, train_fails  # noqa: F401


def _first_train_image(data):
    with open(ann_path(data)) as f:
        image = json.load(f)['images'][0]
    return image, osp.join(data, 'train', image['file_name'])


def test_image_entry_not_an_object(cli_state, earlier_run, data, capsys):
    edit_coco(data, lambda c: c['images'].__setitem__(0, 'img_0.png'))
    err = train_fails(capsys, earlier_run, data)
    assert "images[0] is str 'img_0.png', not an object" in err
    assert 'data.train.ann_file' in err and 'Fix or regenerate the file' in err


@pytest.mark.parametrize('section,field', [('images', 'width'), ('images', 'height'),
                                           ('categories', 'id'), ('annotations', 'category_id')])
def test_numbers_given_as_strings(cli_state, earlier_run, data, capsys, section, field):
    def change(coco):
        coco[section][0][field] = str(coco[section][0][field])

    edit_coco(data, change)
    err = train_fails(capsys, earlier_run, data)
    assert f'{section}[0].{field} is ' in err and '(str), not an integer' in err


def test_deeply_nested_json(cli_state, earlier_run, data, capsys):
    depth = 200000
    with open(ann_path(data), 'w') as f:
        f.write('{"images": ' + '[' * depth + ']' * depth + '}')
    err = train_fails(capsys, earlier_run, data)
    assert 'nested too deeply' in err and 'instances_train.json' in err


@pytest.mark.parametrize('section', ['annotations', 'images'])
def test_duplicate_ids(cli_state, earlier_run, data, capsys, section):
    def change(coco):
        coco[section][1]['id'] = coco[section][0]['id']

    coco = edit_coco(data, change)
    err = train_fails(capsys, earlier_run, data)
    assert f'1 duplicate {section} id(s) (each must be unique): {coco[section][0]["id"]}' in err


@pytest.mark.parametrize('file_size', [(1, 1), (96, 64)])
def test_image_file_size_differs_from_declared(cli_state, earlier_run, data, capsys, file_size):
    image, path = _first_train_image(data)
    width, height = file_size
    cv2.imwrite(path, np.full((height, width, 3), 127, np.uint8))
    err = train_fails(capsys, earlier_run, data)
    assert (f"(image id {image['id']}) is {width}x{height}, the annotation file says "
            f"{image['width']}x{image['height']}") in err
    assert 'Fix width/height in the annotation file' in err


def test_size_check_follows_exif_rotation(data):
    """A JPEG stored 64x32 with EXIF orientation 6 is loaded 32x64 by mmcv: no mismatch."""
    import mmcv
    from PIL import Image

    from mmdet_hpu.validation.image_sizes import header_size

    path = osp.join(data, 'rotated.jpg')
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new('RGB', (64, 32)).save(path, exif=exif)
    assert header_size(path) == (32, 64)
    assert mmcv.imread(path).shape[:2] == (64, 32)  # (h, w) as the pipeline sees it


def test_empty_dataset(cli_state, earlier_run, data, capsys):
    edit_coco(data, lambda c: (c.__setitem__('images', []), c.__setitem__('annotations', [])))
    err = train_fails(capsys, earlier_run, data)
    assert 'the images list is empty' in err


def test_images_without_any_annotation(cli_state, earlier_run, data, capsys):
    edit_coco(data, lambda c: c.__setitem__('annotations', []))
    err = train_fails(capsys, earlier_run, data)
    assert 'the annotations list is empty (4 images, not one box' in err


def test_every_box_bad_leaves_nothing(cli_state, earlier_run, data, capsys):
    def change(coco):
        for ann in coco['annotations']:
            ann['bbox'] = [0, 0, 0, 0]

    edit_coco(data, change)
    err = train_fails(capsys, earlier_run, data)
    assert 'no usable box left after skipping' in err


@pytest.mark.parametrize('bbox,reason', [
    ('[NaN, 1, 2, 3]', 'is not 4 finite numbers'),
    ('[1, 1, Infinity, 3]', 'is not 4 finite numbers'),
    ('[1, 1, 2]', 'is not 4 finite numbers'),
    ('[1, 1, 2, 3, 4]', 'is not 4 finite numbers'),
    ('"1 1 2 3"', 'is not 4 finite numbers'),
])
def test_bad_box_values_with_fail_policy(cli_state, earlier_run, data, capsys, bbox, reason):
    with open(ann_path(data)) as f:
        text = f.read()
    coco = json.loads(text)
    coco['annotations'][0]['bbox'] = 'PLACEHOLDER'
    with open(ann_path(data), 'w') as f:
        f.write(json.dumps(coco).replace('"PLACEHOLDER"', bbox))
    err = train_fails(capsys, earlier_run, data, flags=['--bad-annotations', 'fail'])
    assert f"annotation id {coco['annotations'][0]['id']}: bbox" in err and reason in err


def test_not_utf8(cli_state, earlier_run, data, capsys):
    raw = open(ann_path(data), 'rb').read()
    with open(ann_path(data), 'wb') as f:
        f.write(raw.replace(b'"circle"', b'"circl\xe9"', 1))
    err = train_fails(capsys, earlier_run, data)
    assert 'is not UTF-8 text' in err and 'Re-save it as UTF-8' in err


def test_truncated_json(cli_state, earlier_run, data, capsys):
    raw = open(ann_path(data), 'rb').read()
    with open(ann_path(data), 'wb') as f:
        f.write(raw[:len(raw) // 2])
    err = train_fails(capsys, earlier_run, data)
    assert 'is not valid JSON' in err and 'line 1' in err


@pytest.mark.parametrize('kind', ['directory', 'symlink loop'])
def test_image_path_not_a_file(cli_state, earlier_run, data, capsys, kind):
    _, path = _first_train_image(data)
    os.remove(path)
    if kind == 'directory':
        os.mkdir(path)
    else:
        os.symlink(path, path)
    err = train_fails(capsys, earlier_run, data, flags=['--bad-annotations', 'fail'])
    assert '1 missing and 0 unreadable image(s)' in err and osp.basename(path) in err


def _write_variant(path, kind):
    from PIL import Image

    gray = np.random.RandomState(0).randint(0, 255, (64, 64), np.uint8)
    if kind == 'grayscale':
        cv2.imwrite(path, gray)
    elif kind == '16-bit':
        cv2.imwrite(path, gray.astype(np.uint16) * 257)
    elif kind == 'rgba':
        cv2.imwrite(path, np.dstack([gray] * 4))
    else:  # CMYK JPEG, saved under the .png name the annotation uses (formats sniffed)
        Image.fromarray(gray).convert('CMYK').save(path, format='JPEG')


@pytest.mark.parametrize('kind', ['grayscale', '16-bit', 'rgba', 'cmyk'])
def test_other_pixel_formats_are_accepted(data, kind):
    """Grayscale, 16-bit, RGBA and CMYK files pass the check and load as HxWx3 uint8."""
    from mmdet.datasets.pipelines import LoadImageFromFile

    from mmdet_hpu.validation import check_annotations

    image, path = _first_train_image(data)
    _write_variant(path, kind)
    used = check_annotations(ann_path(data), osp.join(data, 'train'), policy='fail')
    assert used == ann_path(data)
    results = LoadImageFromFile()(dict(img_prefix=osp.join(data, 'train'),
                                       img_info=dict(filename=image['file_name'])))
    assert results['img'].shape == (64, 64, 3) and results['img'].dtype == np.uint8
