"""HPUEvalHook / HPUDistEvalHook on a tiny COCO dataset with the real tiny YOLOv3."""
import os.path as osp

import numpy as np
import pytest
import torch
import torch.distributed as dist
from runner_helpers import (
    build_test_runner,
    demo_val_dataset,
    json_records,
    register_default_hooks,
    synthetic_batches,
    tiny_yolov3,
)

from mmdet_hpu import device
from mmdet_hpu.datasets.demo_data import CLASSES
from mmdet_hpu.runner import (
    HPUDistEvalHook,
    HPUEvalHook,
    build_eval_dataloader,
    multi_device_test,
    single_device_test,
)

NUM_VAL = 4


@pytest.fixture(scope='module')
def coco_val(tmp_path_factory):
    """A 4-image 64 px COCO-style val split (demo generator) and its dataset config."""
    return demo_val_dataset(str(tmp_path_factory.mktemp('coco')), NUM_VAL)


def _loader_cfg(coco_val):
    return dict(dataset=coco_val, samples_per_gpu=2, workers_per_gpu=0)


def test_eval_batch_size_map_in_log_and_best_checkpoint(tmp_path, coco_val, runner_log):
    runner = build_test_runner(tiny_yolov3(), str(tmp_path), max_epochs=2)
    hook = HPUEvalHook(_loader_cfg(coco_val), interval=1, metric='bbox', save_best='bbox_mAP')
    assert hook.dataloader.batch_size == 2 and len(hook.dataloader) == NUM_VAL // 2
    register_default_hooks(runner, log_interval=1, grad_clip=dict(max_norm=35))
    runner.register_hook(hook, priority='LOW')
    runner.run([synthetic_batches(1)], [('train', 1)])

    evals = [r for r in json_records(str(tmp_path), 'val') if 'bbox_mAP' in r]
    assert len(evals) == 2 and all(0.0 <= r['bbox_mAP'] <= 1.0 for r in evals)
    assert 'Epoch(val) [2][2]' in runner_log.text and 'bbox_mAP: ' in runner_log.text
    assert len(hook.latest_results) == NUM_VAL
    assert all(len(per_class) == len(CLASSES) for per_class in hook.latest_results)
    best = runner.meta['hook_msgs']['best_ckpt']
    assert osp.isfile(best) and osp.basename(best).startswith('best_bbox_mAP_epoch_')


def test_custom_hooks_config_builds_its_loader(tmp_path, coco_val):
    runner = build_test_runner(tiny_yolov3(), str(tmp_path))
    register_default_hooks(runner, 1, custom_hooks=[dict(
        type='HPUEvalHook', dataloader=_loader_cfg(coco_val), metric='bbox', priority='LOW')])
    (hook,) = [h for h in runner.hooks if isinstance(h, HPUEvalHook)]
    assert hook.dataloader.batch_size == 2


class _StubDetector(torch.nn.Module):
    """Returns one device tensor per image; counts forward calls."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, img, img_metas, return_loss=True, rescale=False):
        self.calls += 1
        return [torch.ones(1, 5) for _ in img_metas]


def _stub_loader(num_batches):
    return [dict(img=torch.zeros(2, 3, 4, 4), img_metas=[{}, {}])] * num_batches


def test_lazy_mark_step_once_per_eval_iteration(fake_habana):
    device.set_execution_mode('lazy')
    model = _StubDetector()
    results = single_device_test(model, _stub_loader(3))
    assert model.calls == 3 and fake_habana.count('core.mark_step') == 3
    assert len(results) == 6 and all(isinstance(r, np.ndarray) for r in results)
    assert not model.training


def test_no_mark_step_in_eager_eval(fake_habana):
    device.set_execution_mode('eager')
    single_device_test(_StubDetector(), _stub_loader(2))
    assert fake_habana.count('core.mark_step') == 0


def test_dist_hook_refuses_gpu_collect(coco_val):
    loader = build_eval_dataloader(_loader_cfg(coco_val))
    with pytest.raises(ValueError, match='gpu_collect'):
        HPUDistEvalHook(loader, gpu_collect=True)


def test_dist_hook_collects_through_tmpdir(tmp_path, coco_val, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)  # no CUDA path taken
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/store', rank=0,
                            world_size=1)
    try:
        runner = build_test_runner(tiny_yolov3(), str(tmp_path / 'work'))
        hook = HPUDistEvalHook(_loader_cfg(coco_val), metric='bbox', save_best='bbox_mAP')
        hook.before_run(runner)
        hook.after_train_epoch(runner)
    finally:
        dist.destroy_process_group()
    assert hook.dataloader.batch_size == 2 and len(hook.latest_results) == NUM_VAL
    assert 'bbox_mAP' in runner.log_buffer.output
    assert osp.isfile(runner.meta['hook_msgs']['best_ckpt'])
    assert not osp.exists(tmp_path / 'work' / '.eval_hook')  # removed after collection
    with pytest.raises(ValueError, match='tmpdir'):
        multi_device_test(runner.model, hook.dataloader, tmpdir=None)
