"""mmdet-hpu-train: TensorBoard, profiler, --steps on a stock runner, the dumped config.

One demo-sized run (tiny data, CPU, a few iterations) of a config with mmdet's stock
``EpochBasedRunner`` and a type-less ``optimizer_config``, with ``--tensorboard
--profile 1 --steps 3``; the test reads the TensorBoard event file and the logs.
"""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

from mmdet_hpu.datasets.demo_data import generate_demo_dataset

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CONFIG = osp.join(REPO, 'configs', 'demo', 'yolov3_mobilenetv2-half_128_shapes.py')
BIN = osp.dirname(sys.executable)


def _stock_runner_config(tmp_path):
    path = tmp_path / 'stock_runner.py'
    path.write_text(f"_base_ = ['{DEMO_CONFIG}']\n"
                    "runner = dict(_delete_=True, type='EpochBasedRunner', max_epochs=1)\n"
                    "optimizer_config = dict(_delete_=True, grad_clip=None)\n")
    return str(path)


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    """Train 3 iterations (batch 2, log interval 1) with --tensorboard --profile 1."""
    pytest.importorskip('tensorboard', reason="the 'logs'/'dev' extra installs tensorboard")
    tmp_path = tmp_path_factory.mktemp('log_stream')
    data = tmp_path / 'data'
    generate_demo_dataset(str(data), num_train=8, num_val=2, img_size=128, seed=1)
    work_dir = str(tmp_path / 'work')
    config = _stock_runner_config(tmp_path)
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [osp.join(BIN, 'mmdet-hpu-train'), config, '--device', 'cpu', '--work-dir', work_dir,
         '--batch-size', '2', '--steps', '3', '--log-interval', '1', '--no-validate',
         '--seed', '0', '--tensorboard', '--profile', '1',
         '--cfg-options', f'data_root={data}/', 'data.workers_per_gpu=0'],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work_dir, config


def _scalars(work_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (event_file,) = glob.glob(osp.join(work_dir, 'tf_logs', 'events.out.tfevents.*'))
    events = EventAccumulator(event_file)
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)]
            for tag in events.Tags()['scalars']}


@pytest.mark.slow
def test_tensorboard_gets_images_per_sec_memory_and_loss(tiny_run):
    work_dir, _ = tiny_run
    scalars = _scalars(work_dir)
    assert [step for step, _ in scalars['train/loss']] == [1, 2, 3]
    assert all(value > 0 for _, value in scalars['train/imgs_per_sec'])
    assert [value for _, value in scalars['train/max_mem_mb']] == [0, 0, 0]  # cpu: no stats
    assert len(scalars['val/epoch_imgs_per_sec']) == 1  # mmcv's end-of-epoch record
    assert scalars['val/epoch_time'][0][1] > 0


@pytest.mark.slow
def test_text_and_json_logs_still_carry_them(tiny_run):
    work_dir, _ = tiny_run
    (json_log,) = glob.glob(osp.join(work_dir, '*.log.json'))
    records = [json.loads(line) for line in open(json_log)][1:]
    train = [r for r in records if r.get('mode') == 'train']
    assert [r['iter'] for r in train] == [1, 2, 3]
    assert all(r['imgs_per_sec'] > 0 and r['max_mem_mb'] == 0 and 'loss' in r for r in train)
    assert any('epoch_imgs_per_sec' in r for r in records if r.get('mode') == 'val')
    (text_log,) = [p for p in glob.glob(osp.join(work_dir, '*.log'))]
    text = open(text_log).read()
    assert 'imgs_per_sec: ' in text and 'max_mem_mb: 0' in text
    assert 'Epoch 1 throughput: 3 iters, 6 images' in text


@pytest.mark.slow
def test_profile_trace_written_and_training_went_on(tiny_run):
    work_dir, _ = tiny_run
    trace = osp.join(work_dir, 'profile', 'trace_rank0.json')
    with open(trace) as f:
        names = {event.get('name') for event in json.load(f)['traceEvents']}
    assert any(str(n).startswith('aten::conv') for n in names)
    assert osp.isfile(osp.join(work_dir, 'epoch_1.pth'))  # training finished after it


@pytest.mark.slow
def test_dumped_config_is_the_one_that_ran(tiny_run):
    import mmcv

    work_dir, config = tiny_run
    dumped = mmcv.Config.fromfile(osp.join(work_dir, osp.basename(config)))
    assert dumped.runner.type == 'HPUEpochBasedRunner'  # upgraded from EpochBasedRunner
    assert dumped.runner.max_iters_per_epoch == 3  # --steps on a stock runner config
    assert dumped.optimizer_config.type == 'HPUOptimizerHook'
    assert dumped.checkpoint_config.type == 'HPUCheckpointHook'
    assert [h['type'] for h in dumped.log_config.hooks] == ['TextLoggerHook',
                                                            'TensorboardLoggerHook']
    assert dumped.custom_hooks == [dict(type='HPUProfilerHook', steps=1, priority='LOWEST')]
