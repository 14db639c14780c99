"""tools/cpu_threads.py: the thread count tools/demo.sh uses, from two /proc/stat samples."""
import os
import os.path as osp
import subprocess
import sys
import time

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'tools'))
try:
    import cpu_threads
finally:
    sys.path.pop(0)


def stat_text(user, system, idle, iowait=0, num_cpus=2):
    per_cpu = ''.join(f'cpu{i} 1 0 1 1 0 0 0 0 0 0\n' for i in range(num_cpus))
    return (f'cpu  {user} 7 {system} {idle} {iowait} 3 2 1 0 0\n{per_cpu}'
            'intr 12345 0 0\nctxt 999\nbtime 1700000000\n')


def test_parse_stat_counts_idle_and_iowait_as_not_busy():
    sample = cpu_threads.parse_stat(stat_text(user=100, system=50, idle=800, iowait=40))
    assert sample == (100 + 7 + 50 + 3 + 2 + 1, 100 + 7 + 50 + 800 + 40 + 3 + 2 + 1, 2)


@pytest.mark.parametrize('text', ['', 'intr 1 2 3\n', 'cpu  1 2 x 4 5 6 7 8\n', 'cpu  1 2 3\n'])
def test_parse_stat_refuses_text_without_a_cpu_line(text):
    with pytest.raises(ValueError, match='no "cpu user nice system idle'):
        cpu_threads.parse_stat(text)


def test_busy_cores_is_the_busy_share_of_the_elapsed_time_times_the_cpus():
    before = cpu_threads.parse_stat(stat_text(user=1000, system=0, idle=1000, num_cpus=4))
    # 400 jiffies pass on 4 CPUs: 300 busy (user), 100 idle -> 3 CPUs busy.
    after = cpu_threads.parse_stat(stat_text(user=1300, system=0, idle=1100, num_cpus=4))
    assert cpu_threads.busy_cores(before, after) == pytest.approx(3.0)
    assert cpu_threads.busy_cores(after, after) == 0.0  # no time passed


@pytest.mark.parametrize('cores,num_cpus,busy,threads', [
    (2, 2, 0.0, 2), (2, 2, 0.4, 2), (2, 2, 0.5, 1), (2, 2, 1.0, 1), (2, 2, 2.0, 1),
    (16, 16, 3.4, 13), (4, 16, 2.0, 4),  # affinity: never more than this process may use
])
def test_recommended_threads_leaves_the_busy_cpus(cores, num_cpus, busy, threads):
    assert cpu_threads.recommended_threads(cores, num_cpus, busy) == threads


def test_sample_busy_cores_reads_twice_around_the_pause():
    reads = iter([stat_text(user=0, system=0, idle=0), stat_text(user=150, system=50, idle=0)])
    pauses = []
    busy, num_cpus = cpu_threads.sample_busy_cores(0.25, read=lambda: next(reads),
                                                   sleep=pauses.append)
    assert (busy, num_cpus, pauses) == (pytest.approx(2.0), 2, [0.25])


def run_script(*args):
    return subprocess.run([sys.executable, osp.join(REPO, 'tools', 'cpu_threads.py'), *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(not osp.isfile('/proc/stat'), reason='needs Linux /proc/stat')
def test_script_sees_a_process_that_keeps_a_cpu_busy():
    """On this machine: a spinning child is counted as (about) one busy CPU."""
    spin = subprocess.Popen([sys.executable, '-c', 'while True: pass'])
    try:
        time.sleep(0.3)
        proc = run_script('--seconds', '1')
    finally:
        spin.kill()
        spin.wait()
    assert proc.returncode == 0, proc.stderr
    threads, busy, num_cpus, usable = proc.stdout.split()
    assert float(busy) >= 0.8
    assert int(threads) <= max(1, int(num_cpus) - 1)
    assert int(usable) == len(os.sched_getaffinity(0))


def test_script_refuses_a_non_positive_sample_time():
    proc = run_script('--seconds', '0')
    assert proc.returncode == 2
    assert '--seconds must be positive, got 0.0' in proc.stderr


def fake_venv(tmp_path):
    """A venv whose console scripts only record OMP_NUM_THREADS (demo.sh's thread choice)."""
    bin_dir = tmp_path / 'venv' / 'bin'
    bin_dir.mkdir(parents=True)
    (bin_dir / 'python').write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    record = tmp_path / 'threads.txt'
    (bin_dir / 'mmdet-hpu-train').write_text(
        '#!/bin/sh\n'
        f'echo "${{OMP_NUM_THREADS:-unset}}" > {record}\n'
        'while [ "$1" != --work-dir ]; do shift; done\n'
        'mkdir -p "$2" && touch "$2/run.log.json" "$2/eval_0.json"\n')
    (bin_dir / 'mmdet-hpu-test').write_text('#!/bin/sh\necho evaluated\n')
    for script in ('python', 'mmdet-hpu-train', 'mmdet-hpu-test'):
        (bin_dir / script).chmod(0o755)
    data = tmp_path / 'data' / 'annotations'
    data.mkdir(parents=True)
    (data / 'instances_val.json').write_text('{}')
    return str(tmp_path / 'venv'), record


def run_demo(tmp_path, **extra_env):
    venv, record = fake_venv(tmp_path)
    env = {key: value for key, value in os.environ.items() if key != 'OMP_NUM_THREADS'}
    env.update(VENV=venv, DEVICE='cpu', **extra_env)
    proc = subprocess.run(['bash', osp.join(REPO, 'tools', 'demo.sh'), 'configs/demo/x.py',
                           str(tmp_path / 'data'), str(tmp_path / 'work')],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, record.read_text().strip()


def proc_stat_cpus():
    with open('/proc/stat') as stat:
        return cpu_threads.parse_stat(stat.read()).num_cpus


@pytest.mark.skipif(not osp.isfile('/proc/stat') or not hasattr(os, 'sched_getaffinity')
                    or proc_stat_cpus() != len(os.sched_getaffinity(0)),
                    reason='needs /proc/stat and every CPU usable')
def test_demo_leaves_a_busy_cpu_to_the_process_keeping_it_busy(tmp_path):
    spin = subprocess.Popen([sys.executable, '-c', 'while True: pass'])
    try:
        time.sleep(0.3)
        out, threads = run_demo(tmp_path)
    finally:
        spin.kill()
        spin.wait()
    assert threads != 'unset' and int(threads) <= max(1, proc_stat_cpus() - 1)
    assert f'CPUs in use by others): OMP_NUM_THREADS={threads}' in out


def test_demo_keeps_the_users_omp_num_threads(tmp_path):
    out, threads = run_demo(tmp_path, OMP_NUM_THREADS='3')
    assert threads == '3'
    assert 'busy machine' not in out
