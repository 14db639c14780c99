"""One line naming the machine a benchmark ran on: speed-ups move with the host CPU.

The same code measured 2.98-3.42x on one VM host and 2.31-2.64x on another (SSD training step,
README): a benchmark's output carries the CPU model, its vector extensions and the CPUs this
process may use, so runs from different hosts are not compared as if they were one.
"""
import os
import platform
from typing import Optional

CPUINFO = '/proc/cpuinfo'


def describe_cpu(cpuinfo: Optional[str]) -> str:
    """``<model name>, AVX-512 yes|no`` from the text of ``/proc/cpuinfo`` (None: unknown)."""
    if not cpuinfo:
        return platform.processor() or platform.machine() or 'unknown CPU'
    fields = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(':')
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    model = fields.get('model name') or fields.get('Model') or platform.machine() or 'unknown CPU'
    flags = fields.get('flags', fields.get('Features', '')).split()
    if not flags:
        return model
    return f"{model}, AVX-512 {'yes' if any(f.startswith('avx512') for f in flags) else 'no'}"


def host_description() -> str:
    """``host: <CPU>, <n> CPUs usable`` for the header of a benchmark's output."""
    try:
        with open(CPUINFO) as f:
            cpuinfo = f.read()
    except OSError:
        cpuinfo = None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    return f'host: {describe_cpu(cpuinfo)}, {usable} CPUs usable'
