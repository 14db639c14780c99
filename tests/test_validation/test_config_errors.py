# ruff: noqa: F811 (the fixtures cli_state and earlier_run come from cli_helpers)
"""Config files that cannot be read and ``--cfg-options`` values of the wrong type."""
import pytest
from cli_helpers import DEMO_CONFIG, cli_state, earlier_run, fail, train_fails  # noqa: F401


def _config(tmp_path, text, name='bad.py'):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_python_syntax_error(cli_state, earlier_run, data, tmp_path, capsys):
    config = _config(tmp_path, f'_base_ = [{DEMO_CONFIG!r}]\noptimizer = dict(lr=0.1\n')
    err = train_fails(capsys, earlier_run, data, config=config)
    assert f"config file {config!r} cannot be read: SyntaxError" in err
    assert 'line 2' in err and 'Fix the config' in err


def test_undefined_name(cli_state, earlier_run, data, tmp_path, capsys):
    config = _config(tmp_path, f'_base_ = [{DEMO_CONFIG!r}]\noptimizer = dict(lr=base_lr)\n')
    err = train_fails(capsys, earlier_run, data, config=config)
    assert "NameError: name 'base_lr' is not defined" in err


def test_missing_base_file(cli_state, earlier_run, data, tmp_path, capsys):
    config = _config(tmp_path, "_base_ = ['no_such_base.py']\n")
    err = train_fails(capsys, earlier_run, data, config=config)
    assert 'no_such_base.py' in err and 'does not exist' in err


def test_txt_extension(cli_state, earlier_run, data, tmp_path, capsys):
    config = _config(tmp_path, open(DEMO_CONFIG).read(), name='config.txt')
    err = train_fails(capsys, earlier_run, data, config=config)
    assert "has the extension '.txt'" in err and 'Rename it' in err


def test_custom_imports_of_a_missing_module(cli_state, earlier_run, data, tmp_path, capsys):
    config = _config(tmp_path, f"_base_ = [{DEMO_CONFIG!r}]\ncustom_imports = dict(imports=["
                               "'mmdet_hpu', 'no_such_plugin_xyz'], allow_failed_imports=False)\n")
    err = train_fails(capsys, earlier_run, data, config=config)
    assert "custom_imports names the module 'no_such_plugin_xyz'" in err
    assert "No module named 'no_such_plugin_xyz'" in err


def test_custom_imports_allowed_to_fail(tmp_path):
    from mmdet_hpu.validation.config_file import load_config_file

    config = _config(tmp_path, f"_base_ = [{DEMO_CONFIG!r}]\ncustom_imports = dict(imports=["
                               "'no_such_plugin_xyz'], allow_failed_imports=True)\n")
    with pytest.warns(UserWarning, match='no_such_plugin_xyz failed to import'):
        cfg = load_config_file(config)
    assert cfg.model.type == 'HPUYOLOV3'


@pytest.mark.parametrize('option,expected', [
    ('data.samples_per_gpu=eight', "data.samples_per_gpu='eight' must be an integer >= 1"),
    ('optimizer.lr=fast', "optimizer.lr='fast' must be a finite number >= 0"),
    ('log_config.interval=ten', "log_config.interval='ten' must be an integer >= 1"),
    ('runner.max_epochs=two', "runner.max_epochs='two' must be an integer >= 1"),
    ('runner.max_iters_per_epoch=0', 'runner.max_iters_per_epoch=0 must be an integer >= 1'),
    ('runner.max_epochs=2.5', 'runner.max_epochs=2.5 must be an integer >= 1'),
    ('data.workers_per_gpu=-1', 'data.workers_per_gpu=-1 must be an integer >= 0'),
])
def test_cfg_options_of_the_wrong_type(cli_state, earlier_run, data, capsys, option, expected):
    err = train_fails(capsys, earlier_run, data, option)
    assert expected in err and '(e.g. --cfg-options ' in err


def test_every_bad_value_is_listed(cli_state, earlier_run, data, capsys):
    err = train_fails(capsys, earlier_run, data, 'optimizer.lr=fast', 'runner.max_epochs=two')
    assert 'has 2 value(s) of the wrong type' in err


def test_test_script_checks_values_too(cli_state, earlier_run, pristine_data, capsys):
    from mmdet_hpu.cli.test import main

    checkpoint = f'{earlier_run}/epoch_1.pth'
    err = fail(main, [DEMO_CONFIG, checkpoint, '--device', 'cpu', '--eval', 'bbox', '--work-dir',
                      earlier_run, '--cfg-options', f'data_root={pristine_data}/',
                      'data.test_dataloader.samples_per_gpu=eight'], capsys, earlier_run)
    assert "data.test_dataloader.samples_per_gpu='eight' must be an integer >= 1" in err


def test_good_values_pass(data, demo_cfg):
    from mmdet_hpu.validation.value_types import check_value_types

    check_value_types(demo_cfg(data, **{'optimizer.lr': 0.01, 'runner.max_epochs': 3}))
