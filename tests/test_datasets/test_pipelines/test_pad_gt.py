"""HPUPadGT: padding, errors, and the path through DefaultFormatBundle/Collect/collate/model."""
import mmcv
import numpy as np
import pytest
import torch
from mmcv.parallel import DataContainer, collate, scatter
from mmdet.datasets.builder import PIPELINES
from mmdet.datasets.pipelines import Compose
from mmdet.models import build_detector

import mmdet_hpu  # noqa: F401  (registers HPUPadGT)
from mmdet_hpu.datasets.pipelines import HPUPadGT
from mmdet_hpu.models.utils import gt_bucket

IMG_SIZE = 64


def sample(num_boxes, seed):
    rng = np.random.RandomState(seed)
    xy = rng.uniform(0, 40, size=(num_boxes, 2))
    wh = rng.uniform(4, 20, size=(num_boxes, 2))
    shape = (IMG_SIZE, IMG_SIZE, 3)
    return dict(
        img=rng.randn(*shape).astype(np.float32),
        gt_bboxes=np.concatenate([xy, xy + wh], axis=1).astype(np.float32),
        gt_labels=rng.randint(0, 3, size=num_boxes).astype(np.int64),
        filename='x.jpg', ori_filename='x.jpg', ori_shape=shape, img_shape=shape,
        pad_shape=shape, scale_factor=np.ones(4, dtype=np.float32), flip=False,
        flip_direction=None, img_norm_cfg=dict(mean=[0.0] * 3, std=[1.0] * 3, to_rgb=False))


def test_registered_and_pads():
    assert PIPELINES.get('HPUPadGT') is HPUPadGT
    results = sample(3, seed=0)
    boxes, labels = results['gt_bboxes'].copy(), results['gt_labels'].copy()
    out = PIPELINES.build(dict(type='HPUPadGT', max_num_gt=5))(results)
    assert out['gt_bboxes'].shape == (5, 4) and out['gt_bboxes'].dtype == np.float32
    assert out['gt_labels'].shape == (5,) and out['gt_labels'].dtype == np.int64
    np.testing.assert_array_equal(out['gt_bboxes'][:3], boxes)
    np.testing.assert_array_equal(out['gt_labels'][:3], labels)
    assert (out['gt_bboxes'][3:] == 0).all() and (out['gt_labels'][3:] == 0).all()
    assert isinstance(out['gt_valid'], DataContainer) and out['gt_valid'].stack
    assert out['gt_valid'].pad_dims == 1 and out['gt_valid'].padding_value == 0
    # (1, G): mmcv's collate only pads tensors with more dimensions than pad_dims.
    assert out['gt_valid'].data.tolist() == [[True, True, True, False, False]]


def test_zero_boxes_and_exactly_full():
    empty = HPUPadGT(max_num_gt=4)(sample(0, seed=1))
    assert empty['gt_bboxes'].shape == (4, 4) and not empty['gt_valid'].data.any()
    full = HPUPadGT(max_num_gt=4)(sample(4, seed=2))
    assert full['gt_valid'].data.all()


def test_too_many_boxes_says_what_to_raise():
    with pytest.raises(ValueError, match='raise max_num_gt of the HPUPadGT transform'):
        HPUPadGT(max_num_gt=2)(sample(3, seed=3))


@pytest.mark.parametrize('max_num_gt', [0, -1, 1.5, None])
def test_invalid_max_num_gt(max_num_gt):
    with pytest.raises(ValueError, match='max_num_gt'):
        HPUPadGT(max_num_gt=max_num_gt)


def test_mismatched_labels():
    results = sample(3, seed=4)
    results['gt_labels'] = results['gt_labels'][:2]
    with pytest.raises(ValueError, match='gt_labels'):
        HPUPadGT(max_num_gt=8)(results)


def formatted_batch(counts, max_num_gt):
    pipeline = Compose([
        dict(type='HPUPadGT', max_num_gt=max_num_gt),
        dict(type='DefaultFormatBundle'),
        dict(type='Collect', keys=['img', 'gt_bboxes', 'gt_labels', 'gt_valid']),
    ])
    return collate([pipeline(sample(n, seed=i)) for i, n in enumerate(counts)],
                   samples_per_gpu=len(counts))


def test_format_bundle_collect_and_collate_give_static_shapes():
    data = formatted_batch([2, 0, 5], max_num_gt=6)
    valid = data['gt_valid'].data[0]
    assert valid.shape == (3, 1, 6) and valid.dtype == torch.bool
    assert valid.sum((1, 2)).tolist() == [2, 0, 5]
    boxes, labels = data['gt_bboxes'].data[0], data['gt_labels'].data[0]
    assert [tuple(b.shape) for b in boxes] == [(6, 4)] * 3
    assert [tuple(lbl.shape) for lbl in labels] == [(6,)] * 3


def test_bucket_sizes():
    buckets = {gt_bucket(n, 128) for n in range(129)}
    assert buckets == {8, 16, 32, 64, 128}
    assert all(n <= gt_bucket(n, 128) < max(16, 2 * n) for n in range(129))
    assert [gt_bucket(n, 100) for n in (0, 8, 9, 64, 65, 100)] == [8, 8, 16, 64, 100, 100]
    assert gt_bucket(3, 5) == 5


@pytest.mark.parametrize('num_gt,bucket', [(0, 8), (3, 8), (8, 8), (9, 16), (33, 64),
                                           (64, 64), (65, 128), (128, 128)])
def test_each_image_is_padded_to_its_bucket(num_gt, bucket):
    out = HPUPadGT(max_num_gt=128)(sample(num_gt, seed=num_gt))
    assert out['gt_bboxes'].shape == (bucket, 4) and out['gt_labels'].shape == (bucket,)
    assert out['gt_valid'].data.shape == (1, bucket)
    assert int(out['gt_valid'].data.sum()) == num_gt


def test_bucketing_still_raises_above_max_num_gt():
    with pytest.raises(ValueError, match='raise max_num_gt of the HPUPadGT transform'):
        HPUPadGT(max_num_gt=128)(sample(129, seed=5))
    with pytest.raises(ValueError, match='raise max_num_gt'):
        HPUPadGT(max_num_gt=100)(sample(101, seed=6))
    assert HPUPadGT(max_num_gt=100)(sample(100, seed=7))['gt_bboxes'].shape == (100, 4)


def test_collate_pads_gt_valid_to_the_largest_bucket():
    counts = [3, 0, 40, 9]
    data = formatted_batch(counts, max_num_gt=128)
    valid = data['gt_valid'].data[0]
    assert valid.shape == (4, 1, 64) and valid.dtype == torch.bool
    assert valid.sum((1, 2)).tolist() == counts
    assert valid[:, 0, :40].sum(1).tolist() == counts  # real rows first, collate pads False
    boxes, labels = data['gt_bboxes'].data[0], data['gt_labels'].data[0]
    assert [tuple(b.shape) for b in boxes] == [(8, 4), (8, 4), (64, 4), (16, 4)]
    assert [tuple(lbl.shape) for lbl in labels] == [(8,), (8,), (64,), (16,)]


@pytest.mark.parametrize('counts,max_num_gt', [([2, 0, 5], 6), ([2, 0, 9], 16)])
def test_padded_batch_trains_like_unpadded(counts, max_num_gt):
    model_cfg = dict(
        type='HPUYOLOV3',
        backbone=dict(type='MobileNetV2', widen_factor=0.25, out_indices=(2, 4, 6)),
        neck=dict(type='YOLOV3Neck', num_scales=3, in_channels=[80, 24, 8],
                  out_channels=[16, 16, 16]),
        bbox_head=dict(type='HPUYOLOV3Head', num_classes=3, in_channels=[16, 16, 16],
                       out_channels=[16, 16, 16]),
        train_cfg=dict(assigner=dict(type='GridAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5,
                                     min_pos_iou=0)))
    torch.manual_seed(0)
    model = build_detector(mmcv.ConfigDict(model_cfg))
    padded = scatter(formatted_batch(counts, max_num_gt=max_num_gt), [-1])[0]
    unpadded = dict(padded)
    unpadded.pop('gt_valid')
    unpadded['gt_bboxes'] = [b[:n] for b, n in zip(padded['gt_bboxes'], counts)]
    unpadded['gt_labels'] = [lbl[:n] for lbl, n in zip(padded['gt_labels'], counts)]
    expected = model.train_step(unpadded, None)['log_vars']
    actual = model.train_step(padded, None)['log_vars']
    assert list(actual) == list(expected)
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=1e-5, atol=1e-6)
    assert expected['loss_xy'] > 0
