"""tools/demo.sh (``make demo``) ends by saying where checkpoint, logs and metrics are."""
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import pytest

from mmdet_hpu.datasets.demo_data import generate_demo_dataset

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.mark.slow
def test_demo_prints_where_everything_is(tmp_path):
    data = str(tmp_path / 'data')
    generate_demo_dataset(data, num_train=4, num_val=2, img_size=128, seed=1)
    work_dir = str(tmp_path / 'work')
    env = dict(os.environ, OMP_NUM_THREADS='1', DEVICE='cpu',
               VENV=osp.dirname(osp.dirname(sys.executable)),
               TRAIN_ARGS='--epochs 1 --steps 1 --batch-size 2',
               TEST_ARGS='--eval-batch-size 2')
    proc = subprocess.run(['bash', osp.join(REPO, 'tools', 'demo.sh'),
                           osp.join(REPO, 'configs', 'demo',
                                    'yolov3_mobilenetv2-half_128_shapes.py'), data, work_dir],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert f'demo: everything is in {work_dir}/' in out
    checkpoint = re.search(r'checkpoint +(\S+) -> (\S+)', out)
    assert checkpoint and osp.isfile(checkpoint.group(1))
    log = re.search(r'training log (\S+) \(text\), (\S+\.log\.json)', out)
    assert log and osp.isfile(log.group(1)) and osp.isfile(log.group(2))
    metrics = re.search(r'metrics +(\S+), (\S+\.json)', out)
    assert metrics and osp.isfile(metrics.group(1)) and osp.isfile(metrics.group(2))
    plot = re.search(r'loss curve +(\S+) (\S+analyze_logs\.py) plot_curve', out)
    assert plot and osp.isfile(plot.group(2))


@pytest.mark.skipif(shutil.which('make') is None, reason='needs GNU make')
def test_make_demo_with_an_unknown_model_fails_before_writing_anything(tmp_path):
    env = dict(os.environ, MAKEFLAGS='')
    proc = subprocess.run(
        ['make', '-C', REPO, 'demo', 'MODEL=bogus', f'VENV={tmp_path}/venv',
         f'DEMO_DATA={tmp_path}/data', f'DEMO_WORK_DIR={tmp_path}/work'],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert 'MODEL=bogus is not a demo model' in proc.stderr
    assert 'yolov3 retinanet ssd fcos atss' in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(shutil.which('make') is None, reason='needs GNU make')
@pytest.mark.parametrize('model', ['yolov3', 'retinanet', 'ssd', 'fcos', 'atss'])
def test_make_demo_model_runs_its_config_in_its_work_dir(model):
    proc = subprocess.run(['make', '-n', '-C', REPO, 'demo', f'MODEL={model}',
                           'VENV=' + osp.dirname(osp.dirname(sys.executable))],
                          env=dict(os.environ, MAKEFLAGS=''), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    config = f'configs/demo/{model}_mobilenetv2-half_128_shapes.py'
    assert osp.isfile(osp.join(REPO, config))
    work_dir = 'work_dirs/demo' if model == 'yolov3' else f'work_dirs/demo-{model}'
    assert f'bash tools/demo.sh {config} data/demo {work_dir}' in proc.stdout
