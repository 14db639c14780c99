"""check_num_classes: a checkpoint trained for another number of classes."""
import os.path as osp

import pytest

from mmdet_hpu.validation import ValidationError, check_num_classes, checkpoint_num_classes


@pytest.fixture(scope='module')
def models():
    import mmcv
    from mmdet.models import build_detector

    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    cfg = mmcv.Config.fromfile(osp.join(repo, 'configs', 'demo',
                                        'yolov3_mobilenetv2-half_128_shapes.py'))
    three = build_detector(cfg.model)
    cfg.model.bbox_head.num_classes = 5
    five = build_detector(cfg.model)
    return three, five


def _ckpt(model, classes=None):
    return dict(state_dict=model.state_dict(), meta=dict(CLASSES=classes) if classes else {})


def test_same_model_passes(models):
    check_num_classes(_ckpt(models[0]), models[0])


@pytest.mark.parametrize('source, fix', [('resume', 'load_from=ck.pth'),
                                         ('test', 'model.bbox_head.num_classes=5')])
def test_class_count_from_meta(models, source, fix):
    three, five = models
    with pytest.raises(ValidationError) as err:
        check_num_classes(_ckpt(five, tuple('abcde')), three, 'ck.pth', source)
    message = str(err.value)
    assert "checkpoint 'ck.pth' has 5 classes, the config has 3" in message and fix in message


def test_class_count_inferred_from_shapes(models):
    three, five = models
    assert checkpoint_num_classes(_ckpt(five), three) == 5
    assert checkpoint_num_classes(_ckpt(three), five) == 3


def test_other_architecture(models):
    three, _ = models
    state = dict(three.state_dict())
    key = next(k for k in state if k.startswith('backbone') and k.endswith('weight'))
    state[key] = state[key][:1]
    with pytest.raises(ValidationError, match='does not match the model of the config'):
        check_num_classes(dict(state_dict=state), three)
