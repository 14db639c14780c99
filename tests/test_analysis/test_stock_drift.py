"""The side-by-side HPU vs stock training diagnostic, on tiny generated shapes data."""
import os
import os.path as osp
import subprocess
import sys

import mmcv
import pytest
import torch
from mmdet.models import build_detector

import mmdet_hpu  # noqa: F401
from mmdet_hpu.analysis.stock_drift import loss_drift, same_weights_agreement
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


@pytest.mark.parametrize('name', ['retinanet', 'fcos'])
def test_same_weights_agreement_at_a_checkpoint(name, shapes_data, tmp_path):
    """Weights other than the init (a saved checkpoint): losses 1e-5, gradients 1e-4."""
    cfg = demo_cfg(name, shapes_data)
    torch.manual_seed(7)
    model = build_detector(cfg.model)
    with torch.no_grad():
        for param in model.bbox_head.parameters():
            param.add_(0.05 * torch.randn_like(param))
    checkpoint = str(tmp_path / 'weights.pth')
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    at_init = same_weights_agreement(cfg, 1, batch_size=2)
    at_checkpoint = same_weights_agreement(cfg, 2, checkpoint, batch_size=2)
    assert len(at_checkpoint) == 2
    for agreement in at_checkpoint:
        assert max(agreement.loss_terms.values()) < 1e-5, agreement
        assert 0 <= agreement.gradient < 1e-4, agreement
    # The checkpoint was loaded: its losses are not the init's.
    assert at_checkpoint[0].losses.keys() == at_init[0].losses.keys()
    assert at_checkpoint[0].losses['loss'] != at_init[0].losses['loss']


def test_reference_run_perturbs_the_weights(shapes_data):
    steps = loss_drift(demo_cfg('fcos', shapes_data), steps=1, perturb=1e-3, batch_size=2)
    assert steps[0].relative > 1e-6


@pytest.mark.slow
def test_stock_drift_tool_prints_both_runs(shapes_data):
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'stock_drift.py'),
         osp.join(REPO, 'configs', 'demo', 'fcos_mobilenetv2-half_128_shapes.py'),
         '--batches', '1', '--steps', '2', '--batch-size', '2',
         '--cfg-options', f'data_root={shapes_data}/'],
        cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS='1'), capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert any(line.startswith('same weights, 1 batches: worst loss-term difference')
               for line in lines), proc.stdout
    # pycocotools prints its own lines first ("loading annotations into memory...").
    lines = lines[next(i for i, line in enumerate(lines) if line.lstrip().startswith('step')):]
    assert 'HPU vs stock' in lines[0] and 'stock vs stock' in lines[0]
    assert [line.split()[0] for line in lines[1:]] == ['0', '1']
    assert all(len(line.split()) == 7 for line in lines[1:])
