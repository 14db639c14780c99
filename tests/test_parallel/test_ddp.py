"""Two-process DDP on CPU (gloo), started like torchrun, through HPUDistributedDataParallel."""
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name('ddp_worker.py')
FAKE_HABANA = Path(__file__).parents[1] / 'fake_habana'
REPO = Path(__file__).parents[2]


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _launch(tmp_path, device, world_size=2):
    port = _free_port()
    paths = [str(REPO)] + ([str(FAKE_HABANA)] if device == 'hpu' else [])
    procs = []
    for rank in range(world_size):
        env = dict(os.environ, MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank),
                   LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), OMP_NUM_THREADS='1',
                   PYTHONPATH=os.pathsep.join(paths + [os.environ.get('PYTHONPATH', '')]))
        if device == 'hpu':
            env['PT_HPU_LAZY_MODE'] = '0'
        procs.append(subprocess.Popen([sys.executable, str(WORKER), str(tmp_path), device],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out.decode()[-3000:]
    return [torch.load(tmp_path / f'rank{r}.pt', weights_only=False) for r in range(world_size)]


@pytest.mark.parametrize('device,backend', [('cpu', 'gloo'), ('hpu', 'hccl')])
def test_two_process_ddp_keeps_ranks_in_sync(tmp_path, device, backend):
    """device='hpu' runs on the fake bridge: hccl backend (gloo underneath), CPU tensors."""
    results = _launch(tmp_path, device)
    assert [r['backend'] for r in results] == [backend, backend]
    assert all(r['world_size'] == 2 for r in results)
    assert all(r['first_bucket'] == 4 * 1024 * 1024 for r in results)
    assert all(r['num_detection_lists'] == 3 for r in results)  # one per class
    torch.testing.assert_close(results[0]['params'], results[1]['params'], rtol=0, atol=0)
    assert all(math.isfinite(v) for r in results for v in r['losses'] + [r['val_loss']])
    # Different data per rank: the losses differ, yet the parameters are identical.
    assert results[0]['losses'] != results[1]['losses']
