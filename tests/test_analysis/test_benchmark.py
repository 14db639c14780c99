"""Smoke test of the benchmark (tiny sizes: it checks the plumbing, not the speed)."""
import importlib
import json
import os
import os.path as osp
import subprocess
import sys

import mmcv
import pytest
import torch

import mmdet_hpu  # noqa: F401
from mmdet_hpu.analysis import benchmark, synthetic
from mmdet_hpu.analysis.host import host_description

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(REPO, 'configs', 'demo', 'yolov3_mobilenetv2-half_128_shapes.py')


def test_synthetic_predictions_are_dense_or_sparse():
    cfg = mmcv.Config.fromfile(DEMO)
    head = synthetic.build_model_pair(cfg)[0].bbox_head
    dense = benchmark.candidate_stats(head, benchmark.synthetic_pred_maps(head, 2, (128, 128),
                                                                          'dense'))
    sparse = benchmark.candidate_stats(head, benchmark.synthetic_pred_maps(head, 2, (128, 128),
                                                                           'sparse'))
    crowded = benchmark.candidate_stats(
        head, benchmark.synthetic_pred_maps(head, 2, (128, 128), 'crowded'))
    assert dense['anchors'] == sparse['anchors'] == 3 * (16 + 64 + 256)
    assert dense['conf_pass'] > 0.99 * dense['anchors']
    assert dense['pairs_pass'] < 2
    assert crowded['conf_pass'] > 0.99 * dense['anchors']
    assert crowded['pairs_pass'] > 0.02 * crowded['anchors'] * head.num_classes
    assert sparse['conf_pass'] == benchmark.SPARSE_OBJECTS
    assert benchmark.SPARSE_OBJECTS <= sparse['pairs_pass'] < 2 * benchmark.SPARSE_OBJECTS


def test_synthetic_maps_use_the_heads_anchor_order():
    cfg = mmcv.Config.fromfile(DEMO)
    head = synthetic.build_model_pair(cfg)[0].bbox_head
    maps = benchmark.synthetic_pred_maps(head, 1, (128, 128), 'sparse', seed=1)
    flat = torch.cat([m.permute(0, 2, 3, 1).reshape(1, -1, head.num_attrib) for m in maps], 1)
    assert int((flat[0, :, 4] == 3.0).sum()) == benchmark.SPARSE_OBJECTS


def test_run_benchmark_tiny():
    cfg = mmcv.Config.fromfile(DEMO)
    report = benchmark.run_benchmark(cfg, batch_size=2, test_batch_size=2, img_size=64, reps=1,
                                     warmup=0, model_reps=1, post_batch_sizes=(1, 3),
                                     post_reps=1)
    assert [(c['kind'], c['batch_size']) for c in report['post_scaling']] == [
        (kind, size) for kind in benchmark.POST_KINDS for size in (1, 3)]
    for case in ('loss', 'post_dense', 'post_crowded', 'post_sparse'):
        assert report[case]['stock_ms'] > 0 and report[case]['hpu_ms'] > 0
        assert report[case]['speedup'] > 0
    assert report['model']['configured']['train_img_s'] > 0
    assert report['model']['stock']['infer_img_s'] > 0
    text = benchmark.format_report(report)
    assert 'targets+loss+backward' in text and 'whole model' in text
    assert 'crowded  batch   3' in text


def test_tools_benchmark_help(tmp_path):
    out = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'benchmark.py'), '--help'],
                         cwd=str(tmp_path), capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert out.returncode == 0, out.stderr
    assert '--device' in out.stdout and '--no-model' in out.stdout


def test_time_pair_ms_alternates_the_two_functions():
    order = []
    times_a, times_b = benchmark.time_pair_ms(lambda: order.append('a'), lambda: order.append('b'),
                                              torch.device('cpu'), reps=3, warmup=1)
    assert order == ['a', 'b'] * 4
    assert len(times_a) == len(times_b) == 3 and min(times_a + times_b) >= 0


def test_speedup_runs_measure_separately_and_the_row_gives_each_and_the_median():
    calls = []
    runs = benchmark.speedup_runs(lambda: calls.append('stock'), lambda: calls.append('hpu'),
                                  torch.device('cpu'), runs=3, reps=2, warmup=1)
    assert len(runs) == 3 and calls == ['stock', 'hpu'] * 9  # (1 warm-up + 2) per run
    row = benchmark.speedup_row('case', [(30.0, 10.0), (20.0, 10.0), (40.0, 10.0)])
    assert row.split()[1:4] == ['30.0', '10.0', '3.00x']  # medians of times and of ratios
    assert row.endswith('3.00, 2.00, 4.00')
    row = benchmark.speedup_row('case', [(10.0, 5.0), (40.0, 10.0)])  # even count: the mean
    assert row.split()[1:4] == ['25.0', '7.5', '3.00x']


def _tool(name):
    """A module of ``tools/`` (not a package), imported by name."""
    sys.path.insert(0, osp.join(REPO, 'tools'))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


def _anchor_bench():
    return _tool('benchmark_anchor_heads')


def test_dense_head_benchmark_cases_have_the_stated_statistics():
    bench = _tool('benchmark_dense_heads')
    _, hpu = bench.build_pair('fcos')
    passing = {}
    for kind in ('fresh', 'sparse', 'crowded'):
        cls_scores = bench.head_outputs(hpu, 2, 128, kind)[0]
        passing[kind] = sum(int((c.sigmoid() > hpu.test_cfg.score_thr).sum()) for c in cls_scores)
    num_levels = len(hpu.prior_generator.strides)
    assert passing['fresh'] == 0
    assert 0 < passing['sparse'] <= 2 * num_levels * bench.CONFIDENT_POINTS
    assert passing['crowded'] > 2 * passing['sparse']


def test_anchor_head_loss_runs_time_one_step_each():
    """Each timed run starts without gradient, as a training step: nothing accumulates."""
    bench = _anchor_bench()
    cfg = mmcv.Config.fromfile(osp.join(REPO, 'configs', 'ssd', 'ssd300_coco.py'))
    stock, hpu = bench.build_pair(cfg)
    metas = bench.img_metas(2, 96)
    boxes, labels = bench.ground_truth(2, 96, 3, hpu.num_classes)
    outputs = bench.head_outputs(hpu, 2, 96, cls_bias=-4.0)
    for head in (stock, hpu):
        run = bench.loss_fn(head, outputs, boxes, labels, metas)
        run()
        once = [level.grad.clone() for maps in outputs for level in maps]
        run()
        again = [level.grad for maps in outputs for level in maps]
        for first, second in zip(once, again):
            torch.testing.assert_close(second, first)


def _speedups_of(out, case):
    """The per-run speed-ups printed after ``case``'s median."""
    line = next(line for line in out.splitlines() if line.startswith(case))
    return line.split('x  ', 1)[1].split(', ')


def test_anchor_head_benchmark_prints_every_case(capsys):
    bench = _anchor_bench()
    bench.main([osp.join(REPO, 'configs', 'ssd', 'ssd300_coco.py'), '--img-size', '96',
                '--batch-size', '1', '--num-gt', '2', '--reps', '1', '--warmup', '0',
                '--runs', '2'])
    out = capsys.readouterr().out
    assert out.splitlines()[0] == host_description()
    for case in ('targets + loss + backward', 'post-processing, sparse scores',
                 'post-processing, dense scores'):
        assert len(_speedups_of(out, case)) == 2


def test_anchor_head_benchmark_splits_the_hpu_step_by_phase(capsys):
    bench = _anchor_bench()
    bench.main([osp.join(REPO, 'configs', 'ssd', 'ssd300_coco.py'), '--img-size', '96',
                '--batch-size', '1', '--num-gt', '2', '--reps', '1', '--warmup', '0',
                '--phases', '2'])
    out = capsys.readouterr().out.split('HPUSSDHead targets + loss + backward by phase', 1)[1]
    rows = {line.rsplit(None, 2)[0].strip(): float(line.rsplit(None, 2)[1])
            for line in out.splitlines()[1:]}
    assert list(rows) == [*bench.PHASES['HPUSSDHead'], 'other (backward, loss glue)',
                          'whole step']
    assert all(ms > 0 for ms in rows.values())
    assert sum(ms for name, ms in rows.items() if name != 'whole step') == \
        pytest.approx(rows['whole step'], rel=0.5)  # medians of 2 steps: close, not equal


def test_dense_head_benchmark_prints_every_case(capsys):
    bench = _tool('benchmark_dense_heads')
    bench.main(['--heads', 'atss', '--img-size', '128', '--reps', '1', '--warmup', '0',
                '--runs', '2'])
    out = capsys.readouterr().out
    assert out.splitlines()[0] == host_description()
    for case in ('targets+loss+backward', 'post-processing fresh', 'post-processing sparse',
                 'post-processing crowded'):
        assert len(_speedups_of(out, f'atss {case}')) == 2


def test_dense_head_benchmark_profiles_the_chosen_post_processing(capsys):
    bench = _tool('benchmark_dense_heads')
    bench.main(['--heads', 'atss', '--img-size', '128', '--reps', '2', '--warmup', '0',
                '--profile-post', 'fresh'])
    out = capsys.readouterr().out.split('atss post-processing fresh, HPU, profiled over 2 calls',
                                        1)[1]
    ops = [line.split() for line in out.splitlines()[1:]]
    assert len(ops) == bench.PROFILED_OPS
    assert 'aten::topk' in [op[0] for op in ops]  # the fixed-size candidate selection
    assert all(op[2] == 'ms' and op[4] == 'calls' for op in ops)


def test_dense_head_benchmark_profiles_the_calls_of_the_chosen_kind(monkeypatch):
    """The profiled calls are those built from the chosen kind's head outputs."""
    bench = _tool('benchmark_dense_heads')
    kind_of_outputs, profiled = {}, []
    make_outputs, make_post = bench.head_outputs, bench.post_fn

    def head_outputs(head, batch_size, size, kind, seed=0):
        outs = make_outputs(head, batch_size, size, kind, seed)
        kind_of_outputs[id(outs)] = kind
        return outs

    def post_fn(head, outs, img_metas):
        call = make_post(head, outs, img_metas)
        call.kind = kind_of_outputs[id(outs)]
        return call

    monkeypatch.setattr(bench, 'head_outputs', head_outputs)
    monkeypatch.setattr(bench, 'post_fn', post_fn)
    monkeypatch.setattr(bench, 'speedup_runs', lambda *args: [(1.0, 1.0)])
    monkeypatch.setattr(bench, 'print_post_profile',
                        lambda name, kind, stock_fn, hpu_fn, calls:
                        profiled.append((kind, stock_fn.kind, hpu_fn.kind)))
    for kind in bench.POST_KINDS:
        bench.main(['--heads', 'atss', '--img-size', '64', '--profile-post', kind])
    assert profiled == [(kind, kind, kind) for kind in bench.POST_KINDS]


def test_yolov3_benchmark_reports_the_host_on_screen_and_in_json(monkeypatch, tmp_path, capsys):
    """``tools/benchmark.py`` (timing stubbed out): the host line is printed and in ``--json``."""
    sys.path.insert(0, osp.join(REPO, 'tools'))
    try:
        import benchmark as tool
    finally:
        sys.path.pop(0)
    monkeypatch.setattr(benchmark, 'run_benchmark', lambda cfg, **kwargs: {'rows': []})
    monkeypatch.setattr(benchmark, 'format_report', lambda report: 'REPORT')
    out_json = tmp_path / 'report.json'
    tool.main([osp.join(REPO, 'configs', 'yolov3', 'yolov3_d53_320_273e_coco.py'),
               '--json', str(out_json)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == host_description() and lines[2] == 'REPORT'
    assert json.loads(out_json.read_text())['host'] == host_description()
