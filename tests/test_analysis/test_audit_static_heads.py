"""The audit on this project's RetinaNet / SSD / FCOS / ATSS configs: what issue 11 promises.

Per config: 0 host syncs, 0 dynamic-shape ops and 0 device-to-host copies in the training
iteration (``train_step``, log buffer, optimizer hook; a non-logging iteration), 0 of either
before the single NMS call at inference, and 0 dynamo graph breaks in the loss and in
post-processing up to NMS. The fast tests audit the configs with a scaled-down model
(``tests/tiny_detectors.py``); the slow ones the real COCO configs at a small input size.
"""
import mmcv
import pytest
import torch
from tiny_detectors import CONFIGS, IMG_SIZES, config_path, tiny_config, tiny_detector

from mmdet_hpu.analysis import audit
from mmdet_hpu.analysis.phases import SINGLE_STAGE, Call

STATIC = dict(train_sync=0, train_dynamic=0, train_d2h=0, pre_nms_sync=0, pre_nms_dynamic=0,
              nms_calls=1, infer_sync=0, infer_dynamic=1)
#: Input size of the real-config audits: SSD300's extra levels need about 300 px.
COCO_SIZES = dict(retinanet=64, ssd=320, fcos=64, fcos_giou=64, atss=64)


def _settings(**kwargs):
    return audit.AuditSettings(batch_size=2, test_batch_size=2, skip_stock=True, **kwargs)


@pytest.mark.parametrize('name', list(CONFIGS))
def test_training_iteration_and_inference_before_nms_are_static(name):
    report = audit.run_audit(tiny_config(name), _settings(img_size=IMG_SIZES[name],
                                                          explain=False), CONFIGS[name])
    assert audit.summary(report) == STATIC
    post = report['sides']['configured']['phases'][audit.POST]
    # The one dynamic op of inference is the fixed-shape NMS op itself.
    assert post['counts_nms']['dynamic'] == 1
    for phase in audit.TRAIN_PHASES:
        assert report['sides']['configured']['phases'][phase]['num_ops'] > 0, phase


@pytest.mark.slow
@pytest.mark.parametrize('name', list(CONFIGS))
def test_coco_config_is_static_and_has_no_graph_break_before_nms(name):
    path = config_path(name)
    report = audit.run_audit(mmcv.Config.fromfile(path),
                             _settings(img_size=COCO_SIZES[name]), path)
    assert audit.summary(report) == dict(STATIC, loss_breaks=0, pre_nms_breaks=0)
    explain = report['sides']['configured']['explain']
    assert explain['loss']['graph_count'] >= 1
    assert explain['post-processing up to NMS']['source'] == 'get_bboxes_pre_nms'
    assert explain['post-processing up to NMS']['graph_count'] >= 1


# ------------------------------------------------------------------ pre-NMS entry points
def _get_bboxes_call(model, size, num_imgs=2):
    """The ``get_bboxes`` call ``simple_test`` makes, on a random batch."""
    img = torch.randn(num_imgs, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        outs = model.bbox_head(model.extract_feat(img))
    shape = (size, size, 3)
    metas = [dict(img_shape=shape, pad_shape=shape, ori_shape=shape,
                  scale_factor=torch.ones(4).numpy()) for _ in range(num_imgs)]
    return Call(model.bbox_head.get_bboxes, tuple(outs), dict(img_metas=metas, rescale=True))


@pytest.mark.parametrize('name', ['retinanet', 'fcos', 'atss'])
def test_pre_nms_entry_of_an_hpu_head_is_its_get_bboxes_pre_nms(name):
    model = tiny_detector(name).eval()
    call = _get_bboxes_call(model, IMG_SIZES[name])
    before = [t.clone() for level in call.args for t in level]
    result = audit._pre_nms_explain(model, SINGLE_STAGE, dict(get_bboxes=call))
    assert result['source'] == 'get_bboxes_pre_nms'
    assert result['graph_count'] >= 1 and result['graph_break_count'] == 0, result
    # The replay that found the arguments left the captured call as it was.
    after = [t for level in call.args for t in level]
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert 'get_bboxes_pre_nms' not in vars(model.bbox_head)


@pytest.mark.parametrize('name', ['retinanet', 'fcos'])
def test_pre_nms_entry_of_a_stock_head_stops_before_its_nms(name, monkeypatch):
    from mmdet.models.dense_heads import base_dense_head

    from mmdet_hpu.analysis.synthetic import build_model_pair
    _, stock = build_model_pair(tiny_config(name))
    stock.eval()
    call = _get_bboxes_call(stock, IMG_SIZES[name])
    nms_calls = []
    real_nms = base_dense_head.batched_nms
    monkeypatch.setattr(base_dense_head, 'batched_nms',
                        lambda *args, **kw: nms_calls.append(1) or real_nms(*args, **kw))
    result = audit._pre_nms_explain(stock, SINGLE_STAGE, dict(get_bboxes=call))
    assert result['source'] == 'get_bboxes(with_nms=False)'
    assert result['graph_break_count'] > 0  # filter_scores_and_topk's nonzero, per image
    assert nms_calls == []


def test_stock_yolov3_head_has_no_pre_nms_entry():
    # Stock YOLOV3Head.get_bboxes runs multiclass_nms even with with_nms=False.
    from mmdet.models.dense_heads import YOLOV3Head

    head = YOLOV3Head(num_classes=2, in_channels=[8, 8, 8], out_channels=[8, 8, 8])
    call = Call(head.get_bboxes, ([], ), dict(img_metas=[]))
    assert all(entry(head, call) is None for entry in audit.PRE_NMS_ENTRIES)
