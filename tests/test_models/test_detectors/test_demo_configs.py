"""configs/demo: one demo config per detector on the shapes data, and its stock counterpart.

Each demo config passes the training checks, trains one iteration through the device wrapper
and evaluates a batch on tiny generated shapes data; its stock conversion
(``mmdet_hpu.analysis.compare_stock.stock_config``) builds stock types only and trains too.
"""
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from mmcv.parallel import collate
from mmdet.datasets import build_dataset
from mmdet.models import build_detector

from mmdet_hpu.analysis.compare_stock import stock_config
from mmdet_hpu.cli.overrides import merge_cfg_options
from mmdet_hpu.datasets.demo_data import generate_demo_dataset
from mmdet_hpu.parallel import HPUDataParallel
from mmdet_hpu.validation.config_checks import check_config_keys
from mmdet_hpu.validation.data_paths import check_data_paths
from mmdet_hpu.validation.value_types import check_value_types

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
# demo name: (detector, head, their stock parents)
DEMOS = {
    'yolov3': ('HPUYOLOV3', 'HPUYOLOV3Head', 'YOLOV3', 'YOLOV3Head'),
    'retinanet': ('HPURetinaNet', 'HPURetinaHead', 'RetinaNet', 'RetinaHead'),
    'ssd': ('HPUSingleStageDetector', 'HPUSSDHead', 'SingleStageDetector', 'SSDHead'),
    'fcos': ('HPUSingleStageDetector', 'HPUFCOSHead', 'SingleStageDetector', 'FCOSHead'),
    'atss': ('HPUSingleStageDetector', 'HPUATSSHead', 'SingleStageDetector', 'ATSSHead'),
}
IMG = 128


def demo_config_path(name):
    return osp.join(REPO, 'configs', 'demo', f'{name}_mobilenetv2-half_128_shapes.py')


@pytest.fixture(scope='module')
def shapes_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('shapes'))
    generate_demo_dataset(root, num_train=4, num_val=2, img_size=IMG, seed=1)
    return root + '/'


def load_demo(name, data_root):
    cfg = mmcv.Config.fromfile(demo_config_path(name))
    return merge_cfg_options(cfg, {'data_root': data_root})


def _types(node):
    if isinstance(node, dict):
        found = [node['type']] if isinstance(node.get('type'), str) else []
        return found + [t for value in node.values() for t in _types(value)]
    if isinstance(node, (list, tuple)):
        return [t for item in node for t in _types(item)]
    return []


def _train_one_iteration(cfg):
    """One training iteration through the device wrapper; returns the model and its losses."""
    dataset = build_dataset(cfg.data.train)
    batch = collate([dataset[0], dataset[1]], samples_per_gpu=2)
    torch.manual_seed(0)
    model = build_detector(cfg.model)
    model.init_weights()
    model.CLASSES = dataset.CLASSES
    wrapped = HPUDataParallel(model, device='cpu')
    outputs = wrapped.train_step(batch, None)
    outputs['loss'].backward()
    return wrapped, outputs


@pytest.mark.parametrize('name', list(DEMOS))
def test_demo_config_validates_trains_and_evaluates(name, shapes_root):
    cfg = load_demo(name, shapes_root)
    check_config_keys(cfg)
    check_value_types(cfg)
    check_data_paths(cfg, ('train', 'val', 'test'))
    detector, head = DEMOS[name][:2]
    assert (cfg.model.type, cfg.model.bbox_head.type) == (detector, head)
    steps = {step.type: step for step in cfg.data.train.pipeline}
    assert tuple(steps['Pad'].size) == (IMG, IMG) and steps['HPUPadGT'].max_num_gt == 16
    assert 'gt_valid' in steps['Collect']['keys'] and cfg.model.bbox_head.num_classes == 3

    wrapped, outputs = _train_one_iteration(cfg)
    assert torch.isfinite(outputs['loss']) and outputs['num_samples'] == 2
    grads = [p.grad for p in wrapped.module.bbox_head.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)

    dataset = build_dataset(cfg.data.test, dict(test_mode=True))
    batch = collate([dataset[0], dataset[1]], samples_per_gpu=2)
    wrapped.eval()
    with torch.no_grad():
        results = wrapped(return_loss=False, rescale=True, **batch)
    assert len(results) == 2
    for per_class in results:
        assert len(per_class) == 3 and all(r.shape[1] == 5 for r in per_class)
    # The two results are the whole (tiny) val split: COCO evaluation runs on them.
    metrics = dataset.evaluate(results, metric='bbox')
    assert isinstance(metrics, dict)


@pytest.mark.parametrize('name', list(DEMOS))
def test_stock_conversion_builds_stock_types_and_trains(name, shapes_root):
    cfg = load_demo(name, shapes_root)
    stock, changes = stock_config(cfg)
    assert not [t for t in _types(stock.model) if t.startswith('HPU')]
    assert (stock.model.type, stock.model.bbox_head.type) == DEMOS[name][2:]
    assert 'max_num_gt' not in stock.model.bbox_head
    train_steps = [step.type for step in stock.data.train.pipeline]
    assert 'HPUPadGT' not in train_steps and 'gt_valid' not in stock.data.train.pipeline[-1]['keys']
    assert changes == ['dropped HPUPadGT(max_num_gt=16)', 'Collect keys without gt_valid']
    # Everything but the model and the ground-truth padding is the same.
    for key in ('optimizer', 'optimizer_config', 'lr_config', 'runner', 'data_root'):
        assert stock[key] == cfg[key], key
    assert stock.data.test == cfg.data.test
    assert [s for s in cfg.data.train.pipeline if s.type not in ('HPUPadGT', 'Collect')] == \
        [s for s in stock.data.train.pipeline if s.type != 'Collect']

    wrapped, outputs = _train_one_iteration(stock)
    assert type(wrapped.module.bbox_head).__module__.startswith('mmdet.')
    assert torch.isfinite(outputs['loss'])
    assert np.isfinite(outputs['log_vars']['loss'])
