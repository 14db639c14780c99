"""Call recorder shared by the fake ``habana_frameworks`` package and the tests.

It lives outside the fake package so that a test can hold it *before* the fake
bridge is imported (the import itself is one of the recorded events).
"""
import os

#: Variables the real bridge reads once, at import time.
IMPORT_TIME_VARS = ('PT_HPU_LAZY_MODE', 'PT_HPU_AUTOCAST_LOWER_PRECISION_OPS_LIST',
                    'PT_HPU_AUTOCAST_FP32_OPS_LIST', 'LOWER_LIST', 'FP32_LIST')


class Recorder:
    """Ordered log of calls into the fake bridge.

    Attributes:
        calls (list[tuple[str, dict]]): ``(name, details)`` per call, e.g.
            ``('core.mark_step', {'device_str': '', 'sync': False})``.
        import_env (dict | None): Values of :data:`IMPORT_TIME_VARS` when
            ``habana_frameworks.torch.core`` was imported; None before that.
    """

    def __init__(self):
        self.calls = []
        self.import_env = None

    def record(self, name, **details):
        self.calls.append((name, details))

    def names(self):
        """Names of the recorded calls, in order."""
        return [name for name, _ in self.calls]

    def count(self, name):
        return self.names().count(name)

    def record_import(self):
        self.import_env = {var: os.environ.get(var) for var in IMPORT_TIME_VARS}
        self.record('core.import', **self.import_env)

    def clear(self):
        self.calls.clear()
        self.import_env = None


RECORDER = Recorder()
