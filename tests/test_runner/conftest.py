"""Fixtures of the runner tests."""
import logging
import time

import pytest


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    """Skip the runners' fixed sleeps (2 s per epoch, 1 s per run)."""
    monkeypatch.setattr(time, 'sleep', lambda seconds: None)


@pytest.fixture
def runner_log(caplog):
    """Capture INFO records of the runner logger used by the helpers."""
    caplog.set_level(logging.INFO, logger='mmdet_hpu.tests.runner')
    return caplog
