"""Everything device-specific in mmdet_hpu, and the only importer of ``habana_frameworks``.

The same calls work on hpu, cuda and cpu, so callers never branch on the device::

    from mmdet_hpu import device
    device.set_execution_mode('lazy')          # before anything imports habana_frameworks
    dev = device.resolve_device('auto')        # 'hpu' > 'cuda' > 'cpu'
    model.to(device.torch_device(dev))
    with device.autocast(dev, enabled=True):   # bf16
        loss = model(...)
    loss.backward()
    device.mark_step()                         # htcore.mark_step() only in lazy HPU mode

Importing this package never imports ``habana_frameworks``; the bridge is
loaded on first use of an HPU feature (:func:`is_hpu_available` included).
"""
from ._bridge import reset as _reset_bridge
from ._modes import (
    MODES,
    check_mode_for_device,
    default_execution_mode,
    get_execution_mode,
    is_lazy,
    set_autocast_op_lists,
    set_execution_mode,
)
from ._modes import reset as _reset_modes
from ._probe import device_type, hpu_version, is_hpu_available, resolve_device, torch_device
from ._runtime import (
    autocast,
    compile_model,
    hpex_optimizer,
    init_hccl,
    mark_step,
    max_memory_allocated,
    profiler_activities,
    reset_peak_memory_stats,
    synchronize,
)
from .compile_counter import compiled_graphs


def reset_state() -> None:
    """Forget every cached probe and requested mode.

    For tests that install or remove a (fake) bridge within one process.
    """
    is_hpu_available.cache_clear()
    _reset_bridge()
    _reset_modes()


__all__ = [
    'MODES', 'autocast', 'check_mode_for_device', 'compile_model', 'compiled_graphs',
    'default_execution_mode',
    'device_type', 'get_execution_mode', 'hpex_optimizer', 'hpu_version', 'init_hccl',
    'is_hpu_available', 'is_lazy', 'mark_step', 'max_memory_allocated', 'profiler_activities',
    'reset_peak_memory_stats',
    'reset_state', 'resolve_device', 'set_autocast_op_lists', 'set_execution_mode',
    'synchronize', 'torch_device'
]
