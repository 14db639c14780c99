"""Evaluation shows mmcv's ProgressBar on rank 0 without adding host reads."""
import pytest
from runner_helpers import build_test_runner, demo_val_dataset, tiny_yolov3

import mmdet_hpu.runner.hooks.evaluation as evaluation
from mmdet_hpu.runner import build_eval_dataloader, single_device_test
from mmdet_hpu.runner.host_reads import HostReadCounter

NUM_VAL = 6


@pytest.fixture(scope='module')
def loader(tmp_path_factory):
    dataset = demo_val_dataset(str(tmp_path_factory.mktemp('coco')), NUM_VAL)
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
