"""HPUDataParallel / HPUDistributedDataParallel with a real tiny YOLOv3 on CPU."""
import math

import pytest
import torch
from mmcv import Config
from mmcv.parallel import MODULE_WRAPPERS, is_module_wrapper
from mmcv.runner import save_checkpoint
from tiny_detector import build_tiny_detector, eval_batch, tiny_yolov3_cfg, train_batch

from mmdet_hpu.parallel import (
    GT_KEYS,
    HPUDataParallel,
    HPUDistributedDataParallel,
    scatter_to_device,
)


def _finite_losses(outputs):
    return all(math.isfinite(v) for v in outputs['log_vars'].values())


def test_registered_and_unwrapped():
    assert MODULE_WRAPPERS.get('HPUDataParallel') is HPUDataParallel
    assert MODULE_WRAPPERS.get('HPUDistributedDataParallel') is HPUDistributedDataParallel
    assert is_module_wrapper(HPUDataParallel(torch.nn.Linear(2, 2)))


@pytest.mark.parametrize('keep_gt', [False, True])
def test_scatter_moves_batch_and_can_keep_gt_on_host(keep_gt):
    meta = torch.device('meta')  # a cheap non-CPU target: shows what moved
    (batch, opt), kwargs = scatter_to_device((train_batch(), 'optimizer'), {}, meta,
                                             GT_KEYS if keep_gt else ())
    assert kwargs == {} and opt == 'optimizer'
    assert batch['img'].shape == (2, 3, 64, 64) and batch['img'].device == meta
    assert isinstance(batch['img_metas'], list) and batch['img_metas'][0]['img_shape']
    expected = torch.device('cpu') if keep_gt else meta
    assert {t.device for t in batch['gt_bboxes'] + batch['gt_labels']} == {expected}


def test_train_val_forward_on_cpu():
    model = HPUDataParallel(build_tiny_detector(), device='cpu')
    assert model.device_ids == [] and model.src_device_obj == torch.device('cpu')
    outputs = model.train_step(train_batch(), None)
    outputs['loss'].backward()
    assert _finite_losses(outputs) and outputs['num_samples'] == 2
    with torch.no_grad():
        val = model.val_step(train_batch(seed=1), None)  # Habana's fork asserted here
        assert _finite_losses(val)
        model.eval()
        result = model(return_loss=False, rescale=True, **eval_batch())
    assert len(result) == 1 and len(result[0]) == 3  # one array per class


def test_bf16_autocast_on_cpu():
    model = HPUDataParallel(build_tiny_detector(), device='cpu', autocast=True)
    dtypes = []
    model.module.backbone.register_forward_hook(lambda m, i, o: dtypes.append(o[0].dtype))
    outputs = model.train_step(train_batch(), None)
    outputs['loss'].backward()
    assert dtypes == [torch.bfloat16]
    assert _finite_losses(outputs)


def test_fake_hpu_train_step(fake_habana):
    """device='hpu' on the fake bridge: HPU branches taken, real math on the CPU."""
    model = HPUDataParallel(build_tiny_detector(), device='hpu', autocast=True,
                            keep_gt_on_host=True)
    seen = {}

    def spy(module, args, kwargs):
        seen['hpu_autocast'] = torch.is_autocast_enabled('hpu')
        seen['gt_device'] = kwargs['gt_bboxes'][0].device

    model.module.register_forward_pre_hook(spy, with_kwargs=True)
    outputs = model.train_step(train_batch(), None)
    outputs['loss'].backward()
    assert model.device_kind == 'hpu' and seen['hpu_autocast']
    assert seen['gt_device'] == torch.device('cpu')
    assert _finite_losses(outputs)


def test_checkpoint_from_wrapper_loads_in_stock_mmdet(tmp_path):
    from mmdet.apis import init_detector

    wrapped = HPUDataParallel(build_tiny_detector(seed=3), device='cpu')
    wrapped.module.CLASSES = ('a', 'b', 'c')
    ckpt = str(tmp_path / 'latest.pth')
    save_checkpoint(wrapped, ckpt, meta=dict(CLASSES=wrapped.module.CLASSES))
    model = init_detector(Config(dict(model=tiny_yolov3_cfg())), ckpt, device='cpu')
    assert model.CLASSES == ('a', 'b', 'c')
    for name, value in wrapped.module.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], value)
