"""Data pipeline transforms registered in mmdet's ``PIPELINES``."""
from .pad_gt import HPUPadGT

__all__ = ['HPUPadGT']
