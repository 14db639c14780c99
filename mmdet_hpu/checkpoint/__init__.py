"""Crash-safe checkpoint saving and safe (``weights_only``) loading.

* :func:`save_checkpoint_atomic`: ``mmcv.runner.save_checkpoint`` content, optimizer
  state on the host, written through temp file + ``fsync`` + ``os.replace``.
* :func:`load_checkpoint_safe`: ``torch.load(weights_only=True)`` with the types of
  :mod:`.allowlist`; :func:`set_trust_legacy_checkpoints` is the explicit opt-in.
  :mod:`.remote` routes every mmcv scheme (URLs, hub cache, ``open-mmlab://``...)
  through it; :func:`load_checkpoint_any` loads a path or any scheme.
* :class:`HPUCheckpointHook` (registered in mmcv ``HOOKS``) and
  :func:`use_atomic_checkpoints` to switch a config to it.
"""
from .allowlist import safe_globals
from .checksum import add_checksum, verify_checksum
from .errors import (
    CheckpointError,
    CheckpointReadError,
    CheckpointWriteError,
    UnsafeCheckpointError,
)
from .hook import HPUCheckpointHook, use_atomic_checkpoints
from .loading import (
    OPT_IN_FLAG,
    load_checkpoint_safe,
    load_weights,
    register_mmcv_loader,
    set_trust_legacy_checkpoints,
    trust_legacy_checkpoints,
)
from .remote import cached_download, load_checkpoint_any
from .saving import (
    atomic_torch_save,
    atomic_write,
    build_checkpoint,
    optimizer_state,
    remove_partial_files,
    save_checkpoint_atomic,
    tensors_to_cpu,
    update_latest,
)

__all__ = [
    'OPT_IN_FLAG', 'CheckpointError', 'CheckpointReadError', 'CheckpointWriteError',
    'HPUCheckpointHook', 'add_checksum', 'verify_checksum',
    'UnsafeCheckpointError', 'atomic_torch_save', 'atomic_write', 'build_checkpoint',
    'cached_download', 'load_checkpoint_any',
    'load_checkpoint_safe', 'load_weights', 'optimizer_state', 'register_mmcv_loader',
    'remove_partial_files', 'safe_globals', 'save_checkpoint_atomic',
    'set_trust_legacy_checkpoints', 'tensors_to_cpu', 'trust_legacy_checkpoints',
    'update_latest', 'use_atomic_checkpoints'
]
