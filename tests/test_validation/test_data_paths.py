"""check_data_paths: missing data_root, annotation file or image folder."""
import os
import os.path as osp
import shutil

import pytest

from mmdet_hpu.validation import ValidationError, check_data_paths


def _message(cfg, splits=('train', 'val')):
    with pytest.raises(ValidationError) as err:
        check_data_paths(cfg, splits)
    return str(err.value)


def test_existing_paths_pass(demo_cfg, pristine_data):
    check_data_paths(demo_cfg(pristine_data), ('train', 'val', 'test'))


def test_missing_data_root(demo_cfg, tmp_path):
    message = _message(demo_cfg(str(tmp_path / 'nowhere')))
    assert f"data_root '{tmp_path / 'nowhere'}/' (config key data_root) does not exist" in message
    assert '--cfg-options data_root=/path/to/dataset/' in message
    assert 'mmdet-hpu-demo-data --out' in message


def test_missing_annotation_file(demo_cfg, data):
    os.remove(osp.join(data, 'annotations', 'instances_val.json'))
    message = _message(demo_cfg(data))
    assert 'instances_val.json' in message and 'config key data.val.ann_file' in message
    assert 'data.train' not in message
    check_data_paths(demo_cfg(data), ('train',))  # --no-validate does not need it


def test_missing_image_folder(demo_cfg, data):
    shutil.rmtree(osp.join(data, 'train'))
    message = _message(demo_cfg(data))
    assert "image folder '" in message and 'config key data.train.img_prefix' in message


def test_wrapped_dataset_key_is_named(demo_cfg, data):
    cfg = demo_cfg(data)
    cfg.data.train = dict(type='RepeatDataset', times=2, dataset=cfg.data.train)
    os.remove(osp.join(data, 'annotations', 'instances_train.json'))
    assert 'config key data.train.dataset.ann_file' in _message(cfg, ('train',))


def test_test_split_only(demo_cfg, data):
    shutil.rmtree(osp.join(data, 'train'))
    check_data_paths(demo_cfg(data), ('test',))
