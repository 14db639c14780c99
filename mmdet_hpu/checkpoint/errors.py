"""Errors raised while reading checkpoints; the CLI prints them without a traceback."""
from mmdet_hpu.errors import UserError


class CheckpointError(UserError):
    """A checkpoint that cannot be used; the message says why and what to do."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint holds pickled objects that safe loading does not allow."""


class CheckpointReadError(CheckpointError):
    """A checkpoint file is missing, truncated or not a checkpoint at all."""


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written (e.g. the disk is full); nothing was replaced."""
