"""End to end: the console scripts train and evaluate on a tiny generated dataset."""
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

from mmdet_hpu.datasets.demo_data import generate_demo_dataset

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CONFIG = osp.join(REPO, 'configs', 'demo', 'yolov3_mobilenetv2-half_128_shapes.py')
BIN = osp.dirname(sys.executable)


def _run(args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('tiny_shapes')
    generate_demo_dataset(str(root), num_train=8, num_val=4, img_size=128, seed=1)
    return str(root)


@pytest.mark.slow
def test_train_then_test_prints_coco_metrics(tiny_data, tmp_path):
    work_dir = str(tmp_path / 'work')
    data_root = f'data_root={tiny_data}/'
    train = _run([osp.join(BIN, 'mmdet-hpu-train'), DEMO_CONFIG, '--device', 'cpu',
                  '--work-dir', work_dir, '--batch-size', '4', '--epochs', '1', '--steps', '2',
                  '--log-interval', '1', '--no-validate', '--seed', '0',
                  '--cfg-options', data_root, 'data.workers_per_gpu=0'], cwd=str(tmp_path))
    assert train.returncode == 0, train.stderr[-3000:]
    assert osp.isfile(osp.join(work_dir, 'epoch_1.pth'))
    log_json = [f for f in os.listdir(work_dir) if f.endswith('.log.json')]
    train_iters = [json.loads(line) for line in open(osp.join(work_dir, log_json[0]))
                   if '"mode": "train"' in line]
    assert [rec['iter'] for rec in train_iters] == [1, 2]

    test = _run([osp.join(BIN, 'mmdet-hpu-test'), DEMO_CONFIG, osp.join(work_dir, 'epoch_1.pth'),
                 '--device', 'cpu', '--eval', 'bbox', '--eval-batch-size', '2',
                 '--work-dir', work_dir, '--cfg-options', data_root,
                 # 2 iterations do not learn much: keep every candidate so COCO has input.
                 'model.test_cfg.conf_thr=0', 'model.test_cfg.score_thr=0',
                 'data.workers_per_gpu=0'], cwd=str(tmp_path))
    assert test.returncode == 0, test.stderr[-3000:]
    assert re.search(r'^bbox_mAP: [0-9.]+$', test.stdout, re.M), test.stdout[-2000:]
    assert 'Average Precision  (AP) @[ IoU=0.50:0.95' in test.stdout
    assert any(f.startswith('eval_') for f in os.listdir(work_dir))


def test_tools_scripts_are_the_console_scripts(tmp_path):
    for script, word in (('train.py', 'Train'), ('test.py', 'Test')):
        out = _run([sys.executable, osp.join(REPO, 'tools', script), '--help'], cwd=str(tmp_path))
        assert out.returncode == 0, out.stderr
        for flag in ('--device', '--lazy', '--autocast', '--cfg-options', '--local-rank'):
            assert flag in out.stdout
        assert word in out.stdout
