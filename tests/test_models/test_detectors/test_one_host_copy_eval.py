"""Evaluation reads the device once per batch, and returns what stock's per-image path does."""
import numpy as np
import torch
from mmdet.models.detectors import YOLOV3

from mmdet_hpu.analysis.host_read_loop import IMG_SIZE, tiny_yolov3
from mmdet_hpu.parallel import HPUDataParallel
from mmdet_hpu.runner.hooks import single_device_test
from mmdet_hpu.runner.host_reads import HostReadCounter


def _loader(num_batches, batch_size):
    gen = torch.Generator().manual_seed(0)
    shape = (IMG_SIZE, IMG_SIZE, 3)
    batches = []
    for b in range(num_batches):
        metas = [dict(img_shape=shape, pad_shape=shape, ori_shape=(96, 96, 3), flip=False,
                      scale_factor=np.full(4, 2 / 3, np.float32), filename=f'{b}_{i}.jpg')
                 for i in range(batch_size)]
        batches.append(dict(img=[torch.randn(batch_size, 3, IMG_SIZE, IMG_SIZE, generator=gen)],
                            img_metas=[metas]))
    return batches


def test_one_device_to_host_read_per_eval_batch_with_stock_results():
    model = tiny_yolov3()
    loader = _loader(num_batches=3, batch_size=4)
    with HostReadCounter() as reads:
        results = single_device_test(HPUDataParallel(model, device='cpu'), loader)
    assert reads.snapshot() == dict(scalar=0, bulk=3, dynamic=0)  # mmdet's: 2 per image + 1
    assert len(results) == 12
    num_dets = 0
    for b, data in enumerate(loader):
        with torch.no_grad():
            stock_path = YOLOV3.simple_test(model, data['img'][0], data['img_metas'][0],
                                            rescale=True)
        for mine, stock in zip(results[4 * b:4 * b + 4], stock_path):
            for mine_cls, stock_cls in zip(mine, stock):
                assert mine_cls.dtype == stock_cls.dtype == np.float32
                np.testing.assert_array_equal(mine_cls, stock_cls)
                num_dets += len(mine_cls)
    assert num_dets > 0
