"""Steps shared by the console scripts: device set-up, config loading, user errors."""
import contextlib
import os
import sys

from mmdet_hpu.errors import ConfigError, UserError

__all__ = ['UserError', 'ConfigError', 'prepare_device', 'load_config', 'fail_on_user_error']


def prepare_device(args):
    """Set the HPU execution mode (before ``habana_frameworks`` loads) and pick the device.

    Args:
        args (argparse.Namespace): needs ``device`` and ``execution_mode``.

    Returns:
        tuple[str, str | None]: the device (``'hpu'``, ``'cuda'`` or ``'cpu'``) and the
        execution mode (``None`` off HPU unless ``--compile`` was given).
    """
    from mmdet_hpu import device

    mode = args.execution_mode
    try:
        # Both before anything imports habana_frameworks: the bridge reads them at import.
        if mode is not None:
            device.set_execution_mode(mode)
        if args.autocast and args.device in ('auto', 'hpu') and not _user_set_op_lists():
            device.set_autocast_op_lists()
        name = device.resolve_device(args.device)
        device.check_mode_for_device(mode, name)
    except (ValueError, RuntimeError) as err:
        raise UserError(str(err)) from None
    if name == 'hpu' and mode is None:
        mode = device.get_execution_mode()
    return name, mode


def _user_set_op_lists():
    """Whether the user exported their own HPU autocast op lists (they win)."""
    return any(var in os.environ for var in ('PT_HPU_AUTOCAST_LOWER_PRECISION_OPS_LIST',
                                             'PT_HPU_AUTOCAST_FP32_OPS_LIST', 'LOWER_LIST',
                                             'FP32_LIST'))


def load_config(path):
    """Read an mmcv config file, importing its ``custom_imports`` (the plugin)."""
    from mmdet_hpu.validation.config_file import load_config_file

    return load_config_file(path)


@contextlib.contextmanager
def fail_on_user_error():
    """Turn a user mistake into a one-paragraph message on stderr and exit status 2."""
    try:
        yield
    except UserError as err:
        print(f'error: {err}', file=sys.stderr)
        raise SystemExit(2) from None
