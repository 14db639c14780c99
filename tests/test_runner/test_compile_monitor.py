"""HPUCompileMonitorHook: compiled-graph count in the epoch log, warning on late recompiles."""
import logging
import os.path as osp

import pytest
from mmcv.runner import LogBuffer
from runner_helpers import json_records

from mmdet_hpu.datasets.demo_data import generate_demo_dataset
from mmdet_hpu.device.compile_counter import COMPILED_GRAPHS
from mmdet_hpu.runner.hooks import HPUCompileMonitorHook

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(REPO, 'configs', 'demo', 'yolov3_mobilenetv2-half_128_shapes.py')


class _Runner:
    def __init__(self):
        self.log_buffer = LogBuffer()
        self.logger = logging.getLogger('mmdet_hpu.tests.compile_monitor')
        self.epoch = 0


def _epoch(hook, runner, new_graphs, monkeypatch):
    hook.before_train_epoch(runner)
    monkeypatch.setattr(COMPILED_GRAPHS, 'graphs', COMPILED_GRAPHS.graphs + new_graphs)
    hook.after_train_epoch(runner)
    runner.epoch += 1
    output = dict(runner.log_buffer.output)
    runner.log_buffer.clear_output()
    return output


def test_count_goes_to_the_log_buffer_and_late_recompiles_warn(monkeypatch, caplog):
    hook, runner = HPUCompileMonitorHook(), _Runner()
    start = COMPILED_GRAPHS.graphs
    with caplog.at_level(logging.WARNING):
        first = _epoch(hook, runner, 3, monkeypatch)
        assert first == dict(compiled_graphs=start + 3, compiled_graphs_epoch=3)
        assert not caplog.records  # the first epoch compiles: expected
        second = _epoch(hook, runner, 0, monkeypatch)
        assert second['compiled_graphs_epoch'] == 0 and not caplog.records
        third = _epoch(hook, runner, 2, monkeypatch)
    assert third['compiled_graphs'] == start + 5
    assert len(caplog.records) == 1
    assert '2 graph(s) compiled during training epoch 3' in caplog.records[0].getMessage()


@pytest.mark.slow
def test_compile_demo_training_compiles_one_graph_per_gt_bucket(tmp_path):
    from mmdet_hpu.cli.train import main

    data_root = tmp_path / 'demo'
    # At most 4 objects per image and HPUPadGT(max_num_gt=16): every batch is bucket 8.
    generate_demo_dataset(str(data_root), num_train=24, num_val=4, img_size=64)
    work_dir = tmp_path / 'work'
    main([DEMO, '--device', 'cpu', '--compile', '--work-dir', str(work_dir), '--epochs', '2',
          '--steps', '3', '--batch-size', '4', '--no-validate', '--seed', '0',
          '--log-interval', '1', '--cfg-options', f'data_root={data_root}/',
          'compile_backend=eager', 'data.workers_per_gpu=0',
          'data.train_dataloader.persistent_workers=False'])
    records = [r for r in json_records(str(work_dir)) if 'compiled_graphs_epoch' in r]
    assert [r['compiled_graphs_epoch'] for r in records] == [1, 0]
    assert records[1]['compiled_graphs'] == records[0]['compiled_graphs']
