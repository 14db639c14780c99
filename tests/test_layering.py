"""The package's layers import downwards only: nothing below ``cli`` imports the CLI."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / 'mmdet_hpu'
LOWER_LAYERS = [p for p in PACKAGE.rglob('*.py') if 'cli' not in p.relative_to(PACKAGE).parts]


def _imported_modules(path):
    tree = ast.parse(path.read_text())
    package = '.'.join(('mmdet_hpu',) + path.relative_to(PACKAGE).parent.parts)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')[:len(package.split('.')) - node.level + 1]
                yield '.'.join(base + ([node.module] if node.module else []))
            else:
                yield node.module


@pytest.mark.parametrize('path', LOWER_LAYERS, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_lower_layers_do_not_import_the_cli(path):
    cli_imports = [m for m in _imported_modules(path) if m and m.startswith('mmdet_hpu.cli')]
    assert not cli_imports, f'{path} imports {cli_imports}; raise mmdet_hpu.errors types instead'


def test_error_types_live_at_the_bottom():
    from mmdet_hpu.checkpoint import CheckpointError
    from mmdet_hpu.errors import ConfigError, UserError
    from mmdet_hpu.validation import ValidationError

    assert issubclass(CheckpointError, UserError)
    assert issubclass(ValidationError, UserError)
    assert issubclass(ConfigError, UserError) and issubclass(ConfigError, ValueError)
    assert not list(_imported_modules(PACKAGE / 'errors.py')), 'errors.py must import nothing'
