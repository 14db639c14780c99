"""Tools that find HPU-hostile code: the op audit (``mmdet-hpu-audit``) and the benchmark.

Nothing here is imported by ``import mmdet_hpu``; import the submodules explicitly.
"""
from .op_audit import KINDS, OpAudit, PhaseStats, classify

__all__ = ['KINDS', 'OpAudit', 'PhaseStats', 'classify']
