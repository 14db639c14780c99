"""Config files that cannot be read: wrong extension, Python errors, missing ``custom_imports``.

mmcv raises these as ``SyntaxError`` / ``OSError`` / a bare ``ImportError`` (without
the module's name) with a traceback; here each becomes one paragraph that names the
file, the line where Python gives one, and the fix.
"""
import contextlib
import gc
import importlib
import os.path as osp
import sys
import warnings

from .errors import ValidationError

CONFIG_EXTENSIONS = ('.py', '.json', '.yaml', '.yml')
# Exceptions that executing a Python config file can raise for a mistake in the file.
CONFIG_CODE_ERRORS = (SyntaxError, NameError, AttributeError, KeyError, IndexError, TypeError,
                      ValueError, ZeroDivisionError, AssertionError, OSError, ImportError)


def _is_temp_file_noise(unraisable):
    """mmcv's temporary copy of a failed config is closed after its folder is gone."""
    return (isinstance(unraisable.exc_value, FileNotFoundError)
            and 'TemporaryFileCloser' in repr(unraisable.object))


@contextlib.contextmanager
def _quiet_mmcv_temp_files():
    """Drop mmcv's "Exception ignored ... FileNotFoundError" noise after a failed read."""
    previous = sys.unraisablehook

    def hook(unraisable):
        if not _is_temp_file_noise(unraisable):
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        gc.collect()
        sys.unraisablehook = previous


def _read(path):
    from mmcv import Config

    with _quiet_mmcv_temp_files():
        try:
            return Config.fromfile(path, import_custom_modules=False), None
        except CONFIG_CODE_ERRORS as err:
            return None, f'{type(err).__name__}: {err}'


def import_custom_modules(cfg, path):
    """Import ``custom_imports`` as mmcv does, naming the module that fails."""
    custom = cfg.get('custom_imports')
    if not custom:
        return
    imports = custom.get('imports', [])
    for name in [imports] if isinstance(imports, str) else imports:
        try:
            importlib.import_module(name)
        except ImportError as err:
            if custom.get('allow_failed_imports', False):
                warnings.warn(f'{name} failed to import and is ignored.', UserWarning,
                              stacklevel=2)
                continue
            raise ValidationError(
                f'config {path!r}: custom_imports names the module {name!r}, which cannot be '
                f'imported ({type(err).__name__}: {err}). Install the package that provides it '
                f'(for the plugin: pip install mmdet-hpu) or fix custom_imports in the '
                'config.') from None


def load_config_file(path):
    """Read an mmcv config and import its ``custom_imports``.

    Raises:
        ValidationError: Missing file, unsupported extension, an error while executing
            the file (syntax, undefined name, missing ``_base_``) or a module of
            ``custom_imports`` that cannot be imported.
    """
    if not osp.isfile(path):
        raise ValidationError(f'config file not found: {path!r}. Pass the path of a config such '
                              'as configs/demo/yolov3_mobilenetv2-half_128_shapes.py.')
    extension = osp.splitext(path)[1]
    if extension not in CONFIG_EXTENSIONS:
        raise ValidationError(f'config file {path!r} has the extension {extension or "(none)"!r}; '
                              f'mmcv reads only {", ".join(CONFIG_EXTENSIONS)} files. Rename it '
                              '(a Python config: .py).')
    cfg, problem = _read(path)
    if problem:
        raise ValidationError(f'config file {path!r} cannot be read: {problem}. Fix the config '
                              '(or the _base_ file it names).')
    import_custom_modules(cfg, path)
    return cfg
