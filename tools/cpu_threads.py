"""OpenMP threads for a CPU run on a shared machine, from how busy its cores are right now.

torch starts one OpenMP thread per core, and those threads spin-wait on each other when other
processes hold some of the cores (measured on 2 cores at load ~14: 0.24 images/s with 2 threads,
2.8 with 1). ``tools/demo.sh`` asks this module how many threads to use. The 1-minute load
average is a poor guide: it still reads ~2 for a minute after another job has ended on an idle
2-core machine. So ``/proc/stat`` is sampled twice, :data:`SAMPLE_SECONDS` apart, and the cores
that other processes keep busy are left to them.

``python tools/cpu_threads.py`` prints ``<threads> <busy CPUs> <CPUs> <usable CPUs>``
(usable: those this process may run on; torch's default thread count). Standard library only:
it starts in well under a second (importing ``mmdet_hpu`` would load torch first).
"""
import argparse
import os
import sys
import time
from typing import Callable, List, NamedTuple, Optional, Tuple

SAMPLE_SECONDS = 1.0
STAT_PATH = '/proc/stat'


class CpuSample(NamedTuple):
    """One read of ``/proc/stat``: busy and total jiffies of all CPUs, and how many CPUs."""
    busy: int
    total: int
    num_cpus: int


def parse_stat(stat_text: str) -> CpuSample:
    """The aggregate ``cpu`` line and the number of ``cpuN`` lines of ``/proc/stat``.

    The ``cpu`` line holds user, nice, system, idle, iowait, irq, softirq, steal (then guest
    times, already counted in user). Idle and iowait are not busy.

    Raises:
        ValueError: if the text has no well-formed ``cpu`` line.
    """
    lines = [line.split() for line in stat_text.splitlines()]
    num_cpus = sum(1 for fields in lines if fields and fields[0][:3] == 'cpu'
                   and fields[0][3:].isdigit())
    for fields in lines:
        if fields and fields[0] == 'cpu' and len(fields) >= 6:
            try:
                times = [int(value) for value in fields[1:9]]
            except ValueError:
                break
            total = sum(times)
            return CpuSample(total - times[3] - times[4], total, max(num_cpus, 1))
    raise ValueError(f'{STAT_PATH} has no "cpu user nice system idle iowait ..." line')


def busy_cores(before: CpuSample, after: CpuSample) -> float:
    """CPUs kept busy between two samples (0 if no time passed)."""
    total = after.total - before.total
    if total <= 0:
        return 0.0
    return after.num_cpus * max(after.busy - before.busy, 0) / total


def recommended_threads(cores: int, num_cpus: int, busy: float) -> int:
    """The CPUs left over when ``busy`` (rounded half up) are taken, at most ``cores`` (those
    this process may use) and at least 1."""
    return max(1, min(cores, num_cpus - int(busy + 0.5)))


def sample_busy_cores(seconds: float = SAMPLE_SECONDS,
                      read: Optional[Callable[[], str]] = None,
                      sleep: Callable[[float], None] = time.sleep) -> Tuple[float, int]:
    """Busy CPUs over ``seconds`` and the machine's CPU count, from two reads of
    ``/proc/stat``."""
    read = read or _read_stat
    before = parse_stat(read())
    sleep(seconds)
    after = parse_stat(read())
    return busy_cores(before, after), after.num_cpus


def _read_stat() -> str:
    with open(STAT_PATH) as stat:
        return stat.read()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog='tools/cpu_threads.py',
        description='Print "<threads> <busy CPUs> <CPUs> <usable CPUs>": OpenMP threads for '
                    'a CPU run, leaving the CPUs other processes keep busy now.')
    parser.add_argument('--seconds', type=float, default=SAMPLE_SECONDS,
                        help='how long to sample /proc/stat (default: %(default)s)')
    args = parser.parse_args(argv)
    if not args.seconds > 0:
        parser.error(f'--seconds must be positive, got {args.seconds}')
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (
        os.cpu_count() or 1)
    try:
        busy, num_cpus = sample_busy_cores(args.seconds)
    except (OSError, ValueError) as err:
        print(f'cpu_threads: cannot tell how busy the cores are: {err}', file=sys.stderr)
        return 1
    print(f'{recommended_threads(cores, num_cpus, busy)} {busy:.2f} {num_cpus} {cores}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
