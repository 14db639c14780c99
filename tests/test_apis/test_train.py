"""mmdet_hpu.apis.train_detector / build_test_wrapper on a tiny on-disk dataset."""
import json
import os.path as osp
import sys

import mmcv
import numpy as np
import pytest
from mmcv import Config
from mmcv.runner import HOOKS, RUNNERS

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'test_parallel'))
from tiny_detector import build_tiny_detector, tiny_yolov3_cfg  # noqa: E402

from mmdet_hpu.apis import (  # noqa: E402
    _wiring,  # noqa: E402
    build_test_wrapper,
    single_device_test,
    train_detector,
)
from mmdet_hpu.parallel import HPUDataParallel  # noqa: E402

CLASSES = ('a', 'b', 'c')
NORM = dict(type='Normalize', mean=[0, 0, 0], std=[255, 255, 255], to_rgb=False)


def _write_dataset(root, num_images=4):
    rng = np.random.default_rng(0)
    infos = []
    for i in range(num_images):
        name = f'{i}.png'
        mmcv.imwrite(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), osp.join(root, name))
        xy = rng.uniform(0, 30, (2, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(8, 30, (2, 2))], 1).astype(np.float32)
        infos.append(dict(filename=name, width=64, height=64,
                          ann=dict(bboxes=boxes, labels=np.array([0, i % 3]))))
    mmcv.dump(infos, osp.join(root, 'ann.pkl'))


def _cfg(tmp_path, **overrides):
    _write_dataset(str(tmp_path))
    data = dict(type='CustomDataset', ann_file=str(tmp_path / 'ann.pkl'),
                img_prefix=str(tmp_path), classes=CLASSES)
    train_pipeline = [
        dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
        dict(type='Resize', img_scale=(64, 64), keep_ratio=True),
        dict(type='RandomFlip', flip_ratio=0.0), NORM,
        dict(type='Pad', size_divisor=32), dict(type='DefaultFormatBundle'),
        dict(type='Collect', keys=['img', 'gt_bboxes', 'gt_labels'])]
    test_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='MultiScaleFlipAug', img_scale=(64, 64), flip=False, transforms=[
            dict(type='Resize', keep_ratio=True), dict(type='RandomFlip'), NORM,
            dict(type='Pad', size_divisor=32),
            dict(type='ImageToTensor', keys=['img']), dict(type='Collect', keys=['img'])])]
    cfg = dict(
        model=tiny_yolov3_cfg(),
        data=dict(samples_per_gpu=2, workers_per_gpu=0,
                  train=dict(**data, pipeline=train_pipeline),
                  val=dict(**data, test_mode=True, pipeline=test_pipeline),
                  test=dict(**data, test_mode=True, pipeline=test_pipeline),
                  val_dataloader=dict(samples_per_gpu=2, workers_per_gpu=0)),
        optimizer=dict(type='HPUFusedSGD', lr=1e-3, momentum=0.9),
        optimizer_config=dict(grad_clip=dict(max_norm=35, norm_type=2)),
        lr_config=dict(policy='fixed'), runner=dict(type='EpochBasedRunner', max_epochs=1),
        checkpoint_config=dict(interval=1), evaluation=dict(interval=1, metric='mAP'),
        log_config=dict(interval=1, hooks=[dict(type='TextLoggerHook')]),
        workflow=[('train', 1)], work_dir=str(tmp_path / 'work'), gpu_ids=[0], seed=0,
        log_level='WARNING', resume_from=None, load_from=None, device='cpu',
        execution_mode=None, autocast=False, bucket_cap_mb=None)
    cfg.update(overrides)
    return Config(cfg)


def _train(cfg, validate=False):
    from mmdet.datasets import build_dataset

    model = build_tiny_detector()
    model.CLASSES = CLASSES
    return train_detector(model, build_dataset(cfg.data.train), cfg, validate=validate,
                          timestamp='test')


def test_train_and_validate_on_cpu(tmp_path):
    cfg = _cfg(tmp_path)
    runner = _train(cfg, validate=True)
    assert isinstance(runner.model, HPUDataParallel) and runner.model.device_kind == 'cpu'
    plugin_runner = RUNNERS.get('HPUEpochBasedRunner') is not None
    assert type(runner).__name__ == ('HPUEpochBasedRunner' if plugin_runner
                                     else 'EpochBasedRunner')
    assert runner.epoch == 1 and osp.isfile(osp.join(cfg.work_dir, 'epoch_1.pth'))
    with open(osp.join(cfg.work_dir, 'test.log.json')) as f:
        records = [json.loads(line) for line in f if line.strip()]
    assert any('mAP' in r for r in records)  # eval hook ran with val batch size 2


def test_train_on_fake_hpu_lazy_autocast(fake_habana, tmp_path):
    from mmdet_hpu import device

    device.set_execution_mode('lazy')
    runner = _train(_cfg(tmp_path, device='hpu', execution_mode='lazy', autocast=True,
                         keep_gt_on_host=True))
    assert runner.model.device_kind == 'hpu' and runner.model.autocast
    assert type(runner.optimizer).__name__ == 'FusedSGD'
    assert fake_habana.count('hpex.FusedSGD.step') == 2  # 4 images / batch 2
    if HOOKS.get('HPUOptimizerHook') is not None:
        assert fake_habana.count('core.mark_step') >= 2


def test_test_wrapper_and_single_device_test(tmp_path):
    from mmdet.datasets import build_dataloader, build_dataset

    cfg = _cfg(tmp_path)
    dataset = build_dataset(cfg.data.val, dict(test_mode=True))
    loader = build_dataloader(dataset, samples_per_gpu=1, workers_per_gpu=0, dist=False,
                              shuffle=False)
    model = build_test_wrapper(build_tiny_detector(), cfg, distributed=False)
    results = single_device_test(model, loader)
    assert len(results) == len(dataset) and len(results[0]) == len(CLASSES)


def test_runner_and_hook_wiring(monkeypatch):
    upgraded = RUNNERS.get('HPUEpochBasedRunner') is not None
    assert _wiring.runner_cfg(Config(dict()))['type'] == \
        ('HPUEpochBasedRunner' if upgraded else 'EpochBasedRunner')
    monkeypatch.setattr(_wiring, 'registered', lambda registry, name: False)
    cfg = Config(dict(runner=dict(type='IterBasedRunner', max_iters=3)))
    assert _wiring.runner_cfg(cfg) == dict(type='IterBasedRunner', max_iters=3)
    assert _wiring.runner_cfg(Config(dict(runner=dict(type='MyRunner'))))['type'] == 'MyRunner'
    assert _wiring.base_runner_type('HPUIterBasedRunner') == 'IterBasedRunner'


def test_optimizer_hook_choice(monkeypatch):
    from mmcv.runner import OptimizerHook

    from mmdet_hpu.apis import train as train_mod

    cfg = Config(dict(optimizer_config=dict(grad_clip=None)))
    monkeypatch.setattr(train_mod, 'registered', lambda registry, name: True)
    assert train_mod._optimizer_hook(cfg, 'cpu', False) == dict(type='HPUOptimizerHook',
                                                                grad_clip=None)
    monkeypatch.setattr(train_mod, 'registered', lambda registry, name: False)
    assert isinstance(train_mod._optimizer_hook(cfg, 'cpu', True), OptimizerHook)
    typed = Config(dict(optimizer_config=dict(type='GradientCumulativeOptimizerHook')))
    assert train_mod._optimizer_hook(typed, 'cpu', False)['type'] == \
        'GradientCumulativeOptimizerHook'
    with pytest.raises(NotImplementedError, match='bf16'):
        train_mod._optimizer_hook(Config(dict(fp16=dict(loss_scale=512.))), 'hpu', False)


def test_lazy_mode_on_cpu_is_refused():
    with pytest.raises(ValueError, match='only on HPU'):
        _wiring.cfg_device(Config(dict(device='cpu', execution_mode='lazy')))
