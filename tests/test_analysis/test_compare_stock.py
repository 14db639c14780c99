"""mmdet_hpu.analysis.compare_stock: the stock side of a config, and reading the results."""
import mmcv
import pytest

from mmdet_hpu.analysis.compare_stock import (
    SideResult,
    format_comparison,
    parse_bbox_map,
    stock_config,
    stock_pipeline,
)

PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='Pad', size=(64, 64)),
    dict(type='HPUPadGT', max_num_gt=8),
    dict(type='DefaultFormatBundle'),
    dict(type='Collect', keys=['img', 'gt_bboxes', 'gt_labels', 'gt_valid']),
]


def test_stock_pipeline_drops_gt_padding_only():
    steps, changes = stock_pipeline(PIPELINE)
    assert [s['type'] for s in steps] == ['LoadImageFromFile', 'Pad', 'DefaultFormatBundle',
                                          'Collect']
    assert steps[-1]['keys'] == ['img', 'gt_bboxes', 'gt_labels']
    assert changes == ['dropped HPUPadGT(max_num_gt=8)', 'Collect keys without gt_valid']
    assert PIPELINE[-1]['keys'][-1] == 'gt_valid'  # the input is not changed
    assert stock_pipeline(steps) == (steps, [])


def test_stock_config_reaches_wrapped_datasets_and_keeps_the_rest():
    cfg = mmcv.Config(dict(
        model=dict(type='HPURetinaNet', backbone=dict(type='ResNet', depth=18),
                   bbox_head=dict(type='HPURetinaHead', num_classes=3, in_channels=8,
                                  max_num_gt=8)),
        train_pipeline=PIPELINE,
        data=dict(train=dict(type='RepeatDataset', times=2,
                             dataset=dict(type='CocoDataset', pipeline=PIPELINE)),
                  test=dict(type='CocoDataset', pipeline=PIPELINE[:2])),
        optimizer=dict(type='SGD', lr=0.01)))
    stock, changes = stock_config(cfg)
    assert stock.model.type == 'RetinaNet' and stock.model.bbox_head.type == 'RetinaHead'
    assert 'max_num_gt' not in stock.model.bbox_head
    assert [s.type for s in stock.data.train.dataset.pipeline] == \
        ['LoadImageFromFile', 'Pad', 'DefaultFormatBundle', 'Collect']
    assert 'HPUPadGT' not in [s.type for s in stock.train_pipeline]
    assert stock.data.test == cfg.data.test and stock.optimizer == cfg.optimizer
    assert len(changes) == 2
    assert cfg.model.type == 'HPURetinaNet'  # the input config is not changed


def test_parse_bbox_map():
    output = 'Evaluating bbox...\nbbox_mAP: 0.512\nbbox_mAP_50: 0.9\nbbox_mAP_copypaste: x\n'
    assert parse_bbox_map(output) == pytest.approx(0.512)
    # mmdet prints this and reports no metric when nothing was detected: mAP 0.
    assert parse_bbox_map('The testing results of the whole dataset is empty.\n') == 0.0
    with pytest.raises(ValueError, match='no "bbox_mAP'):
        parse_bbox_map('Traceback ...')


def test_format_comparison_gives_both_maps_and_the_difference():
    text = format_comparison(SideResult(0.61, 100.0, 5.0), SideResult(0.6, 90.0, 6.0),
                             ['dropped HPUPadGT(max_num_gt=16)'])
    lines = text.splitlines()
    assert lines[1].split() == ['HPU', '0.610', '100.0', '5.0']
    assert lines[2].split() == ['stock', '0.600', '90.0', '6.0']
    assert lines[3] == 'difference (HPU - stock): +0.010'
    assert 'dropped HPUPadGT' in lines[4]


@pytest.mark.slow
def test_compare_stock_tool_trains_and_evaluates_both_sides(tmp_path):
    """tools/compare_stock.py end to end: one iteration per side on tiny shapes data."""
    import os
    import os.path as osp
    import subprocess
    import sys

    from mmdet_hpu.datasets.demo_data import generate_demo_dataset

    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    data = str(tmp_path / 'data')
    generate_demo_dataset(data, num_train=2, num_val=2, img_size=128, seed=1)
    work_dir = str(tmp_path / 'work')
    proc = subprocess.run(
        [sys.executable, osp.join(repo, 'tools', 'compare_stock.py'),
         osp.join(repo, 'configs', 'demo', 'fcos_mobilenetv2-half_128_shapes.py'),
         '--work-dir', work_dir, '--train-args', '--epochs 1 --steps 1 --batch-size 2',
         '--test-args', '--eval-batch-size 2', '--cfg-options', f'data_root={data}/'],
        cwd=repo, env=dict(os.environ, OMP_NUM_THREADS='1'), capture_output=True, text=True,
        timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'difference (HPU - stock): ' in proc.stdout
    assert 'stock side pipeline changes: dropped HPUPadGT(max_num_gt=16)' in proc.stdout
    for side in ('hpu', 'stock'):
        assert osp.isfile(osp.join(work_dir, side, 'latest.pth'))
    dumped = mmcv.Config.fromfile(osp.join(work_dir, 'stock',
                                           'fcos_mobilenetv2-half_128_shapes_stock.py'))
    assert dumped.model.bbox_head.type == 'FCOSHead'
    with open(osp.join(work_dir, 'stock', 'train.out')) as f:
        assert 'FCOSHead' in f.read()
