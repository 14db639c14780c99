"""Host reads per training iteration of a real tiny YOLOv3: ours vs stock mmdet.

Ours (``HPUYOLOV3`` + ``HPUYOLOV3Head`` + ``HPUEpochBasedRunner`` + ``HPUOptimizerHook``
with grad clipping): **0** reads outside the log interval and exactly **1** at it (the
``DeviceLogBuffer.average`` ``tolist()``). ``tools/count_host_reads.py`` prints the table.
"""
import pytest
import torch
from runner_helpers import measure_host_reads

from mmdet_hpu.runner.host_reads import HostReadCounter

NONE = {'scalar': 0, 'bulk': 0, 'dynamic': 0}
LOG_BUFFER_READ = {'scalar': 0, 'bulk': 1, 'dynamic': 0}


def test_counter_kinds():
    x = torch.tensor([0.0, 2.0])
    with HostReadCounter() as reads:
        x[1].item()
        bool(x[0] > 1)
        x.tolist()
        x[x > 1]
        torch.nonzero(x)
    assert reads.snapshot() == {'scalar': 2, 'bulk': 1, 'dynamic': 2}


def test_ours_reads_host_only_at_log_interval(tmp_path):
    per_iter = measure_host_reads(hpu=True, work_dir=str(tmp_path), iters=4, log_interval=2)
    assert per_iter == [NONE, LOG_BUFFER_READ, NONE, LOG_BUFFER_READ]


@pytest.mark.slow
def test_stock_reads_host_every_iteration(tmp_path):
    per_iter = measure_host_reads(hpu=False, work_dir=str(tmp_path), iters=2, log_interval=2)
    for reads in per_iter:
        # 5 loss .item() + float(grad_norm) + 3 `torch.max(mask) > 1` + per-GT assigner reads
        assert reads['scalar'] >= 9 and reads['dynamic'] > 0
