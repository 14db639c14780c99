"""Tests for mmdet_hpu.device, on the host and against the fake Habana bridge."""
import os
import sys

import pytest
import torch

from mmdet_hpu import device


@pytest.fixture
def no_habana(monkeypatch):
    """Pretend habana_frameworks is not installed (whatever the machine has)."""
    monkeypatch.setattr(device._bridge, 'spec_found', lambda: False)
    device.reset_state()
    yield
    device.reset_state()


# ---------------------------------------------------------------- without Habana


def test_import_does_not_load_bridge():
    assert 'habana_frameworks.torch' not in sys.modules or device._bridge.spec_found()


def test_hpu_requested_without_habana_says_what_to_install(no_habana):
    assert device.is_hpu_available() is False
    with pytest.raises(RuntimeError, match='habana-torch-plugin|Habana PyTorch docker'):
        device.resolve_device('hpu')


def test_auto_resolution_off_hpu(no_habana):
    expected = 'cuda' if torch.cuda.is_available() else 'cpu'
    assert device.resolve_device('auto') == expected
    assert device.resolve_device(None) == expected
    assert device.resolve_device('cpu') == 'cpu'
    with pytest.raises(ValueError, match='device must be one of'):
        device.resolve_device('tpu')


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the no-CUDA error')
def test_cuda_requested_without_cuda():
    with pytest.raises(RuntimeError, match='torch.cuda.is_available'):
        device.resolve_device('cuda')


def test_host_mode_and_helpers(no_habana):
    assert device.default_execution_mode() is None
    assert device.get_execution_mode() is None
    assert device.is_lazy() is False
    device.mark_step()  # no-op, imports nothing
    device.synchronize('cpu')
    device.reset_peak_memory_stats('cpu')
    assert device.max_memory_allocated('cpu') == 0
    assert device.torch_device('cpu') == torch.device('cpu')
    assert 'habana_frameworks.torch' not in sys.modules


@pytest.mark.parametrize('mode', ['lazy', 'eager'])
def test_hpu_only_modes_rejected_on_host(mode):
    with pytest.raises(ValueError, match='exists only on HPU'):
        device.set_execution_mode(mode, device='cpu')
    with pytest.raises(ValueError, match='execution mode must be one of'):
        device.check_mode_for_device('fast', 'cpu')


def test_cpu_autocast_bf16():
    with device.autocast('cpu', enabled=True):
        out = torch.nn.functional.conv2d(torch.randn(1, 3, 8, 8), torch.randn(4, 3, 3, 3))
    assert out.dtype == torch.bfloat16
    with device.autocast('cpu', enabled=False):
        out = torch.nn.functional.conv2d(torch.randn(1, 3, 8, 8), torch.randn(4, 3, 3, 3))
    assert out.dtype == torch.float32


# ---------------------------------------------------------------- with the fake bridge


@pytest.mark.parametrize('mode,value', [('lazy', '1'), ('eager', '0'), ('compile', '0')])
def test_mode_is_exported_before_bridge_import(fake_habana, mode, value):
    device.set_execution_mode(mode)
    assert fake_habana.import_env is None  # setting the mode imports nothing
    assert device.resolve_device('auto') == 'hpu'
    assert fake_habana.import_env['PT_HPU_LAZY_MODE'] == value
    assert device.get_execution_mode() == mode
    assert device.is_lazy() is (mode == 'lazy')


def test_eager_is_2_on_legacy_release(fake_habana, monkeypatch):
    monkeypatch.setattr(device._bridge, 'plugin_version', lambda: '1.11.0.587')
    assert device.default_execution_mode() == 'lazy'
    device.set_execution_mode('eager')
    assert os.environ['PT_HPU_LAZY_MODE'] == '2'
    with pytest.raises(RuntimeError, match='>= 1.13'):
        device.set_execution_mode('compile')


def test_release_defaults(fake_habana, monkeypatch):
    assert device.hpu_version() == '1.19.0.561'  # from the fake's dist-info
    assert device.default_execution_mode() == 'lazy'
    monkeypatch.setattr(device._bridge, 'plugin_version', lambda: '1.21.1.16')
    assert device.default_execution_mode() == 'compile'
    assert device.get_execution_mode() == 'compile'  # unset variable: release default


def test_too_late_to_change_mode(fake_habana):
    device.set_execution_mode('lazy')
    device.is_hpu_available()  # loads the bridge with PT_HPU_LAZY_MODE=1
    device.set_execution_mode('lazy')  # same mode: fine
    with pytest.raises(RuntimeError, match='too late'):
        device.set_execution_mode('eager')
    assert os.environ['PT_HPU_LAZY_MODE'] == '1'


@pytest.mark.parametrize('mode,calls', [('lazy', 1), ('eager', 0), ('compile', 0)])
def test_mark_step_only_in_lazy_mode(fake_habana, mode, calls):
    device.set_execution_mode(mode)
    device.mark_step()
    assert fake_habana.count('core.mark_step') == calls


def test_device_calls_reach_the_bridge(fake_habana):
    assert device.torch_device('hpu') == torch.device('cpu')  # fake: CPU-backed HPU
    device.synchronize('hpu:0')
    device.reset_peak_memory_stats('hpu')
    assert device.max_memory_allocated('hpu') == 0
    assert fake_habana.names()[-3:] == [
        'hpu.synchronize', 'hpu.reset_peak_memory_stats', 'hpu.max_memory_allocated']


def test_hpu_autocast_enables_hpu_state(fake_habana):
    with device.autocast('hpu'):
        assert torch.is_autocast_enabled('hpu')
        assert torch.get_autocast_dtype('hpu') == torch.bfloat16
        out = torch.nn.functional.conv2d(torch.randn(1, 3, 8, 8), torch.randn(4, 3, 3, 3))
    assert out.dtype == torch.bfloat16  # backing CPU is autocast too
    assert not torch.is_autocast_enabled('hpu')


def test_autocast_op_lists(fake_habana):
    exported = device.set_autocast_op_lists()
    assert set(exported) == {'PT_HPU_AUTOCAST_LOWER_PRECISION_OPS_LIST',
                             'PT_HPU_AUTOCAST_FP32_OPS_LIST'}
    device.is_hpu_available()
    bf16 = fake_habana.import_env['PT_HPU_AUTOCAST_LOWER_PRECISION_OPS_LIST']
    with open(bf16) as f:
        assert 'conv2d' in f.read().split()
    device.set_autocast_op_lists()  # same files after import: fine


def test_autocast_op_lists_too_late_and_legacy(fake_habana, monkeypatch, tmp_path):
    monkeypatch.setattr(device._bridge, 'plugin_version', lambda: '1.10.0')
    assert {'LOWER_LIST', 'FP32_LIST'} <= set(device.set_autocast_op_lists())
    device.is_hpu_available()
    other = tmp_path / 'bf16.txt'
    other.write_text('conv2d\n')
    with pytest.raises(RuntimeError, match='too late'):
        device.set_autocast_op_lists(bf16_file=str(other))
    with pytest.raises(FileNotFoundError):
        device.set_autocast_op_lists(bf16_file=str(tmp_path / 'missing.txt'))


def test_compile_model_uses_hpu_backend(fake_habana):
    device.set_execution_mode('compile')
    model = device.compile_model(torch.nn.Linear(4, 2))
    assert model(torch.randn(3, 4)).shape == (3, 2)
    assert fake_habana.count('dynamo.hpu_backend') == 1


def test_compile_model_refused_in_lazy_mode(fake_habana):
    device.set_execution_mode('lazy')
    with pytest.raises(RuntimeError, match='lazy mode'):
        device.compile_model(torch.nn.Linear(4, 2))


def test_hccl_and_fused_optimizers(fake_habana):
    assert device.init_hccl() == (1, 0, 0)
    assert fake_habana.count('hccl.initialize_distributed_hpu') == 2  # import + explicit
    assert device.hpex_optimizer('FusedAdamW').__name__ == 'FusedAdamW'
    assert device.hpex_optimizer('NoSuchOptimizer') is None
