"""HPUFused* optimizer registration/fallback and mmdet_hpu.dist.init_dist."""
import logging

import pytest
import torch
import torch.distributed as dist
from mmcv.runner import build_optimizer

from mmdet_hpu import dist as hpu_dist
from mmdet_hpu import optimizers


@pytest.fixture
def fresh_fallback_log(monkeypatch):
    monkeypatch.setattr(optimizers, '_fallback_logged', set())


def _build(type_, **kwargs):
    return build_optimizer(torch.nn.Linear(2, 2), dict(type=type_, lr=0.1, **kwargs))


def test_fallback_to_torch_logged_once(fresh_fallback_log, monkeypatch, caplog):
    monkeypatch.setattr(optimizers.hpu_device, 'hpex_optimizer', lambda name: None)
    logging.getLogger('mmdet').propagate = True
    with caplog.at_level(logging.INFO, logger='mmdet'):
        sgd = _build('HPUFusedSGD', momentum=0.9, weight_decay=5e-4)
        _build('HPUFusedSGD')
        adamw = _build('HPUFusedAdamW')
    assert type(sgd) is torch.optim.SGD and sgd.defaults['momentum'] == 0.9
    assert type(adamw) is torch.optim.AdamW
    assert adamw.defaults['eps'] == 1e-6 and adamw.defaults['weight_decay'] == 0.0
    messages = [r.getMessage() for r in caplog.records if 'unavailable' in r.getMessage()]
    assert len(messages) == 2  # once per optimizer name


def test_fused_optimizers_on_fake_hpu(fake_habana, fresh_fallback_log):
    sgd = _build('HPUFusedSGD', momentum=0.9)
    adamw = _build('HPUFusedAdamW')
    assert type(sgd).__name__ == 'FusedSGD' and type(adamw).__name__ == 'FusedAdamW'
    assert adamw.defaults['eps'] == 1e-6
    assert fake_habana.count('hpex.FusedSGD.__init__') == 1


def test_backend_choice():
    assert [hpu_dist.default_backend(d) for d in ('hpu', 'cuda:1', 'cpu')] == \
        ['hccl', 'nccl', 'gloo']
    assert hpu_dist._choose_backend('cpu', 'nccl') == 'gloo'  # stock default_runtime value
    assert hpu_dist._choose_backend('cpu', 'mpi') == 'mpi'
    with pytest.raises(ValueError, match='launcher'):
        hpu_dist.init_dist('slurm', device='cpu')


def test_missing_launcher_env_is_explained(monkeypatch):
    for var in ('WORLD_SIZE', 'RANK', 'OMPI_COMM_WORLD_SIZE'):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(KeyError, match='torchrun'):
        hpu_dist.init_dist('pytorch', device='cpu')
    with pytest.raises(KeyError, match='mpirun'):
        hpu_dist.init_dist('mpi', device='cpu')


def _single_process_env(monkeypatch, port):
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    monkeypatch.setenv('MASTER_PORT', str(port))
    monkeypatch.setattr(dist, '_DEFAULT_FIRST_BUCKET_BYTES', dist._DEFAULT_FIRST_BUCKET_BYTES)


@pytest.mark.parametrize('device,launcher', [('cpu', 'mpi'), ('hpu', 'pytorch')])
def test_init_dist_single_process(monkeypatch, request, device, launcher):
    """cpu+mpi: OMPI_* mapped, no torch.cuda.set_device; hpu (fake): hccl init + bucket."""
    import socket

    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    _single_process_env(monkeypatch, port)
    env = dict(OMPI_COMM_WORLD_SIZE='1', OMPI_COMM_WORLD_RANK='0',
               OMPI_COMM_WORLD_LOCAL_RANK='0') if launcher == 'mpi' else \
        dict(WORLD_SIZE='1', RANK='0', LOCAL_RANK='0')
    for var in ('WORLD_SIZE', 'RANK', 'LOCAL_RANK', *env):
        monkeypatch.setenv(var, env.get(var, '0'))
    recorder = request.getfixturevalue('fake_habana') if device == 'hpu' else None
    try:
        ranks = hpu_dist.init_dist(launcher, device=device, bucket_cap_mb=8)
        assert ranks == (0, 1, 0)
        assert dist.get_backend() == hpu_dist.default_backend(device)
        assert dist._DEFAULT_FIRST_BUCKET_BYTES == 8 * 1024 * 1024
        if recorder is not None:
            assert recorder.count('hccl.initialize_distributed_hpu') == 2
            assert recorder.count('hccl.create_process_group') == 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
