"""check_annotations: malformed JSON, bad boxes, unknown categories, bad images."""
import json
import os
import os.path as osp

import pytest

from mmdet_hpu.validation import ValidationError, box_problem, check_annotations


def _ann(data):
    return osp.join(data, 'annotations', 'instances_train.json')


def _edit(path, change):
    with open(path) as f:
        coco = json.load(f)
    change(coco)
    with open(path, 'w') as f:
        json.dump(coco, f)
    return open(path, 'rb').read()


def _break_everything(coco):
    anns, images = coco['annotations'], coco['images']
    anns[0]['bbox'] = [3, 3, 0, 5]            # degenerate (w = 0)
    anns[1]['bbox'] = [-4, 2, 5, 5]           # negative coordinate
    anns[2]['category_id'] = 99               # unknown category id
    images[1]['file_name'] = 'gone.png'       # missing image
    return anns, images


def _check(data, policy, out_dir=None):
    return check_annotations(_ann(data), osp.join(data, 'train'),
                             ('circle', 'square', 'triangle'), policy, out_dir,
                             key='data.train.ann_file')


def test_clean_file_is_used_as_is(data, tmp_path):
    assert _check(data, 'skip', str(tmp_path / 'work')) == _ann(data)
    assert not osp.exists(tmp_path / 'work')


def test_skip_writes_cleaned_copy_and_keeps_user_file(data, tmp_path, capsys):
    original = _edit(_ann(data), _break_everything)
    with open(osp.join(data, 'train', 'bad.png'), 'wb') as f:
        f.write(b'not an image')
    _edit(_ann(data), lambda c: c['images'][2].update(file_name='bad.png'))
    original = open(_ann(data), 'rb').read()
    used = _check(data, 'skip', str(tmp_path / 'work'))
    assert used.startswith(str(tmp_path / 'work' / 'cleaned_annotations'))
    assert open(_ann(data), 'rb').read() == original  # the user's file is untouched
    warning = capsys.readouterr().err
    assert warning.startswith('warning: ') and 'data.train.ann_file' in warning
    for text in ('2 degenerate/negative/out-of-image box(es)', '1 box(es) with an unknown '
                 'category id', '1 missing and 1 unreadable image(s)', '--bad-annotations fail'):
        assert text in warning
    with open(used) as f:
        cleaned = json.load(f)
    names = [img['file_name'] for img in cleaned['images']]
    assert 'gone.png' not in names and 'bad.png' not in names and len(names) == 2
    kept_images = {img['id'] for img in cleaned['images']}
    assert all(a['image_id'] in kept_images and a['category_id'] != 99 and a['bbox'][2] > 0
               and a['bbox'][0] >= 0 for a in cleaned['annotations'])


def test_fail_lists_first_offenders(data):
    original = _edit(_ann(data), _break_everything)
    with pytest.raises(ValidationError) as err:
        _check(data, 'fail')
    message = str(err.value)
    for text in ('width or height <= 0', 'negative coordinate', 'category_id 99', 'gone.png',
                 '--bad-annotations skip', 'data.train.ann_file'):
        assert text in message
    assert open(_ann(data), 'rb').read() == original


def test_malformed_json_names_line_and_column(data):
    with open(_ann(data), 'w') as f:
        f.write('{"images": [],\n  "annotations": [\n    {"id": 1,, }]}')
    with pytest.raises(ValidationError, match=r'not valid JSON: .* line 3, column 14'):
        _check(data, 'skip')


def test_not_a_coco_file(data):
    with open(_ann(data), 'w') as f:
        json.dump({'images': []}, f)
    with pytest.raises(ValidationError, match="not a COCO detection file: no 'annotations'"):
        _check(data, 'skip')


def test_config_class_missing_from_categories(data):
    with pytest.raises(ValidationError, match="Did you mean 'circle'"):
        check_annotations(_ann(data), osp.join(data, 'train'), ('circel', 'square'), 'skip')


def test_nothing_left_is_an_error(data, tmp_path):
    for name in os.listdir(osp.join(data, 'train')):
        os.remove(osp.join(data, 'train', name))
    with pytest.raises(ValidationError, match='no usable image left'):
        _check(data, 'skip', str(tmp_path))


def test_off_skips_the_check(data):
    with open(_ann(data), 'w') as f:
        f.write('{broken')
    assert _check(data, 'off') == _ann(data)


@pytest.mark.parametrize('bbox, problem', [
    ([1, 2, 3, 4], None),
    ([0, 0, 64.5, 64], None),        # within the 1 px tolerance
    ([1, 2, 0, 4], 'width or height <= 0'),
    ([1, 2, 3, -4], 'width or height <= 0'),
    ([-1, 2, 3, 4], 'negative coordinate'),
    ([60, 2, 10, 4], 'extends past'),
    ([1, 2, 3], 'not 4 finite numbers'),
    ([1, 2, float('nan'), 4], 'not 4 finite numbers'),
    ('1,2,3,4', 'not 4 finite numbers'),
])
def test_box_problem(bbox, problem):
    found = box_problem(bbox, 64, 64)
    assert found is None if problem is None else problem in found
