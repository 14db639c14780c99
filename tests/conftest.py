"""Shared pytest fixtures and markers for mmdet-hpu.

* ``fake_habana``: runs the test against the fake Habana bridge in ``tests/fake_habana``
  (see the docstring of ``tests/fake_habana/habana_frameworks/__init__.py``) and yields
  its call recorder.
* ``speedups``: runs the test twice, with the CPU-only tricks of
  ``mmdet_hpu.models.utils.cpu_speedups`` (``'cpu path'``) and without them (``'device path'``,
  the path HPU and CUDA tensors take); yields which.
* ``@pytest.mark.hpu``: the test needs a real Gaudi; skipped elsewhere.
"""
import importlib.util
import os
import sys
from pathlib import Path

import pytest
from dispatched_dtypes import take_device_path

FAKE_HABANA_ROOT = Path(__file__).parent / 'fake_habana'
HABANA_ENV_VARS = ('PT_HPU_LAZY_MODE', 'PT_HPU_AUTOCAST_LOWER_PRECISION_OPS_LIST',
                   'PT_HPU_AUTOCAST_FP32_OPS_LIST', 'LOWER_LIST', 'FP32_LIST')


def _real_gaudi_present():
    """A real (not fake) bridge is installed and reports a device."""
    if importlib.util.find_spec('habana_frameworks') is None:
        return False
    from mmdet_hpu import device

    return device.is_hpu_available()


def pytest_configure(config):
    """In a pytest-xdist worker (``make test`` runs one per core): one thread per worker.

    Two workers with torch's default of one thread per core would oversubscribe the cores;
    subprocesses started by tests inherit ``OMP_NUM_THREADS`` too.
    """
    if os.environ.get('PYTEST_XDIST_WORKER'):
        import torch

        os.environ['OMP_NUM_THREADS'] = '1'
        torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    hpu_items = [item for item in items if 'hpu' in item.keywords]
    if not hpu_items or _real_gaudi_present():
        return
    skip = pytest.mark.skip(reason='requires an Intel Gaudi device (habana_frameworks)')
    for item in hpu_items:
        item.add_marker(skip)


def _purge_habana_modules():
    for name in [n for n in sys.modules if n == 'habana_frameworks'
                 or n.startswith('habana_frameworks.')]:
        del sys.modules[name]


@pytest.fixture
def fake_habana(monkeypatch):
    """Activate the fake bridge for one test and yield its ``Recorder``.

    Puts ``tests/fake_habana`` first on ``sys.path``, removes any imported
    ``habana_frameworks`` modules and the bridge environment variables, and resets
    ``mmdet_hpu.device`` caches; everything is restored afterwards. The fake is not
    imported yet when the test starts, so a test can set the execution mode first.
    """
    from mmdet_hpu import device

    saved_env = {var: os.environ.pop(var, None) for var in HABANA_ENV_VARS}
    monkeypatch.syspath_prepend(str(FAKE_HABANA_ROOT))
    from fake_habana_recorder import RECORDER

    _purge_habana_modules()
    device.reset_state()
    RECORDER.clear()
    yield RECORDER
    _purge_habana_modules()
    device.reset_state()
    RECORDER.clear()
    for var, value in saved_env.items():
        os.environ.pop(var, None)
        if value is not None:
            os.environ[var] = value


@pytest.fixture(autouse=True)
def _fresh_mmcv_loggers():
    """Forget the loggers mmcv configured during a test.

    ``mmcv.utils.get_logger`` attaches a ``StreamHandler`` to the stream ``sys.stderr`` is at
    that moment (pytest's capture of one test) and never again; a later test would then log
    into a closed stream (``--- Logging error ---`` on stderr). Each test starts afresh.
    """
    yield
    import logging

    from mmcv.utils import logging as mmcv_logging

    for name in list(mmcv_logging.logger_initialized):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
    mmcv_logging.logger_initialized.clear()


@pytest.fixture(params=['cpu path', 'device path'])
def speedups(request, monkeypatch):
    """Run a test with the CPU-only tricks (``cpu_speedups``) and without them, the path every
    other device (HPU, CUDA) takes."""
    if request.param == 'device path':
        take_device_path(monkeypatch)
    return request.param
