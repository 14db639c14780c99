"""A rank that dies makes the others exit with an error within ``--dist-timeout``.

Two real ``mmdet-hpu-train --launcher pytorch`` processes (gloo on CPU, torchrun-style
environment variables, a random free port); :class:`failure_hooks.DieAtIterHook`
makes rank 1 leave with ``os._exit(0)`` right after iteration 1 (a clean-looking exit,
the hardest case for the survivor to notice). Rank 0 must exit non-zero, with an
error naming the lost peer, no later than ``--dist-timeout`` seconds after rank 1 died.
"""
import datetime
import os
import os.path as osp
import socket
import subprocess
import sys
import time

import mmcv
import pytest

from mmdet_hpu.cli.train import apply_args_to_config, parse_args
from mmdet_hpu.datasets.demo_data import generate_demo_dataset
from mmdet_hpu.dist import DEFAULT_TIMEOUT_S, as_timedelta

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
RUNNER_TESTS = osp.join(REPO, 'tests', 'test_runner')
DEMO_CFG = osp.join(REPO, 'configs', 'demo', 'yolov3_mobilenetv2-half_128_shapes.py')
TRAIN = osp.join(osp.dirname(sys.executable), 'mmdet-hpu-train')
TIMEOUT_S = 20


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _config(tmp_path):
    path = tmp_path / 'die.py'
    path.write_text(
        f'_base_ = [{DEMO_CFG!r}]\n'
        "custom_imports = dict(imports=['mmdet_hpu', 'failure_hooks'], "
        'allow_failed_imports=False)\n'
        "custom_hooks = [dict(type='DieAtIterHook', iteration=1, how='exit', rank=1, code=0, "
        "priority='LOWEST')]\n")
    return str(path)


def _launch(tmp_path, data):
    port = _free_port()
    args = [TRAIN, _config(tmp_path), '--launcher', 'pytorch', '--device', 'cpu',
            '--no-validate', '--seed', '0', '--epochs', '2', '--dist-timeout', str(TIMEOUT_S),
            '--work-dir', str(tmp_path / 'work'),
            '--cfg-options', f'data_root={data}/', 'data.samples_per_gpu=2',
            'data.workers_per_gpu=0', 'data.train_dataloader.persistent_workers=False',
            'log_config.interval=1', 'find_unused_parameters=True']
    procs = []
    for rank in range(2):
        env = dict(os.environ, OMP_NUM_THREADS='1', MASTER_ADDR='127.0.0.1',
                   MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE='2',
                   PYTHONPATH=RUNNER_TESTS + os.pathsep + os.environ.get('PYTHONPATH', ''))
        log = open(tmp_path / f'rank{rank}.log', 'w')
        procs.append((subprocess.Popen(args, cwd=REPO, env=env, stdout=log,
                                       stderr=subprocess.STDOUT), log))
    return procs


def _wait_all(procs, limit_s):
    """Exit times (monotonic) of the processes; kills them all after ``limit_s``."""
    ended = [None] * len(procs)
    deadline = time.monotonic() + limit_s
    while None in ended and time.monotonic() < deadline:
        for i, (proc, _) in enumerate(procs):
            if ended[i] is None and proc.poll() is not None:
                ended[i] = time.monotonic()
        time.sleep(0.1)
    for proc, log in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    return ended


@pytest.mark.slow
def test_survivor_exits_nonzero_within_timeout(tmp_path):
    data = tmp_path / 'data'
    generate_demo_dataset(str(data), num_train=8, num_val=2, img_size=64, max_objects=2, seed=0)
    procs = _launch(tmp_path, data)
    ended = _wait_all(procs, limit_s=180)
    logs = [(tmp_path / f'rank{r}.log').read_text() for r in range(2)]
    assert ended[1] is not None and procs[1][0].returncode == 0, logs[1][-3000:]
    assert ended[0] is not None, 'rank 0 still hung 180 s after start:\n' + logs[0][-3000:]
    assert procs[0][0].returncode != 0, logs[0][-3000:]
    assert ended[0] - ended[1] < TIMEOUT_S + 5, logs[0][-3000:]
    assert 'error: ' in logs[0] and 'rank 0' in logs[0], logs[0][-3000:]


def test_dist_timeout_flag_reaches_dist_params():
    args = parse_args([DEMO_CFG, '--dist-timeout', '30'])
    cfg = mmcv.Config(dict(dist_params=dict(backend=None), log_config=dict(interval=1)))
    apply_args_to_config(cfg, args)
    assert cfg.dist_params == dict(backend=None, timeout=30)
    assert as_timedelta(30) == datetime.timedelta(seconds=30)
    assert as_timedelta(None).total_seconds() == DEFAULT_TIMEOUT_S
    with pytest.raises(ValueError, match='must be > 0'):
        as_timedelta(0)
