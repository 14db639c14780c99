"""Fake ``habana_frameworks.torch.hpu``: one CPU-backed device, recorded calls."""
from fake_habana_recorder import RECORDER

from .. import core  # noqa: F401  (as in the real bridge, the core is loaded first)

#: Read by ``mmdet_hpu.device`` to run "HPU" tensors on this host device.
HOST_BACKING_DEVICE = 'cpu'

_state = {'device': 0, 'peak': 0}


def is_available():
    return True


def device_count():
    return 1


def current_device():
    return _state['device']


def set_device(device):
    RECORDER.record('hpu.set_device', device=device)
    _state['device'] = int(getattr(device, 'index', device) or 0)


def synchronize():
    RECORDER.record('hpu.synchronize')


def max_memory_allocated(device=None):
    RECORDER.record('hpu.max_memory_allocated')
    return _state['peak']


def reset_peak_memory_stats(device=None):
    RECORDER.record('hpu.reset_peak_memory_stats')
    _state['peak'] = 0
