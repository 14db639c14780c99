"""Fake ``habana_frameworks.torch.core``: records its import environment and mark_step."""
import os

from fake_habana_recorder import RECORDER

RECORDER.record_import()


def mark_step(device_str='', sync=False):
    """Recorded even outside lazy mode, so tests see any unguarded call."""
    RECORDER.record('core.mark_step', device_str=device_str, sync=sync)


def _register_hpu_backend():
    # The real core registers dynamo's ``hpu_backend`` when not in lazy mode.
    from torch._dynamo import list_backends, register_backend

    if 'hpu_backend' in list_backends(exclude_tags=()):
        return

    @register_backend(name='hpu_backend')
    def hpu_backend(graph_module, example_inputs):
        RECORDER.record('dynamo.hpu_backend', num_inputs=len(example_inputs))
        return graph_module.forward


if os.environ.get('PT_HPU_LAZY_MODE', '1') == '0':
    _register_hpu_backend()
