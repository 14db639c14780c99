# ruff: noqa: F811 (the fixtures cli_state and earlier_run come from cli_helpers)
"""Images with more boxes than ``HPUPadGT(max_num_gt=...)``: found in the pre-flight check."""
import json
import os.path as osp

import pytest
from cli_helpers import DEMO_CONFIG, ann_path, cli_state, earlier_run, edit_coco, train_fails  # noqa: F401

from mmdet_hpu.validation.gt_limits import boxes_per_image, smallest_bucket


def _crowd_image(coco, num_boxes, index=1):
    """Give image ``index`` ``num_boxes`` valid boxes (copies of its first box)."""
    image_id = coco['images'][index]['id']
    template = next(a for a in coco['annotations'] if a['image_id'] == image_id)
    next_id = max(a['id'] for a in coco['annotations']) + 1
    coco['annotations'] = [a for a in coco['annotations'] if a['image_id'] != image_id]
    coco['annotations'] += [dict(template, id=next_id + i) for i in range(num_boxes)]


def _pad_gt_index(cfg):
    return next(i for i, step in enumerate(cfg.data.train.pipeline) if step.type == 'HPUPadGT')


def test_too_many_boxes_fails_before_training(cli_state, earlier_run, data, demo_cfg, capsys):
    coco = edit_coco(data, lambda c: _crowd_image(c, 20))
    index = _pad_gt_index(demo_cfg(data))
    err = train_fails(capsys, earlier_run, data)
    name = coco['images'][1]['file_name']
    assert f"image '{name}' (image id {coco['images'][1]['id']}, data.train) has 20 boxes" in err
    assert 'HPUPadGT accepts at most max_num_gt=16' in err
    assert f'--cfg-options data.train.pipeline.{index}.max_num_gt=20' in err


def _preflight(cfg, work_dir):
    """The pre-flight of mmdet-hpu-train (parse_args exports LOCAL_RANK: use cli_state)."""
    from mmdet_hpu.cli.train import parse_args
    from mmdet_hpu.validation import preflight_train

    cfg.work_dir = work_dir
    return preflight_train(cfg, parse_args([DEMO_CONFIG, '--no-validate']))


def test_too_many_boxes_fails_before_training_with_checks_off(cli_state, earlier_run, data,
                                                             capsys):
    """``--bad-annotations off`` skips the box and image checks, not the box count."""
    edit_coco(data, lambda c: _crowd_image(c, 20))
    err = train_fails(capsys, earlier_run, data, flags=('--bad-annotations', 'off'))
    assert 'has 20 boxes' in err
    assert 'HPUPadGT accepts at most max_num_gt=16' in err


def _preflight_off(cfg, work_dir):
    from mmdet_hpu.cli.train import parse_args
    from mmdet_hpu.validation import preflight_train

    cfg.work_dir = work_dir
    return preflight_train(cfg, parse_args([DEMO_CONFIG, '--no-validate',
                                            '--bad-annotations', 'off']))


def test_checks_off_still_chooses_an_unset_max_num_gt(cli_state, data, demo_cfg, tmp_path):
    edit_coco(data, lambda c: _crowd_image(c, 20))
    cfg = demo_cfg(data)
    step = cfg.data.train.pipeline[_pad_gt_index(cfg)]
    step.pop('max_num_gt')
    cfg = _preflight_off(cfg, str(tmp_path / 'work'))
    assert step.max_num_gt == 32
    assert not osp.exists(tmp_path / 'work' / 'cleaned_annotations')  # nothing cleaned


def test_checks_off_keeps_bad_boxes_and_reads_no_json_without_pad_gt(cli_state, data, demo_cfg,
                                                                       tmp_path):
    """Off still means off for the rest: a bad box stays, a pipeline without ``HPUPadGT``
    never has its file read (a broken file passes the pre-flight, as in stock mmdet)."""
    edit_coco(data, lambda c: c['annotations'][0].update(bbox=[-5, 0, 3, 3]))
    cfg = _preflight_off(demo_cfg(data), str(tmp_path / 'work'))
    assert cfg.data.train.ann_file.endswith('instances_train.json')
    with open(ann_path(data), 'w') as f:
        f.write('{broken')
    cfg = demo_cfg(data)
    cfg.data.train.pipeline.pop(_pad_gt_index(cfg))
    _preflight_off(cfg, str(tmp_path / 'work2'))


def test_checks_off_with_pad_gt_names_a_broken_file(cli_state, data, demo_cfg, tmp_path):
    from mmdet_hpu.validation.errors import ValidationError

    with open(ann_path(data), 'w') as f:
        f.write('{broken')
    with pytest.raises(ValidationError, match='is not valid JSON'):
        _preflight_off(demo_cfg(data), str(tmp_path / 'work'))


def test_the_suggested_option_fixes_it(cli_state, data, demo_cfg, tmp_path):
    edit_coco(data, lambda c: _crowd_image(c, 20))
    index = _pad_gt_index(demo_cfg(data))
    cfg = demo_cfg(data, **{f'data.train.pipeline.{index}.max_num_gt': 20})
    cfg = _preflight(cfg, str(tmp_path / 'work'))
    assert cfg.data.train.pipeline[index].max_num_gt == 20


@pytest.mark.parametrize('num_boxes,bucket', [(3, 8), (20, 32), (200, 256)])
def test_unset_max_num_gt_is_chosen_from_the_data(cli_state, data, demo_cfg, tmp_path, num_boxes,
                                                  bucket):
    edit_coco(data, lambda c: _crowd_image(c, num_boxes))
    cfg = demo_cfg(data)
    step = cfg.data.train.pipeline[_pad_gt_index(cfg)]
    step.pop('max_num_gt')
    _preflight(cfg, str(tmp_path / 'work'))
    assert step.max_num_gt == bucket


def test_the_chosen_limit_is_accepted_by_the_transform(data):
    import numpy as np

    from mmdet_hpu.datasets.pipelines import HPUPadGT
    limit = smallest_bucket(200)
    out = HPUPadGT(max_num_gt=limit)(dict(gt_bboxes=np.zeros((200, 4), np.float32),
                                          gt_labels=np.zeros(200, np.int64)))
    assert out['gt_bboxes'].shape == (256, 4)


def test_count_follows_what_coco_dataset_loads(pristine_data, tmp_path):
    """Crowd, ignored, < 1 px and other-class boxes are not padded, so not counted."""
    from mmdet.datasets import CocoDataset

    with open(ann_path(pristine_data)) as f:
        coco = json.load(f)
    image_id = coco['images'][0]['id']
    box = dict(image_id=image_id, category_id=coco['categories'][0]['id'],
               bbox=[1, 1, 10, 10], area=100, iscrowd=0)
    extra = [dict(box, iscrowd=1), dict(box, ignore=True), dict(box, bbox=[1, 1, 0.5, 10]),
             dict(box, category_id=coco['categories'][1]['id']), dict(box)]
    start = max(a['id'] for a in coco['annotations']) + 1
    coco['annotations'] += [dict(a, id=start + i) for i, a in enumerate(extra)]
    classes = [coco['categories'][0]['name'], coco['categories'][2]['name']]
    counts = boxes_per_image(coco, classes)

    path = str(tmp_path / 'count_check.json')
    with open(path, 'w') as f:
        json.dump(coco, f)
    dataset = CocoDataset(path, [], classes=classes, img_prefix=osp.join(pristine_data, 'train'))
    for index, info in enumerate(dataset.data_infos):
        assert counts[info['id']] == len(dataset.get_ann_info(index)['bboxes'])
