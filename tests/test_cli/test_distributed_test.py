"""``mmdet-hpu-test --launcher pytorch`` on 2 CPU processes gives the single-process metrics."""
import os
import os.path as osp
import re
import socket
import subprocess
import sys

import mmcv
import numpy as np
import pytest
import torch

from mmdet_hpu.datasets.demo_data import generate_demo_dataset

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CONFIG = osp.join(REPO, 'configs', 'demo', 'yolov3_mobilenetv2-half_128_shapes.py')


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _metrics(stdout):
    return {k: float(v) for k, v in re.findall(r'^(bbox_mAP\w*): (-?[0-9.]+)$', stdout, re.M)}


def _checkpoint(path):
    """A checkpoint of the demo model that detects something (BN stats from one pass)."""
    from mmcv import Config
    from mmcv.runner import save_checkpoint
    from mmdet.models import build_detector

    cfg = Config.fromfile(DEMO_CONFIG)
    torch.manual_seed(0)
    model = build_detector(cfg.model)
    model.init_weights()
    save_checkpoint(model, path, meta=dict(CLASSES=('circle', 'square', 'triangle')))


@pytest.mark.slow
def test_two_process_evaluation_equals_single_process(tmp_path):
    data = tmp_path / 'data'
    generate_demo_dataset(str(data), num_train=1, num_val=5, img_size=128, seed=3)
    ckpt = str(tmp_path / 'model.pth')
    _checkpoint(ckpt)
    common = [DEMO_CONFIG, ckpt, '--device', 'cpu', '--eval', 'bbox', '--cfg-options',
              f'data_root={data}/', 'data.workers_per_gpu=0', 'model.test_cfg.conf_thr=0',
              'model.test_cfg.score_thr=0']
    env = dict(os.environ, OMP_NUM_THREADS='1')
    single = subprocess.run([sys.executable, '-m', 'mmdet_hpu.cli.test', *common,
                             '--out', str(tmp_path / 'single.pkl')], env=env,
                            capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert single.returncode == 0, single.stderr[-3000:]
    dist = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         f'--master_port={_free_port()}', '-m', 'mmdet_hpu.cli.test', *common,
         '--launcher', 'pytorch', '--tmpdir', str(tmp_path / 'collect'),
         '--out', str(tmp_path / 'dist.pkl')],
        env=env, capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert dist.returncode == 0, dist.stderr[-3000:]
    expected = _metrics(single.stdout)
    assert expected and 'bbox_mAP' in expected
    # 5 images on 2 ranks: the sampler pads one image, the collection drops it again.
    assert _metrics(dist.stdout) == expected
    single_results = mmcv.load(str(tmp_path / 'single.pkl'))
    dist_results = mmcv.load(str(tmp_path / 'dist.pkl'))
    assert len(single_results) == len(dist_results) == 5
    for per_image_single, per_image_dist in zip(single_results, dist_results):
        assert sum(len(a) for a in per_image_single) > 0
        for cls_single, cls_dist in zip(per_image_single, per_image_dist):
            np.testing.assert_allclose(cls_dist, cls_single, rtol=1e-5, atol=1e-4)
