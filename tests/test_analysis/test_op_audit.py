"""OpAudit: classification of ops into host syncs, dynamic shapes and copies, per phase."""
import sys

import pytest
import torch
import torchvision
from mmcv.ops import batched_nms as mmcv_batched_nms
from mmcv.ops import nms as mmcv_nms

from mmdet_hpu.analysis.op_audit import D2H, DYNAMIC, H2D, KINDS, SYNC, OpAudit, total_counts


def _counts(**nonzero):
    return {kind: nonzero.get(kind, 0) for kind in KINDS}


def _boxes(num, seed=0):
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(num, 2, generator=gen) * 100
    wh = torch.rand(num, 2, generator=gen) * 30 + 1
    return torch.cat([xy, xy + wh], dim=1), torch.rand(num, generator=gen)


def test_each_kind_is_classified():
    x = torch.arange(6.0)
    audit = OpAudit()
    with audit.phase('sync'):
        x.sum().item()
        float(x.max())
    with audit.phase('dynamic'):
        torch.nonzero(x)
        x[x > 2]
        x[torch.tensor([0, 1, 1, 0, 0, 0], dtype=torch.uint8)]
        x.unique()
        torch.masked_select(x, x > 1)
        y = x.clone()
        y[x > 3] = 0.0
    with audit.phase('copies'):
        torch.tensor([1.0, 2.0])
        x.new_tensor([3.0])
        x.tolist()
        x.numpy()
    with audit.phase('static'):
        torch.where(x > 2, x, torch.zeros_like(x)).topk(2)
        x[torch.tensor([0, 2])]  # integer gather: static
    counts = {name: stats.counts() for name, stats in audit.phases.items()}
    assert counts['sync'] == _counts(sync=2)
    # The uint8 mask literal and the 0.0 written by index_put_ are host data (h2d).
    assert counts['dynamic'] == _counts(dynamic=6, h2d=2)
    assert counts['copies'] == _counts(h2d=2, d2h=2)
    assert counts['static'] == _counts(h2d=1)  # the index tensor literal


def test_offenders_point_at_the_calling_line():
    audit = OpAudit()
    x = torch.arange(4.0)
    with audit.phase('p'):
        for _ in range(3):
            x.sum().item()
    (offender,) = audit.phases['p'].offenders()
    assert offender['kind'] == SYNC and offender['count'] == 3
    assert offender['where'].startswith('tests/test_analysis/test_op_audit.py:') or \
        'test_op_audit.py:' in offender['where']
    assert '(test_offenders_point_at_the_calling_line)' in offender['where']


def test_phases_accumulate_and_do_not_nest():
    audit = OpAudit()
    x = torch.ones(3)
    for _ in range(2):
        with audit.phase('a'):
            x.sum().item()
    assert audit.phases['a'].counts()[SYNC] == 2
    with pytest.raises(RuntimeError, match='inside phase'):
        with audit.phase('b'):
            with audit.phase('c'):
                pass
    assert total_counts(list(audit.phases.values()))[SYNC] == 2


def test_nothing_is_recorded_outside_a_phase():
    audit = OpAudit()
    with audit.phase('a'):
        pass
    torch.ones(2).sum().item()
    assert audit.phases['a'].counts() == _counts()
    assert audit.phases['a'].num_ops == 0


def test_mmcv_nms_counts_once_and_restores_the_extension():
    nms_module = sys.modules['mmcv.ops.nms']  # mmcv.ops.nms is also the function's name
    ext = nms_module.ext_module
    boxes, scores = _boxes(50)
    audit = OpAudit()
    with audit.phase('nms'):
        mmcv_nms(boxes, scores, 0.5)
    stats = audit.phases['nms']
    assert stats.nms_calls == 1
    # One dynamic event for the kernel; its internal masked_select is not counted.
    assert [e.op for e in stats.events if e.kind == DYNAMIC] == ['mmcv.nms']
    assert nms_module.ext_module is ext


def test_mmcv_batched_nms_per_class_loop_counts_each_kernel_call():
    # Above split_thr mmcv loops over the classes: unique + nonzero + one kernel per class.
    boxes, scores = _boxes(300)
    idxs = torch.arange(300) % 3
    audit = OpAudit()
    with audit.phase('nms'):
        mmcv_batched_nms(boxes, scores, idxs, dict(type='nms', iou_threshold=0.5,
                                                   split_thr=100))
    stats = audit.phases['nms']
    assert stats.nms_calls == 3
    ops = [e.op for e in stats.events if e.kind == DYNAMIC]
    assert ops.count('mmcv.nms') == 3
    assert any('unique' in op for op in ops) and any('nonzero' in op for op in ops)


@pytest.mark.parametrize('num', [100, 2000])  # coordinate trick, per-class loop on CPU
def test_torchvision_batched_nms_counts_once(num):
    boxes, scores = _boxes(num)
    audit = OpAudit()
    with audit.phase('nms'):
        torchvision.ops.batched_nms(boxes, scores, torch.arange(num) % 5, 0.5)
        torchvision.ops.nms(boxes, scores, 0.5)
    stats = audit.phases['nms']
    assert stats.nms_calls == 2
    assert stats.counts() == _counts(dynamic=2)


def test_segments_around_a_single_nms_call():
    boxes, scores = _boxes(20)
    x = torch.arange(4.0)
    audit = OpAudit()
    with audit.phase('post'):
        x[x > 1]
        torchvision.ops.nms(boxes, scores, 0.5).tolist()
        x[x > 2]
    stats = audit.phases['post']
    assert stats.counts('pre_nms') == _counts(dynamic=1)
    assert stats.counts('nms') == _counts(dynamic=1)
    assert stats.counts('post_nms') == _counts(dynamic=1, d2h=1)
    assert stats.counts() == _counts(dynamic=3, d2h=1)
    with pytest.raises(ValueError, match='segment'):
        stats.counts('before')


def test_segments_of_per_image_nms_and_nms_loops():
    # Stock-like: filter + NMS per image; the filtering of every image is pre-NMS, and the
    # unique/nonzero loop inside mmcv's batched_nms belongs to NMS.
    audit = OpAudit()
    with audit.phase('post'):
        for img in range(3):
            boxes, scores = _boxes(300, seed=img)
            keep = scores > 0.1
            boxes, scores = boxes[keep], scores[keep]
            mmcv_batched_nms(boxes, scores, torch.arange(len(scores)) % 2,
                             dict(type='nms', iou_threshold=0.5, split_thr=10))
        scores.numpy()
    stats = audit.phases['post']
    assert stats.nms_calls == 6
    assert stats.counts('pre_nms') == _counts(dynamic=6)
    nms = stats.counts('nms')
    assert nms['dynamic'] > 6 and nms['sync'] == 0
    assert stats.counts('post_nms') == _counts(d2h=1)


def test_without_nms_everything_is_pre_nms():
    x = torch.arange(4.0)
    audit = OpAudit()
    with audit.phase('post'):
        x[x > 1].numpy()
    assert audit.phases['post'].counts('pre_nms') == _counts(dynamic=1, d2h=1)


def test_host_resident_tensors_are_not_syncs():
    param = torch.nn.Parameter(torch.randn(3))
    param.grad = torch.randn(3)
    optimizer = torch.optim.AdamW([param])
    optimizer.step()
    audit = OpAudit()
    audit.mark_host_tensors([state['step'] for state in optimizer.state.values()])
    with audit.phase('step'):
        optimizer.step()
        param.sum().item()
    stats = audit.phases['step']
    assert stats.host_scalar_reads >= 1
    assert stats.counts() == _counts(sync=1)


def test_cross_device_copies_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip('needs CUDA')
    x = torch.ones(3)
    audit = OpAudit()
    with audit.phase('p'):
        y = x.cuda()
        y.cpu()
    assert audit.phases['p'].counts() == _counts(h2d=1, d2h=1)


def test_kinds_are_the_documented_ones():
    assert KINDS == (SYNC, DYNAMIC, H2D, D2H) == ('sync', 'dynamic', 'h2d', 'd2h')
