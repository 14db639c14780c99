import os

from mmdet_hpu.analysis import host

XEON = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu vme sse2 avx2 avx512f avx512dq
processor\t: 1
model name\t: Another CPU
flags\t\t: fpu
"""
EPYC_NO_AVX512 = 'model name\t: AMD EPYC 7B12\nflags\t\t: fpu sse2 avx avx2 fma\n'
ARM = 'processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes\nCPU part\t: 0xd0c\n'


def test_describe_cpu_names_the_model_and_avx512_of_the_first_cpu():
    assert host.describe_cpu(XEON) == 'Intel(R) Xeon(R) Processor, AVX-512 yes'
    assert host.describe_cpu(EPYC_NO_AVX512) == 'AMD EPYC 7B12, AVX-512 no'


def test_describe_cpu_without_a_model_name_or_cpuinfo_still_says_something(monkeypatch):
    monkeypatch.setattr(host.platform, 'machine', lambda: 'aarch64')
    monkeypatch.setattr(host.platform, 'processor', lambda: '')
    assert host.describe_cpu(ARM) == 'aarch64, AVX-512 no'
    assert host.describe_cpu(None) == 'aarch64'
    assert host.describe_cpu('garbage without colons') == 'aarch64'


def test_host_description_counts_the_cpus_this_process_may_use(monkeypatch, tmp_path):
    cpuinfo = tmp_path / 'cpuinfo'
    cpuinfo.write_text(EPYC_NO_AVX512)
    monkeypatch.setattr(host, 'CPUINFO', str(cpuinfo))
    usable = len(os.sched_getaffinity(0))
    assert host.host_description() == f'host: AMD EPYC 7B12, AVX-512 no, {usable} CPUs usable'
    monkeypatch.setattr(host, 'CPUINFO', str(tmp_path / 'missing'))
    assert host.host_description().startswith('host: ')
