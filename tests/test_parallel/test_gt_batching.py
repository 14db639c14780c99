"""The wrappers' batch move hands the detector batch-shaped ground truth: one shape per bucket."""
import numpy as np
import pytest
import torch
from mmcv.parallel import collate
from mmcv.utils import build_from_cfg
from mmdet.datasets.builder import PIPELINES

from mmdet_hpu.analysis.compile_count import coco_like_box_counts, possible_buckets
from mmdet_hpu.models.utils.gt_padding import gt_bucket
from mmdet_hpu.parallel import HPUDataParallel
from mmdet_hpu.parallel.scatter import batch_gt, scatter_to_device

NUM_BATCHES = 300
BATCH = 8
MAX_GT = 128


def _samples(counts, rng, pad_gt: bool):
    steps = ([dict(type='HPUPadGT', max_num_gt=MAX_GT)] if pad_gt else []) + [
        dict(type='DefaultFormatBundle'),
        dict(type='Collect', keys=['img', 'gt_bboxes', 'gt_labels'] +
             (['gt_valid'] if pad_gt else []))]
    steps = [build_from_cfg(step, PIPELINES) for step in steps]
    samples = []
    for i, count in enumerate(counts):
        xy = rng.uniform(0, 20, (count, 2))
        results = dict(img=np.zeros((32, 32, 3), np.float32),
                       img_shape=(32, 32, 3), ori_shape=(32, 32, 3), pad_shape=(32, 32, 3),
                       scale_factor=np.ones(4, np.float32), flip=False, flip_direction=None,
                       filename=f'{i}.jpg', ori_filename=f'{i}.jpg',
                       img_norm_cfg=dict(mean=np.zeros(3), std=np.ones(3), to_rgb=False),
                       gt_bboxes=np.concatenate([xy, xy + 5], 1).astype(np.float32),
                       gt_labels=rng.integers(0, 3, count))
        for step in steps:
            results = step(results)
        samples.append(results)
    return samples


def _signature(data):
    return tuple(tuple(data[key].shape) for key in ('img', 'gt_bboxes', 'gt_labels', 'gt_valid'))


@pytest.mark.parametrize('pad_gt', [True, False], ids=['HPUPadGT', 'stock-lists'])
def test_coco_like_epoch_takes_one_gt_shape_per_bucket(pad_gt):
    rng = np.random.default_rng(0)
    signatures, buckets = set(), set()
    for _ in range(NUM_BATCHES):
        counts = coco_like_box_counts(BATCH, rng)
        batch = collate(_samples(counts, rng, pad_gt), samples_per_gpu=BATCH)
        (data, _), _ = scatter_to_device((batch, None), {}, torch.device('cpu'),
                                         max_num_gt=MAX_GT)
        assert torch.is_tensor(data['gt_bboxes']) and data['gt_valid'].dtype == torch.bool
        assert data['gt_valid'].sum(1).tolist() == counts  # every box kept, in its image
        signatures.add(_signature(data))
        buckets.add(gt_bucket(max(counts), MAX_GT))
    # The per-image tuples of a COCO-like epoch are many; what the device sees is <= 5.
    assert len(buckets) >= 4
    assert len(signatures) == len(buckets) <= len(possible_buckets(MAX_GT)) == 5


def test_batched_gt_keeps_boxes_labels_and_order():
    rng = np.random.default_rng(1)
    samples = _samples([3, 0, 11], rng, pad_gt=True)
    batch = collate(samples, samples_per_gpu=3)
    data = batch_gt(scatter_to_device((batch, None), {}, torch.device('cpu'))[0][0])
    assert data['gt_bboxes'].shape == (3, 16, 4) and data['gt_labels'].shape == (3, 16)
    for i, sample in enumerate(samples):
        valid = sample['gt_valid'].data[0]
        num = int(valid.sum())
        torch.testing.assert_close(data['gt_bboxes'][i, :num], sample['gt_bboxes'].data[:num])
        assert torch.equal(data['gt_labels'][i, :num], sample['gt_labels'].data[:num])
        assert not data['gt_valid'][i, num:].any() and (data['gt_bboxes'][i, num:] == 0).all()


def test_stock_lists_stay_lists_for_models_that_want_them():
    boxes = [torch.zeros(2, 4), torch.zeros(5, 4)]
    labels = [torch.zeros(2, dtype=torch.long), torch.zeros(5, dtype=torch.long)]
    data = batch_gt(dict(gt_bboxes=boxes, gt_labels=labels), max_num_gt=None)
    assert isinstance(data['gt_bboxes'], list) and 'gt_valid' not in data
    assert [b.shape for b in data['gt_bboxes']] == [b.shape for b in boxes]


def test_too_many_boxes_is_a_clear_error():
    boxes = [torch.zeros(9, 4)]
    with pytest.raises(ValueError, match='max_num_gt=8'):
        batch_gt(dict(gt_bboxes=boxes, gt_labels=[torch.zeros(9, dtype=torch.long)]), 8)


def test_wrapper_batches_gt_for_a_padded_gt_model():
    class Recorder(torch.nn.Module):
        padded_gt_max_num_gt = 32

        def train_step(self, data, optimizer):
            return data

    wrapper = HPUDataParallel(Recorder(), device='cpu')
    boxes = [torch.ones(3, 4), torch.ones(12, 4)]
    labels = [torch.zeros(3, dtype=torch.long), torch.zeros(12, dtype=torch.long)]
    data = wrapper.train_step(dict(img=torch.zeros(2, 3, 8, 8), gt_bboxes=boxes,
                                   gt_labels=labels), None)
    assert data['gt_bboxes'].shape == (2, 16, 4)
    assert data['gt_valid'].sum(1).tolist() == [3, 12]
