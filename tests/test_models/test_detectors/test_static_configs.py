"""configs/retinanet and configs/ssd: mmdet's shipped COCO recipes with static shapes."""
import os.path as osp

import mmcv
import mmdet
import pytest
from mmdet.models import build_detector

import mmdet_hpu  # noqa: F401  (registers the HPU types)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
SHIPPED = osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs')
CONFIGS = ['retinanet/retinanet_r50_fpn_1x_coco.py', 'retinanet/retinanet_r18_fpn_1x_coco.py',
           'ssd/ssd300_coco.py']
HPU_TYPES = {'HPURetinaNet': 'RetinaNet', 'HPURetinaHead': 'RetinaHead',
             'HPUSingleStageDetector': 'SingleStageDetector', 'HPUSSDHead': 'SSDHead'}


def as_stock(model):
    """The model dict with HPU types mapped to their stock parents and max_num_gt dropped."""
    model = mmcv.ConfigDict(model.to_dict() if hasattr(model, 'to_dict') else model)
    model.type = HPU_TYPES[model.type]
    model.bbox_head.type = HPU_TYPES[model.bbox_head.type]
    model.bbox_head.pop('max_num_gt')
    return model.to_dict()


def pipeline_types(pipeline):
    return [step['type'] for step in pipeline]


@pytest.mark.parametrize('name', CONFIGS)
def test_config_is_the_shipped_recipe_with_static_shapes(name):
    cfg = mmcv.Config.fromfile(osp.join(ROOT, 'configs', name))
    shipped = mmcv.Config.fromfile(osp.join(SHIPPED, name))
    assert as_stock(cfg.model) == shipped.model.to_dict()
    for key in ('optimizer', 'lr_config', 'runner', 'evaluation'):
        assert cfg[key] == shipped[key], key
    train = cfg.data.train.get('dataset', cfg.data.train)
    shipped_train = shipped.data.train.get('dataset', shipped.data.train)
    assert (train.ann_file, train.type) == (shipped_train.ann_file, shipped_train.type)
    assert cfg.data.samples_per_gpu == shipped.data.samples_per_gpu
    steps = pipeline_types(train.pipeline)
    shipped_steps = pipeline_types(shipped_train.pipeline)
    # Same transforms; HPUPadGT added before the formatting; Pad (if any) to a fixed size.
    assert [s for s in steps if s != 'HPUPadGT'] == shipped_steps
    assert steps.index('HPUPadGT') == steps.index('DefaultFormatBundle') - 1
    assert 'gt_valid' in train.pipeline[-1]['keys']
    for step in train.pipeline:
        if step['type'] == 'Pad':
            assert 'size' in step and 'size_divisor' not in step
        if step['type'] == 'Resize' and not step.get('keep_ratio', True):
            assert len(step['img_scale']) == 2 and isinstance(step['img_scale'][0], int)
    assert 'mmdet_hpu' in cfg.custom_imports['imports']


@pytest.mark.parametrize('name', CONFIGS)
def test_config_builds_the_hpu_detector(name):
    cfg = mmcv.Config.fromfile(osp.join(ROOT, 'configs', name))
    model = build_detector(cfg.model)  # no init_weights(): nothing is downloaded
    assert type(model).__name__ == cfg.model.type
    assert type(model.bbox_head).__name__ == cfg.model.bbox_head.type
