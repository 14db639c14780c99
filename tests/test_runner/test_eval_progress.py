"""Evaluation shows mmcv's ProgressBar on rank 0 without adding host reads."""
import pytest
from runner_helpers import IMG_SIZE, build_test_runner, tiny_yolov3

import mmdet_hpu.runner.hooks.evaluation as evaluation
from mmdet_hpu.datasets.demo_data import CLASSES, generate_demo_dataset
from mmdet_hpu.runner import build_eval_dataloader, single_device_test
from mmdet_hpu.runner.host_reads import HostReadCounter

NUM_VAL = 6


@pytest.fixture(scope='module')
def loader(tmp_path_factory):
    paths = generate_demo_dataset(str(tmp_path_factory.mktemp('coco')), num_train=1,
                                  num_val=NUM_VAL, img_size=IMG_SIZE, seed=0)
    norm = dict(mean=[0, 0, 0], std=[255., 255., 255.], to_rgb=True)
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='MultiScaleFlipAug', img_scale=(IMG_SIZE, IMG_SIZE), flip=False, transforms=[
            dict(type='Resize', keep_ratio=True), dict(type='RandomFlip'),
            dict(type='Normalize', **norm), dict(type='Pad', size_divisor=32),
            dict(type='ImageToTensor', keys=['img']), dict(type='Collect', keys=['img'])])]
    dataset = dict(type='CocoDataset', classes=CLASSES, ann_file=paths['val_ann'],
                   img_prefix=paths['val_img_prefix'], pipeline=pipeline)
    return build_eval_dataloader(dict(dataset=dataset, samples_per_gpu=2, workers_per_gpu=0))


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    return build_test_runner(tiny_yolov3(), str(tmp_path_factory.mktemp('work'))).model


def test_progress_bar_counts_images_and_adds_no_host_reads(model, loader, capsys):
    with HostReadCounter() as quiet:
        expected = single_device_test(model, loader, show_progress=False)
    assert capsys.readouterr().out == ''
    with HostReadCounter() as shown:
        results = single_device_test(model, loader)
    out = capsys.readouterr().out
    assert shown.snapshot() == quiet.snapshot()  # the bar reads nothing from the device
    assert len(results) == len(expected) == NUM_VAL
    # One update per batch of 2 images: 2/6, 4/6, 6/6.
    for done in (2, 4, 6):
        assert f'{done}/{NUM_VAL}, ' in out


def test_no_progress_bar_on_other_ranks(model, loader, capsys, monkeypatch):
    monkeypatch.setattr(evaluation, 'get_dist_info', lambda: (1, 2))
    single_device_test(model, loader)
    assert capsys.readouterr().out == ''
