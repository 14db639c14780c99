"""check_config_keys: typos in keys and registry types, with the closest name."""
import pytest

from mmdet_hpu.validation import ValidationError, accepted_kwargs, check_config_keys


def _message(cfg):
    with pytest.raises(ValidationError) as err:
        check_config_keys(cfg)
    return str(err.value)


def test_demo_config_passes(demo_cfg, pristine_data):
    check_config_keys(demo_cfg(pristine_data))


def test_helper_variables_are_allowed(demo_cfg, pristine_data):
    cfg = demo_cfg(pristine_data, max_epochs=3, norm_cfg=dict(type='BN'), img_size=64)
    check_config_keys(cfg)


@pytest.mark.parametrize('options, expected', [
    ({'optimzer': dict(lr=0.1)}, "unknown top-level key 'optimzer' (mmdet ignores it, so it "
                                 "has no effect). Did you mean 'optimizer'?"),
    ({'chekpoint_config': dict(interval=1)}, "Did you mean 'checkpoint_config'?"),
    ({'runner.max_epoch': 3}, "unknown key runner.max_epoch for HPUEpochBasedRunner. Did you "
                              "mean 'max_epochs'?"),
    ({'optimizer.weigth_decay': 0.1}, "unknown key optimizer.weigth_decay for AdamW. Did you "
                                      "mean 'weight_decay'?"),
    ({'model.bbox_head.type': 'YOLOV3Hed'}, "unknown type 'YOLOV3Hed' at model.bbox_head.type"),
    ({'data.train.type': 'CocoDatset'}, "Did you mean 'CocoDataset'"),
    ({'optimizer.type': 'AdamWW'}, "Did you mean 'AdamW'"),
    ({'runner.type': 'HPUEpochBasedRuner'}, "Did you mean 'HPUEpochBasedRunner'"),
    ({'lr_config.policy': 'CosineAnealing'}, "unknown lr_config.policy 'CosineAnealing'. Did "
                                             "you mean 'CosineAnnealing'"),
])
def test_typos_are_reported_with_the_closest_name(demo_cfg, pristine_data, options, expected):
    message = _message(demo_cfg(pristine_data, **options))
    assert expected in message and '--cfg-options' in message


def test_every_problem_is_listed_at_once(demo_cfg, pristine_data):
    cfg = demo_cfg(pristine_data, optimzer=dict(lr=1), **{'runner.max_epoch': 3,
                                                          'model.bbox_head.type': 'YOLOV3Hed'})
    message = _message(cfg)
    assert '3 mistake(s)' in message and "'YOLOV3Head'" in message


def test_nms_dicts_are_not_registry_types(demo_cfg, pristine_data):
    check_config_keys(demo_cfg(pristine_data, **{'model.test_cfg.nms.type': 'soft_nms'}))


def test_accepted_kwargs_follows_kwargs_up_the_mro():
    from mmcv.runner import RUNNERS

    names = accepted_kwargs(RUNNERS.get('HPUEpochBasedRunner'))
    assert {'max_iters_per_epoch', 'max_epochs', 'work_dir'} <= names

    class Anything:
        def __init__(self, **kwargs):
            pass

    assert accepted_kwargs(Anything) is None


@pytest.mark.parametrize('name', [
    'albu_example/mask_rcnn_r50_fpn_albu_1x_coco.py',      # albumentations types
    'fpg/faster_rcnn_r50_fpg-chn128_crop640_50e_coco.py',  # lower-case op names
    'dcnv2/faster_rcnn_r50_fpn_mdpool_1x_coco.py',         # mmcv.ops roi layers
    'yolo/yolov3_d53_320_273e_coco.py',
])
def test_stock_mmdet_configs_pass(name):
    import os.path as osp

    import mmcv
    import mmdet

    path = osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', name)
    if not osp.isfile(path):
        pytest.skip('mmdet was installed without its configs')
    check_config_keys(mmcv.Config.fromfile(path))
