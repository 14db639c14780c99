"""Stock counterparts of HPU model configs, and model configs that download nothing."""
import mmcv
import pytest
from mmdet.models.builder import HEADS
from mmdet.models.dense_heads import RetinaHead

import mmdet_hpu  # noqa: F401  (registers the HPU modules)
from mmdet_hpu.analysis import stock
from mmdet_hpu.analysis.shipped_configs import resolve_config
from mmdet_hpu.errors import ConfigError


class _Mixin:
    """Stands in for an HPU mixin placed before the stock class in the MRO."""

    def __init__(self, *args, bucket_size=8, **kwargs):
        super().__init__(*args, **kwargs)


@pytest.fixture(scope='module')
def hpu_retina_head():
    """A throw-away HPU head registered for these tests (an HPU mixin + RetinaHead)."""

    class HPUAuditTestRetinaHead(_Mixin, RetinaHead):
        def __init__(self, *args, max_num_gt=64, **kwargs):
            super().__init__(*args, **kwargs)

    HPUAuditTestRetinaHead.__module__ = 'mmdet_hpu.models.dense_heads.audit_test'
    HEADS.register_module(module=HPUAuditTestRetinaHead, force=True)
    yield HPUAuditTestRetinaHead
    HEADS._module_dict.pop('HPUAuditTestRetinaHead')


def _retina_cfg():
    return mmcv.Config.fromfile(resolve_config('mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'))


def test_stock_parent_is_found_through_the_mro(hpu_retina_head):
    registry, cls = stock.find_type('HPUAuditTestRetinaHead')
    assert cls is hpu_retina_head
    assert stock.stock_parent(cls, registry) is RetinaHead
    # Its own and its mixin's extra arguments; RetinaHead's (and AnchorHead's) are kept.
    assert stock.hpu_only_args(cls, RetinaHead) == {'max_num_gt', 'bucket_size'}


def test_stock_model_cfg_replaces_nested_hpu_types(hpu_retina_head):
    model = _retina_cfg().model
    model.bbox_head.type = 'HPUAuditTestRetinaHead'
    model.bbox_head.max_num_gt = 32
    converted = stock.stock_model_cfg(model)
    assert converted.bbox_head.type == 'RetinaHead'
    assert 'max_num_gt' not in converted.bbox_head
    assert converted.bbox_head.anchor_generator == model.bbox_head.anchor_generator
    assert converted.train_cfg.assigner.type == 'MaxIoUAssigner'
    assert stock.hpu_replacements(model) == {'HPUAuditTestRetinaHead': 'RetinaHead'}
    assert stock.hpu_replacements(_retina_cfg().model) == {}


def test_declared_stock_type_wins(hpu_retina_head, monkeypatch):
    monkeypatch.setattr(hpu_retina_head, 'STOCK_TYPE', 'AnchorHead', raising=False)
    monkeypatch.setattr(hpu_retina_head, 'HPU_ONLY_ARGS', ('stacked_convs',), raising=False)
    registry, cls = stock.find_type('HPUAuditTestRetinaHead')
    parent = stock.stock_parent(cls, registry)
    assert parent.__name__ == 'AnchorHead'
    assert 'stacked_convs' in stock.hpu_only_args(cls, parent)


def test_an_hpu_class_without_stock_parent_is_refused():
    class HPUOrphan(mmcv.runner.BaseModule):
        pass

    HPUOrphan.__module__ = 'mmdet_hpu.models.audit_test'
    with pytest.raises(ConfigError, match='--skip-stock'):
        stock.stock_parent(HPUOrphan, HEADS)


def test_the_project_yolov3_maps_to_stock_yolov3():
    cfg = mmcv.Config.fromfile('configs/yolov3/yolov3_d53_320_273e_coco.py')
    assert stock.hpu_replacements(cfg.model) == {'HPUYOLOV3': 'YOLOV3',
                                                 'HPUYOLOV3Head': 'YOLOV3Head'}
    head = stock.stock_model_cfg(cfg.model).bbox_head
    assert 'max_num_gt' not in head and 'target_mode' not in head


@pytest.mark.parametrize('name', ['retinanet/retinanet_r18_fpn_1x_coco.py',
                                  'ssd/ssd300_coco.py',
                                  'fcos/fcos_r50_caffe_fpn_gn-head_1x_coco.py',
                                  'faster_rcnn/faster_rcnn_r50_fpn_1x_coco.py'])
def test_pretrained_weights_are_stripped(name):
    model = mmcv.Config.fromfile(resolve_config('mmdet::' + name)).model
    assert stock.downloads_in(model)  # each of these would download ImageNet weights
    assert stock.downloads_in(stock.strip_pretrained(model)) == []


def test_strip_pretrained_handles_keys_and_lists():
    node = dict(pretrained='torchvision://resnet50',
                backbone=dict(init_cfg=[dict(type='Kaiming'),
                                        dict(type='Pretrained', checkpoint='x')]),
                neck=dict(init_cfg=dict(type='Pretrained', checkpoint='y'), depth=3))
    assert stock.downloads_in(node) == ['model.pretrained', 'model.backbone.init_cfg[1]',
                                        'model.neck.init_cfg']
    assert stock.strip_pretrained(node) == dict(backbone=dict(init_cfg=[dict(type='Kaiming')]),
                                                neck=dict(depth=3))
