"""The audit on mmdet's own configs: stock single-stage and two-stage detectors, offline."""
import os
import os.path as osp
import socket
import subprocess
import sys

import mmcv
import pytest

from mmdet_hpu.analysis import audit, stock, synthetic
from mmdet_hpu.analysis.phases import TWO_STAGE
from mmdet_hpu.analysis.shipped_configs import resolve_config
from mmdet_hpu.errors import ConfigError

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(REPO, 'configs', 'demo', 'yolov3_mobilenetv2-half_128_shapes.py')
RETINA_R18 = 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'
FASTER_R50 = 'mmdet::faster_rcnn/faster_rcnn_r50_fpn_1x_coco.py'
BIN = osp.dirname(sys.executable)
TINY = dict(batch_size=2, test_batch_size=1, img_size=64, explain=False)


def _config(spec):
    return mmcv.Config.fromfile(resolve_config(spec))


def _faster_rcnn_r18():
    """mmdet's Faster R-CNN recipe on a ResNet-18 (as mmdet's retinanet_r18 config does)."""
    cfg = _config(FASTER_R50)
    cfg.model.backbone.depth = 18
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    return cfg


@pytest.fixture(scope='module')
def connects():
    """Every socket connection attempted while the module's audits run (refused)."""
    attempts = []

    def refuse(self, address, *args):
        attempts.append(address)
        raise OSError('network access in an audit test')

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, 'connect', refuse)
        patch.setattr(socket.socket, 'connect_ex', refuse)
        yield attempts


@pytest.fixture(scope='module')
def retina_report(connects):
    return audit.run_audit(_config(RETINA_R18), audit.AuditSettings(**TINY), RETINA_R18)


def test_stock_retinanet_is_audited_as_is(retina_report):
    assert retina_report['hpu_types'] == {}
    assert retina_report['stock'] == 'same as configured'
    assert list(retina_report['sides']) == ['configured']
    side = retina_report['sides']['configured']
    assert (side['detector'], side['head'], side['kind']) == \
        ('RetinaNet', 'RetinaHead', 'single-stage')
    assert audit.summary(retina_report, 'stock') == audit.summary(retina_report)
    assert 'audited as-is' in audit.format_table(retina_report)


def test_stock_retinanet_training_step_syncs_and_has_dynamic_shapes(retina_report):
    found = audit.summary(retina_report)
    assert found['train_sync'] > 0 and found['train_dynamic'] > 0
    assert found['pre_nms_dynamic'] > 0 and found['infer_dynamic'] > 0
    phases = retina_report['sides']['configured']['phases']
    assert phases['forward']['counts']['sync'] == 0  # the network itself is static
    where = [o['where'] for o in phases['targets+loss']['offenders']]
    assert any(w.startswith('mmdet/core/bbox/assigners/max_iou_assigner.py:') for w in where)
    assert any(w.startswith('mmdet/models/detectors/base.py:') for w in where)  # _parse_losses


def test_no_network_access_and_no_pretrained_weights(retina_report, connects):
    assert connects == []
    cfg = _config(RETINA_R18)
    assert stock.downloads_in(cfg.model) == ['model.backbone.init_cfg']
    assert stock.downloads_in(synthetic.offline_model_cfg(cfg.model)) == []
    configured, _ = synthetic.build_model_pair(cfg)
    for name, module in configured.named_modules():
        assert stock.downloads_in(getattr(module, 'init_cfg', None)) == [], name


def test_skip_stock_audits_the_configured_side_only():
    cfg = mmcv.Config.fromfile(DEMO)
    report = audit.run_audit(cfg, audit.AuditSettings(skip_stock=True, **TINY), DEMO)
    assert report['stock'] == 'skipped' and list(report['sides']) == ['configured']
    assert report['hpu_types'] == {'HPUYOLOV3': 'YOLOV3', 'HPUYOLOV3Head': 'YOLOV3Head'}
    assert 'not audited (--skip-stock)' in audit.format_table(report)
    with pytest.raises(KeyError):
        audit.summary(report, 'stock')


@pytest.mark.slow
def test_two_stage_faster_rcnn_runs_with_rpn_proposals_as_phases(connects):
    report = audit.run_audit(_faster_rcnn_r18(), audit.AuditSettings(
        batch_size=2, test_batch_size=1, img_size=64), FASTER_R50)
    side = report['sides']['configured']
    assert (side['kind'], side['head']) == ('two-stage', 'RPNHead + Shared2FCBBoxHead')
    assert audit.phases_of(report, 'configured') == \
        list(TWO_STAGE.train_phases + TWO_STAGE.infer_phases)
    phases = side['phases']
    assert phases['proposals']['nms_calls'] == 2  # RPN NMS, one per training image
    assert phases['inference proposals']['nms_calls'] == 1
    assert phases['forward']['num_ops'] > 0 and phases['backward']['num_ops'] > 0
    found = audit.summary(report)
    assert found['train_sync'] > 0 and found['train_dynamic'] > 0
    roi_sampling = [o['where'] for o in phases['targets+loss']['offenders']]
    assert any('random_sampler.py' in w or 'max_iou_assigner.py' in w for w in roi_sampling)
    explain = side['explain']
    assert set(explain) == {'RPN loss', 'RoI loss', 'RPN get_bboxes', 'RoI get_bboxes',
                            'post-processing up to NMS'}
    for key in ('RPN loss', 'RoI loss', 'RPN get_bboxes', 'RoI get_bboxes'):
        assert not explain[key].get('error'), (key, explain[key])
        assert explain[key]['graph_break_count'] > 0, key
    assert found['loss_breaks'] == explain['RPN loss']['graph_break_count'] + \
        explain['RoI loss']['graph_break_count']
    assert 'proposals before NMS' in audit.format_table(report)
    assert connects == []


@pytest.mark.slow
def test_console_script_on_a_shipped_config(tmp_path):
    out_json = tmp_path / 'audit.json'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    out = subprocess.run([osp.join(BIN, 'mmdet-hpu-audit'), RETINA_R18, '--img-size', '64',
                          '--batch-size', '1', '--test-batch-size', '1', '--no-explain',
                          '--json', str(out_json)], cwd=str(tmp_path), env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'RetinaNet + RetinaHead' in out.stdout
    report = mmcv.load(str(out_json))
    assert report['config'] == RETINA_R18 and report['sizes']['train_hw'] == [64, 64]
    assert audit.summary(report)['train_sync'] > 0


def test_config_sizes_of_shipped_configs():
    # Resize (1333, 800) padded to a multiple of 32; SSD's pipeline sits in a RepeatDataset.
    assert synthetic.config_sizes(_config(RETINA_R18)) == ((800, 1344), (800, 1344))
    ssd = _config('mmdet::ssd/ssd300_coco.py')
    assert synthetic.config_sizes(ssd) == ((300, 300), (300, 300))
    assert synthetic.config_batch_sizes(ssd) == (8, 16)
    assert synthetic.num_classes_of(_config(FASTER_R50)) == 80


def test_mask_configs_are_refused_with_a_clear_message():
    cfg = _config('mmdet::mask_rcnn/mask_rcnn_r50_fpn_1x_coco.py')
    with pytest.raises(ConfigError, match=r"collects \['gt_masks'\].*box-only"):
        synthetic.train_tail(cfg, stock=False)
