"""The demo dataset generator: deterministic, valid COCO, exact boxes."""
import filecmp
import json
import os.path as osp

import cv2
import numpy as np
import pytest

from mmdet_hpu.datasets.demo_data import CLASSES, generate_demo_dataset, main


def _load(path):
    with open(path) as f:
        return json.load(f)


def test_same_seed_gives_identical_files(tmp_path):
    a = generate_demo_dataset(str(tmp_path / 'a'), num_train=3, num_val=2, img_size=64, seed=5)
    b = generate_demo_dataset(str(tmp_path / 'b'), num_train=3, num_val=2, img_size=64, seed=5)
    assert _load(a['train_ann']) == _load(b['train_ann'])
    assert filecmp.cmp(osp.join(a['val_img_prefix'], '000001.png'),
                       osp.join(b['val_img_prefix'], '000001.png'), shallow=False)
    c = generate_demo_dataset(str(tmp_path / 'c'), num_train=3, num_val=2, img_size=64, seed=6)
    assert _load(a['train_ann']) != _load(c['train_ann'])


def test_boxes_are_tight_around_the_drawn_shapes(tmp_path):
    paths = generate_demo_dataset(str(tmp_path), num_train=6, num_val=1, img_size=96, seed=0)
    coco = _load(paths['train_ann'])
    assert [c['name'] for c in coco['categories']] == list(CLASSES)
    assert len(coco['annotations']) >= 6
    for ann in coco['annotations']:
        img_info = coco['images'][ann['image_id']]
        img = cv2.imread(osp.join(paths['train_img_prefix'], img_info['file_name']))
        assert img.shape == (96, 96, 3)
        x, y, w, h = ann['bbox']
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 96 and y + h <= 96
        # The object has one colour: the box's border rows/columns contain it,
        # the rows/columns just outside the box do not (objects never touch).
        inside = img[y:y + h, x:x + w].reshape(-1, 3)
        colours, counts = np.unique(inside, axis=0, return_counts=True)
        colour = colours[counts.argmax()]
        edges = (img[y, x:x + w], img[y + h - 1, x:x + w], img[y:y + h, x],
                 img[y:y + h, x + w - 1])
        for edge in edges:
            assert (edge == colour).all(-1).any()
        if x > 0:
            assert not (img[y:y + h, x - 1] == colour).all(-1).any()
        if y + h < 96:
            assert not (img[y + h, x:x + w] == colour).all(-1).any()


def test_bad_arguments_are_rejected(tmp_path):
    with pytest.raises(ValueError, match='img_size'):
        generate_demo_dataset(str(tmp_path), img_size=16)
    with pytest.raises(ValueError, match='num_train'):
        generate_demo_dataset(str(tmp_path), num_train=0)


def test_command_line_entry_point(tmp_path, capsys):
    main(['--out', str(tmp_path), '--num-train', '2', '--num-val', '1', '--img-size', '48'])
    assert '2 train / 1 val images' in capsys.readouterr().out
    assert osp.isfile(tmp_path / 'annotations' / 'instances_val.json')
