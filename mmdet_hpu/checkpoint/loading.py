"""Safe checkpoint loading for torch >= 2.6 (``weights_only=True`` by default).

:func:`load_checkpoint_safe` loads with ``weights_only=True`` and allow-lists
exactly the extra types mmcv/mmdet checkpoints hold (:mod:`.allowlist`). Any
other pickled object makes it fail with :class:`UnsafeCheckpointError`, naming
the object and the opt-in. Trusting legacy files (``weights_only=False``, which
can run arbitrary code stored in the file) needs an explicit opt-in, per call or
process-wide with :func:`set_trust_legacy_checkpoints` (``--trust-legacy-checkpoint``).
"""
import logging
import os.path as osp
import pickle
import re

import torch

from .allowlist import safe_globals
from .checksum import verify_checksum
from .errors import CheckpointReadError, UnsafeCheckpointError
from .zip_crc import verify_zip_crcs

logger = logging.getLogger(__name__)

OPT_IN_FLAG = '--trust-legacy-checkpoint'
_settings = {'trust_legacy': False}
_UNSAFE_PATTERNS = (re.compile(r'GLOBAL (\S+) was not an allowed global'),
                    re.compile(r'but got <class \'([^\']+)\'>'))


def set_trust_legacy_checkpoints(trust=True):
    """Process-wide opt-in to unpickle checkpoints with ``weights_only=False``.

    Only for files from a trusted source: unpickling can execute arbitrary code.
    """
    _settings['trust_legacy'] = bool(trust)


def trust_legacy_checkpoints():
    """Whether :func:`set_trust_legacy_checkpoints` turned the opt-in on."""
    return _settings['trust_legacy']


def _weights_only_load(filename, map_location):
    ser = torch.serialization
    if hasattr(ser, 'safe_globals'):  # torch >= 2.5: scoped to this call
        with ser.safe_globals(safe_globals()):
            return torch.load(filename, map_location=map_location, weights_only=True)
    if hasattr(ser, 'add_safe_globals'):  # torch 2.4: process-wide, additive
        ser.add_safe_globals(safe_globals())
    return torch.load(filename, map_location=map_location, weights_only=True)


def _unsafe_names(filename, err):
    """Qualified names of the globals that made the safe load fail."""
    names = []
    if hasattr(torch.serialization, 'get_unsafe_globals_in_checkpoint'):
        try:
            allowed = {e[1] if isinstance(e, tuple) else f'{e.__module__}.{e.__qualname__}'
                       for e in safe_globals()}
            names = [n for n in torch.serialization.get_unsafe_globals_in_checkpoint(filename)
                     if n not in allowed]
        except Exception:  # an old or odd file format: fall back to the message
            names = []
    for pattern in _UNSAFE_PATTERNS:
        names += [n for n in pattern.findall(str(err)) if n not in names]
    return names


def _torch_detail(err):
    """The part of torch's weights_only message that says what was rejected."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if 'WeightsUnpickler error:' in line:
            rest = line.split('WeightsUnpickler error:', 1)[1].strip()
            return (rest or ' '.join(lines[i + 1:i + 2]))[:200]
    return (lines[0] if lines else type(err).__name__)[:200]


def _unsafe_error(filename, names):
    return UnsafeCheckpointError(
        f'checkpoint {filename!r} contains pickled objects that safe loading does not allow: '
        f'{", ".join(names)}. mmcv/mmdet checkpoints hold only tensors, plain Python values '
        'and numpy numbers, so this file was written by other code or tampered with; '
        'unpickling it without the safety checks can execute arbitrary code. Only if you '
        f'trust where it came from (e.g. you wrote it yourself), rerun with {OPT_IN_FLAG}.')


def _read_error(filename, err, legacy_hint=False):
    detail = _torch_detail(err) if isinstance(err, pickle.UnpicklingError) else \
        (str(err).splitlines() or [''])[0][:200]
    hint = (f' If it is a trusted checkpoint in an old format, {OPT_IN_FLAG} loads it without '
            'the safety checks.') if legacy_hint else ''
    return CheckpointReadError(
        f'checkpoint {filename!r} could not be read ({type(err).__name__}: {detail}). The file '
        'is truncated, corrupt or not a PyTorch checkpoint; use an earlier checkpoint '
        f'(epoch_*.pth) from the same work dir.{hint}')


def _display(filename, source):
    """How messages name the file: the URL/scheme path and, for downloads, the local copy."""
    return filename if not source or source == filename else f'{source} (local copy {filename})'


def load_checkpoint_safe(filename, map_location='cpu', allow_unsafe=None, source=None):
    """Load a checkpoint without running code stored in it.

    Args:
        filename (str): Local path of the checkpoint.
        map_location: As for ``torch.load``. Defaults to ``'cpu'``.
        allow_unsafe (bool, optional): Load with ``weights_only=False`` (trusted files
            only, arbitrary code execution otherwise). None uses the process-wide
            setting of :func:`set_trust_legacy_checkpoints` (off by default).
        source (str, optional): Where the file came from (a URL or ``scheme://name``
            downloaded to ``filename``), for the messages.

    Returns:
        dict: The checkpoint.

    Raises:
        UnsafeCheckpointError: The file holds objects outside the allow-list.
        CheckpointReadError: The file is missing, truncated or corrupt (whatever
            exception torch raises on bad bytes becomes this error), an entry of the zip
            archive does not match its stored CRC-32 (:mod:`.zip_crc`), or its content does
            not match the checksum recorded by :func:`~.saving.build_checkpoint`.
    """
    filename = osp.expanduser(filename)
    shown = _display(filename, source)
    if not osp.isfile(filename):
        raise CheckpointReadError(f'checkpoint not found: {shown!r}. Check the path '
                                  '(--resume-from, load_from or the test checkpoint).')
    if allow_unsafe is None:
        allow_unsafe = trust_legacy_checkpoints()
    verify_zip_crcs(filename, shown)
    return verify_checksum(_load(filename, shown, map_location, allow_unsafe), shown)


def _load(filename, shown, map_location, allow_unsafe):
    """``torch.load`` safely (or not, when ``allow_unsafe``), errors as ``CheckpointError``."""
    try:
        if allow_unsafe:
            logger.warning('loading %s with weights_only=False (%s): any code pickled in the '
                           'file runs now; only do this for files you trust', shown,
                           OPT_IN_FLAG)
            return torch.load(filename, map_location=map_location, weights_only=False)
        return _weights_only_load(filename, map_location)
    except pickle.UnpicklingError as err:
        names = _unsafe_names(filename, err)
        if names:
            raise _unsafe_error(shown, names) from None
        raise _read_error(shown, err, legacy_hint=not allow_unsafe) from None
    except Exception as err:  # bad bytes make torch/pickle raise almost anything
        raise _read_error(shown, err) from None


def load_from_local(filename, map_location=None):
    """mmcv ``CheckpointLoader`` scheme for local paths (``prefixes=''``).

    Named like mmcv's function: mmcv logs ``load checkpoint from {name[10:]} path: ...``,
    so the line keeps reading ``local path``.
    """
    return load_checkpoint_safe(filename, map_location=map_location)


def register_mmcv_loader():
    """Route every mmcv checkpoint scheme through :func:`load_checkpoint_safe`.

    mmcv's ``load_from_local`` calls ``torch.load`` without ``weights_only`` (under
    torch >= 2.6 it rejects numpy values in ``meta``, under older torch it unpickles
    anything), and its URL schemes unpickle with ``weights_only=False``. See
    :mod:`.remote` for the schemes.
    """
    from .remote import register_mmcv_loaders

    register_mmcv_loaders()


def load_weights(model, checkpoint, strict=False, logger=None):
    """Load a checkpoint's weights into ``model`` as ``mmcv.runner.load_checkpoint`` does.

    Strips a ``module.`` prefix and keeps the state dict's ``_metadata``.

    Returns:
        dict: ``checkpoint``.
    """
    from collections import OrderedDict

    from mmcv.runner.checkpoint import load_state_dict

    if not isinstance(checkpoint, dict):
        raise CheckpointReadError(f'no state_dict in the checkpoint ({type(checkpoint)})')
    state_dict = checkpoint.get('state_dict', checkpoint)
    metadata = getattr(state_dict, '_metadata', OrderedDict())
    state_dict = OrderedDict((re.sub(r'^module\.', '', k), v) for k, v in state_dict.items())
    state_dict._metadata = metadata
    load_state_dict(model, state_dict, strict, logger)
    return checkpoint
