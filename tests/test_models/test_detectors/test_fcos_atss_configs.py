"""configs/fcos and configs/atss: mmdet 2.28's COCO recipes with static shapes."""
import copy
import os.path as osp

import mmcv
import mmdet
import pytest
import torch
from mmdet.models import build_detector

import mmdet_hpu  # noqa: F401  (registers the HPU heads and HPUPadGT)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
MMDET_CONFIGS = osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs')
CONFIGS = {
    'fcos/fcos_r50_caffe_fpn_gn-head_1x_coco.py': ('FCOS', 'HPUFCOSHead'),
    'fcos/fcos_center-normbbox-centeronreg-giou_r50_caffe_fpn_gn-head_1x_coco.py':
        ('FCOS', 'HPUFCOSHead'),
    'atss/atss_r50_fpn_1x_coco.py': ('ATSS', 'HPUATSSHead'),
}
CANVAS = (1344, 1344)


def load_pair(name):
    ours = mmcv.Config.fromfile(osp.join(REPO, 'configs', name))
    stock = mmcv.Config.fromfile(osp.join(MMDET_CONFIGS, name))
    return ours, stock


@pytest.mark.parametrize('name', list(CONFIGS))
def test_model_is_stock_but_for_the_type_names(name):
    ours, stock = load_pair(name)
    stock_detector, hpu_head = CONFIGS[name]
    model = copy.deepcopy(ours.model.to_dict() if hasattr(ours.model, 'to_dict')
                          else dict(ours.model))
    assert model.pop('type') == 'HPUSingleStageDetector' and stock.model.type == stock_detector
    assert model['bbox_head'].pop('type') == hpu_head
    assert model['bbox_head'].pop('max_num_gt') == 128
    expected = copy.deepcopy(dict(stock.model))
    expected.pop('type')
    expected['bbox_head'] = dict(expected['bbox_head'])
    expected['bbox_head'].pop('type')
    assert mmcv.Config(model).pretty_text == mmcv.Config(expected).pretty_text


@pytest.mark.parametrize('name', list(CONFIGS))
def test_schedule_and_normalisation_are_stock(name):
    ours, stock = load_pair(name)
    for key in ('optimizer', 'optimizer_config', 'lr_config'):
        assert ours[key] == stock[key], key
    assert ours.runner.max_epochs == stock.runner.max_epochs
    # The stock runner type, as shipped: mmdet-hpu-train upgrades it to HPUEpochBasedRunner.
    assert ours.runner.type == stock.runner.type
    assert ours.data.samples_per_gpu == stock.data.samples_per_gpu
    ours_norm = [t for t in ours.data.train.pipeline if t.type == 'Normalize']
    stock_norm = [t for t in stock.data.train.pipeline if t.type == 'Normalize']
    assert ours_norm == stock_norm


@pytest.mark.parametrize('name', list(CONFIGS))
def test_pipelines_have_static_shapes(name):
    ours, _ = load_pair(name)
    train = [t.type for t in ours.data.train.pipeline]
    assert train[-3:] == ['HPUPadGT', 'DefaultFormatBundle', 'Collect']
    assert 'gt_valid' in ours.data.train.pipeline[-1]['keys']
    pads = [t for t in ours.data.train.pipeline if t.type == 'Pad']
    pads += [t for t in ours.data.test.pipeline[1].transforms if t.type == 'Pad']
    assert len(pads) == 2 and all(tuple(p['size']) == CANVAS and 'size_divisor' not in p
                                  for p in pads)
    # The canvas holds every image the 1333 x 800 keep-ratio resize can produce.
    assert min(CANVAS) >= 1333


@pytest.mark.parametrize('name', list(CONFIGS))
def test_model_builds_and_loads_stock_weights_strictly(name):
    ours, stock = load_pair(name)
    model_cfg = copy.deepcopy(ours.model)
    model_cfg.backbone.init_cfg = None
    stock_cfg = copy.deepcopy(stock.model)
    stock_cfg.backbone.init_cfg = None
    torch.manual_seed(0)
    reference = build_detector(stock_cfg)
    model = build_detector(model_cfg)
    assert type(model.bbox_head).__name__ == CONFIGS[name][1]
    model.load_state_dict(reference.state_dict(), strict=True)
