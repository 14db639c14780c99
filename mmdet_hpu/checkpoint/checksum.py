"""A checksum of the state in every checkpoint this package writes, verified on load.

torch's zip reader checks no CRC, so a flipped bit in tensor data loads silently
and ``--auto-resume`` would continue from it. :func:`add_checksum` records, under
:data:`KEY`, a CRC-32 of each part (``state_dict``, ``optimizer``, ``meta``) computed
over its values (tensor bytes with dtype and shape, numbers, strings, containers);
:func:`verify_checksum` recomputes it after loading and raises
:class:`~.errors.CheckpointReadError` on a mismatch. Parts removed later (e.g.
``optimizer`` by mmdet's ``publish_model``) are not checked, but a missing
``state_dict``/``meta`` or an entry that was not written is a mismatch; files without the key
(stock mmcv, older mmdet-hpu) load as before.
"""
import zlib

import numpy as np
import torch

from .errors import CheckpointReadError

KEY = 'mmdet_hpu_checksum'
PARTS = ('state_dict', 'optimizer', 'meta')
REQUIRED = ('state_dict', 'meta')
VERSION = 1


def _tensor_bytes(tensor):
    tensor = tensor.detach()
    if tensor.device.type != 'cpu':
        tensor = tensor.cpu()  # load time only: verification reads the values on the host
    flat = tensor.contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy()) if flat.numel() else b''


def _update(crc, obj):
    """CRC-32 of ``crc`` extended by a canonical encoding of ``obj``."""
    if isinstance(obj, torch.Tensor):
        crc = zlib.crc32(f'T{obj.dtype}{tuple(obj.shape)}'.encode(), crc)
        return zlib.crc32(_tensor_bytes(obj), crc)
    if isinstance(obj, np.ndarray):
        crc = zlib.crc32(f'A{obj.dtype}{obj.shape}'.encode(), crc)
        return zlib.crc32(np.ascontiguousarray(obj).tobytes(), crc)
    if isinstance(obj, dict):
        crc = zlib.crc32(f'D{len(obj)}'.encode(), crc)
        for key, value in obj.items():
            crc = _update(_update(crc, key), value)
        return crc
    if isinstance(obj, (list, tuple)):
        crc = zlib.crc32(f'L{len(obj)}'.encode(), crc)
        for value in obj:
            crc = _update(crc, value)
        return crc
    if obj is None or isinstance(obj, (bool, int, float, str, bytes, np.generic, torch.dtype,
                                       torch.Size)):
        return zlib.crc32(f'{type(obj).__name__}:{obj!r}'.encode(), crc)
    return zlib.crc32(f'O{type(obj).__qualname__}'.encode(), crc)  # repr may hold addresses


def part_checksums(checkpoint):
    """``{part: crc32}`` for the parts of :data:`PARTS` that ``checkpoint`` holds."""
    return {part: _update(0, checkpoint[part]) for part in PARTS if part in checkpoint}


def add_checksum(checkpoint):
    """Record the checksums in ``checkpoint`` (in place) and return it."""
    checkpoint[KEY] = dict(version=VERSION, algorithm='crc32', parts=part_checksums(checkpoint))
    return checkpoint


def verify_checksum(checkpoint, shown):
    """Check and remove the recorded checksum of a loaded checkpoint.

    Args:
        checkpoint: What ``torch.load`` returned (non-dicts are returned unchanged).
        shown (str): How messages name the file.

    Returns:
        The checkpoint without :data:`KEY` (a re-saved copy carries no stale checksum).

    Raises:
        CheckpointReadError: A part's content differs from what was written.
    """
    if not isinstance(checkpoint, dict) or KEY not in checkpoint:
        return checkpoint
    record = checkpoint.pop(KEY)
    expected = record.get('parts') if isinstance(record, dict) else None
    if not isinstance(expected, dict) or record.get('version') != VERSION:
        return checkpoint  # a future format: nothing we can verify
    actual = part_checksums({k: v for k, v in checkpoint.items() if k in expected})
    changed = [part for part, crc in actual.items() if crc != expected[part]]
    # A corrupt key name hides a part (pickle shares the name with the record): the parts
    # no tool removes must be there, and nothing else may be.
    changed += [f'{part} (missing)' for part in REQUIRED if part not in checkpoint]
    changed += [f'{key!r} (not written by mmdet-hpu)' for key in set(checkpoint) | set(expected)
                if key not in PARTS]
    if changed:
        raise CheckpointReadError(
            f'checkpoint {shown!r} is corrupt: the checksum of its {" and ".join(changed)} '
            'recorded when it was written does not match its content (bytes changed on disk '
            'or in a copy). Use an earlier checkpoint (epoch_*.pth) from the same work dir. '
            f"If you edited the file on purpose, delete its '{KEY}' entry.")
    return checkpoint


__all__ = ['KEY', 'add_checksum', 'part_checksums', 'verify_checksum']
