"""mmdet's own ``analyze_logs.py plot_curve`` plots the whole run from our JSON log.

It takes the iterations per epoch from the second-to-last record of the first epoch,
assuming an end-of-epoch (``val``) record closes every epoch. Without validation there
was none, so a run with two log points per epoch was drawn up to half its length; the
throughput hook's end-of-epoch record now closes every epoch.
"""
import argparse
import glob
import importlib.util
import os.path as osp

import pytest
from runner_helpers import register_default_hooks, toy_batches, toy_runner


def _analyze_logs():
    import mmdet

    path = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'analysis_tools',
                    'analyze_logs.py')
    spec = importlib.util.spec_from_file_location('mmdet_analyze_logs', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_loss_curve_covers_the_whole_run(tmp_path, monkeypatch):
    pytest.importorskip('seaborn', reason="analyze_logs.py needs seaborn ('logs' extra)")
    runner = toy_runner(str(tmp_path), max_epochs=3)
    runner.meta = dict(exp_name='toy')  # first JSON line, as mmdet-hpu-train writes (skipped)
    register_default_hooks(runner, log_interval=2)  # 2 log points per 4-iteration epoch
    runner.run([toy_batches(4)], [('train', 1)])
    (json_log,) = glob.glob(str(tmp_path / '*.log.json'))

    tool = _analyze_logs()
    plotted = []
    monkeypatch.setattr(tool.plt, 'plot', lambda xs, ys, **kw: plotted.append((list(xs),
                                                                               list(ys))))
    args = argparse.Namespace(json_logs=[json_log], keys=['loss'], legend=None, backend='Agg',
                              style='dark', out=str(tmp_path / 'loss.png'), title=None,
                              eval_interval='1', start_epoch='1')
    tool.plot_curve(tool.load_json_logs([json_log]), args)
    ((xs, ys),) = plotted
    assert xs == [2, 4, 6, 8, 10, 12]  # every log point, up to the last iteration
    assert len(ys) == 6 and osp.isfile(tmp_path / 'loss.png')
