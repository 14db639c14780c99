"""Fixtures of the validation tests: a tiny demo dataset and the demo config."""
import os.path as osp
import shutil

import pytest

from mmdet_hpu.datasets.demo_data import generate_demo_dataset

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CONFIG = osp.join(REPO, 'configs', 'demo', 'yolov3_mobilenetv2-half_128_shapes.py')


@pytest.fixture(scope='session')
def pristine_data(tmp_path_factory):
    """A tiny demo dataset; never modified (copy it with ``data``)."""
    root = tmp_path_factory.mktemp('pristine_shapes')
    generate_demo_dataset(str(root), num_train=4, num_val=2, img_size=64, seed=1)
    return str(root)


@pytest.fixture
def data(pristine_data, tmp_path):
    """A private copy of the tiny dataset that a test may break."""
    root = str(tmp_path / 'data')
    shutil.copytree(pristine_data, root)
    return root


@pytest.fixture
def demo_cfg():
    """Return a loader of the demo config re-rooted at a data folder."""
    import mmcv

    from mmdet_hpu.cli.overrides import merge_cfg_options

    def load(data_root, **options):
        cfg = mmcv.Config.fromfile(DEMO_CONFIG)
        return merge_cfg_options(cfg, dict(data_root=data_root.rstrip('/') + '/', **options))

    return load
