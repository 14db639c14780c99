"""``make test`` runs the suite on pytest-xdist workers, one torch thread each (README)."""
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _make_test_dry_run(*variables: str) -> str:
    """The commands ``make test`` would run (``make -n``) with this venv and ``variables``."""
    venv = osp.dirname(osp.dirname(sys.executable))
    proc = subprocess.run(['make', '-n', '-C', REPO, 'test', f'VENV={venv}', *variables],
                          env=dict(os.environ, MAKEFLAGS=''), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.skipif(shutil.which('make') is None, reason='needs GNU make')
def test_make_test_runs_one_worker_per_core_with_a_file_per_worker():
    assert '-m pytest -n auto --dist loadfile' in _make_test_dry_run()
    assert '-m pytest -n 0 --dist loadfile' in _make_test_dry_run('PYTEST_WORKERS=0')


def test_a_worker_runs_one_torch_thread():
    if not os.environ.get('PYTEST_XDIST_WORKER'):
        pytest.skip('not in a pytest-xdist worker (make test runs them; PYTEST_WORKERS=0 not)')
    assert torch.get_num_threads() == 1
    assert os.environ['OMP_NUM_THREADS'] == '1'
