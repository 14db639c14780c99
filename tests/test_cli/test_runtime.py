"""Device set-up of the console scripts, driven through the fake habana_frameworks."""
import argparse

import pytest

from mmdet_hpu.cli.runtime import UserError, prepare_device


@pytest.fixture
def clean_device(monkeypatch):
    """prepare_device sets process-wide state (env, requested mode): undo it."""
    from mmdet_hpu import device

    monkeypatch.delenv('PT_HPU_LAZY_MODE', raising=False)
    yield
    device.reset_state()


def _args(device='auto', mode=None, autocast=False):
    return argparse.Namespace(device=device, execution_mode=mode, autocast=autocast)


def test_lazy_mode_and_op_lists_are_set_before_the_bridge_loads(fake_habana):
    assert prepare_device(_args('hpu', 'lazy', autocast=True)) == ('hpu', 'lazy')
    env = fake_habana.import_env
    assert env['PT_HPU_LAZY_MODE'] == '1'
    assert env['PT_HPU_AUTOCAST_LOWER_PRECISION_OPS_LIST'].endswith('yolov3_bf16.txt')
    assert env['PT_HPU_AUTOCAST_FP32_OPS_LIST'].endswith('yolov3_fp32.txt')


def test_auto_picks_hpu_and_compile_sets_eager_bridge(fake_habana):
    assert prepare_device(_args('auto', 'compile')) == ('hpu', 'compile')
    assert fake_habana.import_env['PT_HPU_LAZY_MODE'] == '0'
    assert fake_habana.import_env['PT_HPU_AUTOCAST_LOWER_PRECISION_OPS_LIST'] is None


def test_user_op_lists_win(fake_habana, monkeypatch, tmp_path):
    mine = tmp_path / 'bf16.txt'
    mine.write_text('conv2d\n')
    monkeypatch.setenv('PT_HPU_AUTOCAST_LOWER_PRECISION_OPS_LIST', str(mine))
    prepare_device(_args('hpu', 'eager', autocast=True))
    assert fake_habana.import_env['PT_HPU_AUTOCAST_LOWER_PRECISION_OPS_LIST'] == str(mine)


def test_hpu_without_habana_says_what_to_install(clean_device):
    with pytest.raises(UserError, match='habana'):
        prepare_device(_args('hpu'))


@pytest.mark.parametrize('mode', ['lazy', 'eager'])
def test_hpu_only_modes_are_rejected_on_cpu(mode, clean_device):
    with pytest.raises(UserError, match=f"{mode}.*only on HPU"):
        prepare_device(_args('cpu', mode))


def test_compile_on_cpu_is_plain_torch_compile(clean_device):
    assert prepare_device(_args('cpu', 'compile')) == ('cpu', 'compile')
