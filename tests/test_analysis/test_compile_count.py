"""Graph counts under torch.compile(dynamic=False, fullgraph=True) with a counting backend."""
import mmcv
import numpy as np
import pytest
import torch

from mmdet_hpu.analysis import compile_count
from mmdet_hpu.analysis.host_read_loop import IMG_SIZE, tiny_yolov3, tiny_yolov3_cfg
from mmdet_hpu.device.compile_counter import GraphCounter
from mmdet_hpu.models.utils.gt_padding import bucket_gt_list


def _cfg(pad_gt: bool) -> mmcv.Config:
    tail = [dict(type='DefaultFormatBundle'),
            dict(type='Collect', keys=['img', 'gt_bboxes', 'gt_labels'])]
    if pad_gt:
        tail = [dict(type='HPUPadGT', max_num_gt=128)] + tail
        tail[-1]['keys'].append('gt_valid')
    return mmcv.Config(dict(model=tiny_yolov3_cfg(), data=dict(train=dict(pipeline=tail))))


def test_coco_like_counts_have_coco_statistics():
    counts = np.array(compile_count.coco_like_box_counts(20000, np.random.default_rng(0)))
    assert counts.min() == 0 and counts.max() == 93
    assert 6 < counts.mean() < 9 and np.median(counts) <= 5
    assert 0.005 < (counts > 64).mean() < 0.03   # crowded images exist, rarely
    assert compile_count.possible_buckets(128) == [8, 16, 32, 64, 128]
    assert compile_count.possible_buckets(16) == [8, 16]


def test_list_padding_has_no_graph_break():
    boxes = [torch.rand(3, 4), torch.rand(11, 4)]
    labels = [torch.zeros(3, dtype=torch.long), torch.zeros(11, dtype=torch.long)]
    explained = torch._dynamo.explain(bucket_gt_list)(boxes, labels, 128)
    assert explained.graph_break_count == 0


@pytest.mark.slow
@pytest.mark.parametrize('pad_gt', [True, False], ids=['HPUPadGT', 'stock-lists'])
def test_training_step_and_postprocessing_compile_once_per_bucket_and_batch_size(pad_gt):
    model = tiny_yolov3()
    sizes = dict(batch_size=4, test_batch_size=4, train_hw=(IMG_SIZE, IMG_SIZE),
                 test_hw=(IMG_SIZE, IMG_SIZE))
    report = compile_count.count_compiled_graphs(model, _cfg(pad_gt), sizes, num_batches=48)
    assert len(report['buckets_seen']) >= 3  # the varied counts did reach several buckets
    assert report['train_graphs'] == len(report['buckets_seen'])
    assert report['test_batch_sizes'] == [2, 4] and report['test_graphs'] == 2
    assert 'train_graph' not in vars(model) and 'test_graph' not in vars(model)


@pytest.mark.slow
def test_per_image_lists_given_straight_to_the_detector_compile_once_per_bucket():
    model = tiny_yolov3()
    counter = GraphCounter()
    model.train_graph = torch.compile(model.train_graph, backend=counter.wrap('eager'),
                                      dynamic=False, fullgraph=True)
    rng = np.random.default_rng(0)
    tuples, buckets = set(), set()
    for counts in ([1, 2], [2, 1], [0, 7], [5, 5], [3, 9], [12, 0], [8, 16], [16, 2]):
        boxes = [torch.tensor(np.tile(rng.uniform(0, 30, (n, 2)), 2) + [0, 0, 20, 20],
                              dtype=torch.float32) for n in counts]
        labels = [torch.zeros(n, dtype=torch.long) for n in counts]
        metas = [dict(img_shape=(64, 64, 3), filename=f'{i}.jpg') for i in range(2)]
        model.forward_train(torch.randn(2, 3, 64, 64), metas, boxes, labels)
        tuples.add(tuple(counts))
        buckets.add(8 if max(counts) <= 8 else 16)
    assert len(tuples) == 8 and counter.graphs == len(buckets) == 2
