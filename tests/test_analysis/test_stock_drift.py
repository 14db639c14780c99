"""The side-by-side HPU vs stock training diagnostic, on tiny generated shapes data."""
import os
import os.path as osp
import subprocess
import sys

import mmcv
import pytest

import mmdet_hpu  # noqa: F401
from mmdet_hpu.analysis.stock_drift import loss_drift
from mmdet_hpu.cli.overrides import merge_cfg_options
from mmdet_hpu.datasets.demo_data import generate_demo_dataset

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def demo_cfg(name, data):
    cfg = mmcv.Config.fromfile(
        osp.join(REPO, 'configs', 'demo', f'{name}_mobilenetv2-half_128_shapes.py'))
    return merge_cfg_options(cfg, {'data_root': data + '/'})


@pytest.fixture(scope='module')
def shapes_data(tmp_path_factory):
    data = str(tmp_path_factory.mktemp('shapes'))
    generate_demo_dataset(data, num_train=4, num_val=1, img_size=128, seed=3)
    return data


@pytest.mark.parametrize('name', ['retinanet', 'ssd', 'fcos', 'atss'])
def test_hpu_and_stock_take_the_same_first_step_on_real_batches(name, shapes_data):
    """Same weights, same augmented batch: the losses agree to float32 rounding (then drift)."""
    steps = loss_drift(demo_cfg(name, shapes_data), steps=1, batch_size=2)
    assert len(steps) == 1 and steps[0].loss_b > 0
    assert steps[0].relative < 1e-5, steps


def test_reference_run_perturbs_the_weights(shapes_data):
    steps = loss_drift(demo_cfg('fcos', shapes_data), steps=1, perturb=1e-3, batch_size=2)
    assert steps[0].relative > 1e-6


@pytest.mark.slow
def test_stock_drift_tool_prints_both_runs(shapes_data):
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'stock_drift.py'),
         osp.join(REPO, 'configs', 'demo', 'fcos_mobilenetv2-half_128_shapes.py'),
         '--steps', '2', '--batch-size', '2', '--cfg-options', f'data_root={shapes_data}/'],
        cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS='1'), capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    # pycocotools prints its own lines first ("loading annotations into memory...").
    lines = lines[next(i for i, line in enumerate(lines) if line.lstrip().startswith('step')):]
    assert 'HPU vs stock' in lines[0] and 'stock vs stock' in lines[0]
    assert [line.split()[0] for line in lines[1:]] == ['0', '1']
    assert all(len(line.split()) == 7 for line in lines[1:])
