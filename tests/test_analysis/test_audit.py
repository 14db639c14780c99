"""The audit on the real YOLOv3 configs: the HPU side is static, the stock side is not."""
import json
import os
import os.path as osp
import re
import subprocess
import sys

import mmcv
import pytest
import torch
from mmdet.models.dense_heads import YOLOV3Head
from mmdet.models.detectors import YOLOV3

import mmdet_hpu  # noqa: F401  (registers the HPU modules)
from mmdet_hpu.analysis import audit, synthetic
from mmdet_hpu.models.dense_heads import HPUYOLOV3Head
from mmdet_hpu.models.detectors import HPUYOLOV3

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
D53_320 = osp.join(REPO, 'configs', 'yolov3', 'yolov3_d53_320_273e_coco.py')
D53_416 = osp.join(REPO, 'configs', 'yolov3', 'yolov3_d53_mstrain-416_273e_coco.py')
D53_608 = osp.join(REPO, 'configs', 'yolov3', 'yolov3_d53_mstrain-608_273e_coco.py')
DEMO = osp.join(REPO, 'configs', 'demo', 'yolov3_mobilenetv2-half_128_shapes.py')
BIN = osp.dirname(sys.executable)
# Darknet-53 is heavy on a CPU: a small batch at 64 px, same detector and head as configured.
SMALL = dict(batch_size=2, test_batch_size=2, img_size=64)


def _audit(path, **settings):
    cfg = mmcv.Config.fromfile(path)
    return audit.run_audit(cfg, audit.AuditSettings(**settings), config_path=path)


@pytest.fixture(scope='module')
def d53_report():
    torch.manual_seed(0)
    return _audit(D53_320, **SMALL)


def _phase_counts(report, side, phase, key='counts'):
    return report['sides'][side]['phases'][phase][key]


def test_audit_runs_the_configured_detector_and_a_stock_copy(d53_report):
    sides = d53_report['sides']
    assert (sides['configured']['detector'], sides['configured']['head']) == \
        ('HPUYOLOV3', 'HPUYOLOV3Head')
    assert (sides['stock']['detector'], sides['stock']['head']) == ('YOLOV3', 'YOLOV3Head')
    assert d53_report['stock'] == 'audited'
    assert d53_report['hpu_types'] == {'HPUYOLOV3': 'YOLOV3', 'HPUYOLOV3Head': 'YOLOV3Head'}
    assert d53_report['sizes']['gt_counts'] == [3, 12]
    for side in audit.SIDES:
        assert list(audit.phases_of(d53_report, side)) == \
            list(audit.TRAIN_PHASES + audit.INFER_PHASES)
        for phase in audit.phases_of(d53_report, side):
            assert _phase_counts(d53_report, side, phase, 'num_ops') > 0, (side, phase)


@pytest.mark.parametrize('phase', audit.TRAIN_PHASES)
def test_d53_320_device_mode_training_phases_are_static(d53_report, phase):
    counts = _phase_counts(d53_report, 'configured', phase)
    assert counts == dict(sync=0, dynamic=0, h2d=0, d2h=0), phase
    assert d53_report['sides']['configured']['phases'][phase]['num_ops'] > 0


def test_d53_320_device_mode_inference_is_static_before_the_single_nms(d53_report):
    post = d53_report['sides']['configured']['phases'][audit.POST]
    assert post['counts_pre_nms']['sync'] == 0
    assert post['counts_pre_nms']['dynamic'] == 0
    assert post['nms_calls'] == 1
    assert post['counts_nms']['dynamic'] == 1
    assert _phase_counts(d53_report, 'configured', 'inference forward') == \
        dict(sync=0, dynamic=0, h2d=0, d2h=0)


def test_d53_320_device_mode_has_no_graph_break_before_nms(d53_report):
    found = audit.summary(d53_report, 'configured')
    assert found['loss_breaks'] == 0
    assert found['pre_nms_breaks'] == 0
    explain = d53_report['sides']['configured']['explain']
    assert explain['loss']['graph_count'] >= 1
    assert explain['post-processing up to NMS']['graph_count'] >= 1


def test_d53_320_stock_side_has_syncs_dynamic_ops_and_graph_breaks(d53_report):
    stock = audit.summary(d53_report, 'stock')
    # GridAssigner syncs once per GT box, loss_single 3 times, _parse_losses 5 times.
    assert stock['train_sync'] >= sum(d53_report['sizes']['gt_counts']) + 3 + 5
    assert stock['train_dynamic'] > 0
    assert stock['pre_nms_dynamic'] > 0
    assert stock['loss_breaks'] > 0
    assert stock['pre_nms_breaks'] is None  # stock has no pre-NMS entry point
    assert d53_report['sides']['stock']['explain']['get_bboxes']['graph_break_count'] > 0


def test_d53_320_optimizer_phase_includes_grad_clipping(d53_report):
    # Stock OptimizerHook logs float(grad_norm) every iteration; HPUOptimizerHook does not.
    assert _phase_counts(d53_report, 'stock', 'optimizer')['sync'] == 1
    assert _phase_counts(d53_report, 'configured', 'optimizer')['sync'] == 0


def test_table_and_json(d53_report):
    table = audit.format_table(d53_report)
    for label in ('targets+loss', 'optimizer (clip + step)', 'post-proc. before NMS',
                  'post-proc. NMS', 'torch._dynamo.explain', 'HPUYOLOV3Head', 'YOLOV3Head',
                  'grid_assigner.py'):
        assert label in table
    assert json.loads(json.dumps(d53_report))['sides'].keys() == {'configured', 'stock'}


def test_json_lists_every_flagged_op_with_its_file_and_line(d53_report):
    for side in audit.SIDES:
        for phase in audit.phases_of(d53_report, side):
            data = d53_report['sides'][side]['phases'][phase]
            for kind, count in data['counts'].items():
                listed = [o for o in data['offenders'] if o['kind'] == kind]
                assert sum(o['count'] for o in listed) == count, (side, phase, kind)
                assert all(re.search(r'\.py:\d+ \(', o['where']) for o in listed)


@pytest.mark.parametrize('path', [D53_416, D53_608])
def test_other_yolov3_configs_device_mode_is_static(path):
    report = _audit(path, explain=False, **SMALL)
    found = audit.summary(report, 'configured')
    # The one dynamic op of inference is the single NMS call.
    assert found == dict(train_sync=0, train_dynamic=0, train_d2h=0, pre_nms_sync=0,
                         pre_nms_dynamic=0, nms_calls=1, infer_sync=0, infer_dynamic=1)
    assert audit.summary(report, 'stock')['train_sync'] > 0


# ------------------------------------------------------------------------------ inputs
def test_stock_copy_is_stock_mmdet_with_the_same_weights():
    cfg = mmcv.Config.fromfile(DEMO)
    configured, stock = synthetic.build_model_pair(cfg)
    assert type(configured) is HPUYOLOV3 and type(configured.bbox_head) is HPUYOLOV3Head
    assert type(stock) is YOLOV3 and type(stock.bbox_head) is YOLOV3Head
    reference = configured.state_dict()
    for name, value in stock.state_dict().items():
        assert torch.equal(value, reference[name]), name
    assert 'max_num_gt' not in synthetic.stock_model_cfg(cfg.model).bbox_head


def test_train_batches_follow_the_config_pipeline():
    cfg = mmcv.Config.fromfile(D53_320)
    counts = synthetic.gt_counts(3, None, synthetic.max_gt_of(cfg))
    hpu = synthetic.make_train_batch(cfg, False, 3, (64, 64), counts)
    stock = synthetic.make_train_batch(cfg, True, 3, (64, 64), counts)
    assert hpu['img'].shape == stock['img'].shape == (3, 3, 64, 64)
    assert torch.equal(hpu['img'], stock['img'])
    # HPUPadGT (max_num_gt=128) + DefaultFormatBundle + collate, as in training: each image
    # padded to its power-of-two bucket, the mask collated to the largest one.
    assert hpu['gt_valid'].shape == (3, 1, 16) and hpu['gt_valid'].dtype == torch.bool
    assert hpu['gt_valid'].sum((1, 2)).tolist() == counts == [3, 12, 1]
    assert [b.shape for b in hpu['gt_bboxes']] == [(8, 4), (16, 4), (8, 4)]
    assert 'gt_valid' not in stock
    assert [len(b) for b in stock['gt_bboxes']] == counts
    for padded, boxes in zip(hpu['gt_bboxes'], stock['gt_bboxes']):
        assert torch.equal(padded[:len(boxes)], boxes)


def test_sizes_come_from_the_config():
    cfg = mmcv.Config.fromfile(D53_416)
    assert synthetic.config_sizes(cfg) == ((416, 416), (416, 416))
    assert synthetic.config_sizes(cfg, 96) == ((96, 96), (96, 96))
    assert synthetic.config_batch_sizes(mmcv.Config.fromfile(DEMO)) == (8, 16)
    assert synthetic.max_gt_of(mmcv.Config.fromfile(DEMO)) == 16
    assert synthetic.gt_counts(9, None, 16) == [3, 12, 1, 7, 16, 2, 8, 5, 3]
    assert sum(synthetic.gt_counts(8, None, 128)) == 57


# ------------------------------------------------------------------------------ console
def _run(args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_console_script_help(tmp_path):
    for cmd in ([osp.join(BIN, 'mmdet-hpu-audit')],
                [sys.executable, osp.join(REPO, 'tools', 'audit.py')]):
        out = _run(cmd + ['--help'], cwd=str(tmp_path))
        assert out.returncode == 0, out.stderr
        assert '--num-gt' in out.stdout and '--json' in out.stdout


def test_console_script_small_run_on_the_demo_config(tmp_path):
    out_json = tmp_path / 'audit.json'
    out = _run([osp.join(BIN, 'mmdet-hpu-audit'), DEMO, '--batch-size', '2',
                '--test-batch-size', '2', '--img-size', '64', '--no-explain',
                '--compile-batches', '0', '--json',
                str(out_json)], cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'post-proc. before NMS' in out.stdout
    report = json.loads(out_json.read_text())
    assert audit.summary(report, 'configured') == dict(
        train_sync=0, train_dynamic=0, train_d2h=0, pre_nms_sync=0, pre_nms_dynamic=0,
        nms_calls=1, infer_sync=0, infer_dynamic=1)
    assert audit.summary(report, 'stock')['train_sync'] > 0


def test_console_script_reports_a_missing_config(tmp_path):
    out = _run([osp.join(BIN, 'mmdet-hpu-audit'), 'nope.py'], cwd=str(tmp_path))
    assert out.returncode == 2
    assert 'config file not found' in out.stderr
