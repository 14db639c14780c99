"""HPUProfilerHook records a few iterations with torch.profiler, then training goes on."""
import json
import os

import pytest
import torch
from runner_helpers import json_records, register_default_hooks, toy_batches, toy_runner

from mmdet_hpu import device
from mmdet_hpu.runner import HPUProfilerHook


def _run(tmp_path, hook, iters=5):
    runner = toy_runner(str(tmp_path), max_epochs=1)
    register_default_hooks(runner, log_interval=1)
    runner.register_hook(hook, priority='LOWEST')
    runner.run([toy_batches(iters)], [('train', 1)])
    return runner


def _trace_events(path):
    with open(path) as f:
        return json.load(f)['traceEvents']


def test_trace_written_and_training_continues(tmp_path):
    hook = HPUProfilerHook(steps=2, skip=1)
    runner = _run(tmp_path, hook, iters=5)
    assert runner.iter == 5  # all iterations ran, after the recorded ones too
    assert [r['iter'] for r in json_records(str(tmp_path), 'train')] == [1, 2, 3, 4, 5]
    trace = tmp_path / 'profile' / 'trace_rank0.json'
    assert hook.trace_path == str(trace) and trace.is_file()
    names = {event.get('name') for event in _trace_events(trace)}
    assert 'aten::linear' in names and any('backward' in str(n).lower() for n in names)
    table = (tmp_path / 'profile' / 'ops_rank0.txt').read_text()
    assert 'aten::' in table


def test_recording_covers_exactly_the_requested_iterations(tmp_path, monkeypatch):
    calls = []
    real_profile = torch.profiler.profile

    class Spy(real_profile):
        def start(self):
            calls.append(('start', runner_ref[0].iter))
            super().start()

        def stop(self):
            calls.append(('stop', runner_ref[0].iter))
            super().stop()

    runner_ref = []
    monkeypatch.setattr(torch.profiler, 'profile', Spy)
    runner = toy_runner(str(tmp_path), max_epochs=1)
    runner_ref.append(runner)
    register_default_hooks(runner, log_interval=1)
    runner.register_hook(HPUProfilerHook(steps=2, skip=2), priority='LOWEST')
    runner.run([toy_batches(6)], [('train', 1)])
    # Starts before iteration 3 (runner.iter == 2), stops after iteration 4 (iter still 3).
    assert calls == [('start', 2), ('stop', 3)]


def test_short_run_writes_what_it_recorded(tmp_path):
    hook = HPUProfilerHook(steps=10, skip=1)
    _run(tmp_path, hook, iters=3)
    assert os.path.isfile(hook.trace_path)


def test_activities_come_from_the_device_module(tmp_path, monkeypatch):
    asked = []

    def activities(dev):
        asked.append(torch.device(dev))
        return [torch.profiler.ProfilerActivity.CPU]

    monkeypatch.setattr(device, 'profiler_activities', activities)
    _run(tmp_path, HPUProfilerHook(steps=1, skip=0), iters=2)
    assert asked == [torch.device('cpu')]


def test_hpu_activities_load_the_bridge(fake_habana):
    from torch.profiler import ProfilerActivity

    assert device.profiler_activities('cpu') == [ProfilerActivity.CPU]
    if hasattr(ProfilerActivity, 'HPU'):  # torch >= 2.7
        assert device.profiler_activities('hpu') == [ProfilerActivity.CPU, ProfilerActivity.HPU]
    else:  # torch 2.6 from PyPI: a clear error, not an AttributeError
        with pytest.raises(RuntimeError, match='has no ProfilerActivity.HPU'):
            device.profiler_activities('hpu')
    assert 'habana_frameworks.torch.core' in __import__('sys').modules


@pytest.mark.parametrize('kwargs', [dict(steps=0), dict(steps=1, skip=-1)])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        HPUProfilerHook(**kwargs)
