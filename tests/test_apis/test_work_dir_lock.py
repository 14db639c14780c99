"""One training per work dir, with real processes: refusal naming the holder, stale takeover."""
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from mmdet_hpu.apis.work_dir_lock import (
    LOCK_NAME,
    WorkDirBusyError,
    WorkDirLock,
    lock_work_dir,
    release_work_dir,
)

# Loads work_dir_lock.py by path (with a bare ``mmdet_hpu`` package for its
# ``mmdet_hpu.errors`` import): importing the whole plugin would take seconds.
_LOAD = textwrap.dedent('''
    import importlib.util, sys, types
    package = types.ModuleType('mmdet_hpu')
    package.__path__ = [sys.argv[2]]
    sys.modules['mmdet_hpu'] = package
    spec = importlib.util.spec_from_file_location('work_dir_lock', sys.argv[3])
    lock_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lock_module)
''')
_HOLDER = _LOAD + textwrap.dedent('''
    import time
    lock_module.lock_work_dir(sys.argv[1])
    print('locked', flush=True)
    time.sleep(120)
''')


def _argv(code, work):
    import mmdet_hpu.apis.work_dir_lock as module

    package_dir = osp.dirname(osp.dirname(osp.dirname(module.__file__)))
    return [sys.executable, '-c', code, str(work), osp.join(package_dir, 'mmdet_hpu'),
            module.__file__]


@pytest.fixture
def holder(tmp_path):
    """A real process holding the lock of ``tmp_path/work``; killed at the end."""
    work = tmp_path / 'work'
    work.mkdir()
    proc = subprocess.Popen(_argv(_HOLDER, work), stdout=subprocess.PIPE,
                            text=True, env=dict(os.environ, OMP_NUM_THREADS='1'))
    try:
        assert proc.stdout.readline().strip() == 'locked'
        yield str(work), proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
        proc.stdout.close()


def test_second_training_refuses_naming_the_holder(holder):
    work, proc = holder
    with pytest.raises(WorkDirBusyError) as err:
        lock_work_dir(work)
    message = str(err.value)
    assert f'process {proc.pid} on host {socket.gethostname()!r}' in message
    assert '--work-dir' in message and LOCK_NAME in message


def test_killed_holder_leaves_a_stale_lock_that_is_taken_over(holder, caplog):
    work, proc = holder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert osp.isfile(osp.join(work, LOCK_NAME))  # the file stays after a kill
    lock_work_dir(work)
    try:
        assert f'left by process {proc.pid}' in caplog.text and 'no longer running' in caplog.text
        lock_work_dir(work)  # re-entrant within the process
    finally:
        release_work_dir(work)
    assert not osp.exists(osp.join(work, LOCK_NAME))


def test_lock_released_at_exit_of_a_finished_process(tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    code = _LOAD + 'lock_module.lock_work_dir(sys.argv[1])\n'
    subprocess.run(_argv(code, work), check=True, timeout=120,
                   env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert not osp.exists(work / LOCK_NAME)
    lock = WorkDirLock(str(work)).acquire()
    assert lock.previous is None
    lock.release()


def test_cli_refuses_a_busy_work_dir_and_writes_nothing(holder, tmp_path, capsys,
                                                        monkeypatch):
    from mmdet_hpu import device
    from mmdet_hpu.cli.train import main
    from mmdet_hpu.datasets.demo_data import generate_demo_dataset

    work, proc = holder
    data = str(tmp_path / 'data')
    generate_demo_dataset(data, num_train=2, num_val=1, img_size=64, seed=1)
    with open(osp.join(work, '20240101_000000.log'), 'w') as f:
        f.write('the other run\n')
    before = {name: open(osp.join(work, name), 'rb').read() for name in os.listdir(work)}
    monkeypatch.setenv('LOCAL_RANK', '0')
    device.reset_state()
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    config = osp.join(repo, 'configs', 'demo', 'yolov3_mobilenetv2-half_128_shapes.py')
    with pytest.raises(SystemExit) as exc:
        main([config, '--device', 'cpu', '--work-dir', work, '--cfg-options',
              f'data_root={data}/', 'data.workers_per_gpu=0'])
    device.reset_state()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and 'Traceback' not in err
    assert f'in use by process {proc.pid}' in err
    after = {name: open(osp.join(work, name), 'rb').read() for name in os.listdir(work)}
    assert after == before
