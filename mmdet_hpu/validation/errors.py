"""The error type of every pre-flight check."""
from mmdet_hpu.errors import UserError


class ValidationError(UserError):
    """Bad input found before training or testing starts; the message says how to fix it."""
