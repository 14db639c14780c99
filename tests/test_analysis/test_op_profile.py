"""profile_ops counts the ops of a call (and not those of the untimed ``before``)."""
import torch

from mmdet_hpu.analysis.op_profile import format_ops, profile_ops


def test_counts_each_op_per_call_and_leaves_out_before():
    values = torch.randn(4, 1000)
    extra = torch.randn(4, 1000)

    def call():
        values.topk(10, dim=1)
        values.topk(20, dim=1)
        torch.add(values, 1.0)

    ops, top_level, total_ms = profile_ops(call, calls=3, before=lambda: torch.mul(extra, 2.0))
    by_name = {op.name: op for op in ops}
    assert by_name['aten::topk'].calls == 2.0 and by_name['aten::add'].calls == 1.0
    assert 'aten::mul' not in by_name  # the before call is outside the profiled range
    assert top_level == 3.0
    assert total_ms > 0 and all(op.self_ms >= 0 for op in ops)
    assert [op.self_ms for op in ops] == sorted((op.self_ms for op in ops), reverse=True)
    lines = format_ops(ops, limit=2)
    assert len(lines) == 2 and lines[0].split()[0] == ops[0].name
