"""Config arguments: paths and the ``mmdet::`` shorthand for the configs shipped with mmdet."""
import os
import os.path as osp
import subprocess
import sys

import pytest

from mmdet_hpu.analysis import shipped_configs as shipped
from mmdet_hpu.analysis.shipped_configs import SHORTHAND, resolve_config
from mmdet_hpu.errors import ConfigError

BIN = osp.dirname(sys.executable)


def test_shorthand_resolves_to_the_file_inside_the_installed_mmdet():
    import mmdet

    path = resolve_config('mmdet::retinanet/retinanet_r50_fpn_1x_coco.py')
    assert path == osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', 'retinanet',
                            'retinanet_r50_fpn_1x_coco.py')
    assert osp.isfile(path)
    assert resolve_config('mmdet::ssd/ssd300_coco') == resolve_config('mmdet::ssd/ssd300_coco.py')


def test_every_table_row_of_issue_11_is_shipped():
    names = set(shipped.shipped_configs(shipped.shipped_config_root()))
    for name in ('retinanet/retinanet_r18_fpn_1x_coco.py',
                 'retinanet/ascend_retinanet_r18_fpn_1x8_1x_coco.py', 'ssd/ssd300_coco.py',
                 'ssd/ascend_ssd300_coco.py', 'fcos/fcos_r50_caffe_fpn_gn-head_1x_coco.py',
                 'atss/atss_r50_fpn_1x_coco.py', 'gfl/gfl_r50_fpn_1x_coco.py',
                 'faster_rcnn/faster_rcnn_r50_fpn_1x_coco.py'):
        assert name in names
    assert not any(name.startswith('_base_') for name in names)


def test_plain_paths_pass_through(tmp_path):
    config = tmp_path / 'my_config.py'
    config.write_text('model = dict()\n')
    assert resolve_config(str(config)) == str(config)
    with pytest.raises(ConfigError, match='config file not found'):
        resolve_config(str(tmp_path / 'missing.py'))


def test_a_missing_shipped_config_lists_close_names():
    with pytest.raises(ConfigError) as info:
        resolve_config('mmdet::retinanet/retinanet_r19_fpn_1x_coco.py')
    message = str(info.value)
    assert 'no config' in message and 'shipped with mmdet' in message
    assert SHORTHAND + 'retinanet/retinanet_r18_fpn_1x_coco.py' in message
    with pytest.raises(ConfigError) as info:  # wrong folder: matched by file name
        resolve_config('mmdet::retina/retinanet_r50_fpn_1x_coco.py')
    assert SHORTHAND + 'retinanet/retinanet_r50_fpn_1x_coco.py' in str(info.value)


def test_console_script_exits_2_with_close_names(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    out = subprocess.run([osp.join(BIN, 'mmdet-hpu-audit'), 'mmdet::ssd/ssd301_coco.py'],
                         cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert 'error: ' in out.stderr
    assert 'mmdet::ssd/ssd300_coco.py' in out.stderr
    assert 'Traceback' not in out.stderr
    assert list(tmp_path.iterdir()) == []
