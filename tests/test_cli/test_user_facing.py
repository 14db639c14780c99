"""What a user sees from the console scripts: clean errors (exit 2), progress, outputs.

In-process runs of ``mmdet-hpu-test`` on a tiny dataset with a freshly saved checkpoint
of the demo model, and ``mmdet-hpu-train`` mistakes caught before anything is written.
"""
import os
import os.path as osp

import pytest

from mmdet_hpu.datasets.demo_data import generate_demo_dataset

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CONFIG = osp.join(REPO, 'configs', 'demo', 'yolov3_mobilenetv2-half_128_shapes.py')
NUM_VAL = 4


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """A tiny demo dataset and a checkpoint of the (untrained) demo model."""
    import mmcv
    from mmcv.runner import save_checkpoint
    from mmdet.models import build_detector

    import mmdet_hpu  # noqa: F401

    root = tmp_path_factory.mktemp('tiny')
    data = str(root / 'data')
    generate_demo_dataset(data, num_train=2, num_val=NUM_VAL, img_size=128, seed=1)
    cfg = mmcv.Config.fromfile(DEMO_CONFIG)
    model = build_detector(cfg.model)
    ckpt = str(root / 'model.pth')
    save_checkpoint(model, ckpt, meta=dict(CLASSES=('circle', 'square', 'triangle')))
    return data, ckpt


@pytest.fixture
def cli_env(monkeypatch):
    from mmdet_hpu import device

    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.delenv('PT_HPU_LAZY_MODE', raising=False)
    device.reset_state()
    yield
    device.reset_state()


def _test_argv(tiny, *extra):
    data, ckpt = tiny
    return [DEMO_CONFIG, ckpt, '--device', 'cpu', *extra, '--cfg-options',
            f'data_root={data}/', 'data.workers_per_gpu=0',
            'model.test_cfg.conf_thr=0', 'model.test_cfg.score_thr=0']


def _exit_code(main, argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert 'Traceback' not in err
    return exc.value.code, err


def test_eval_shows_progress(cli_env, tiny, capsys):
    from mmdet_hpu.cli.test import main

    main(_test_argv(tiny, '--eval', 'bbox'))
    out = capsys.readouterr().out
    assert f'{NUM_VAL}/{NUM_VAL}, ' in out and 'bbox_mAP: ' in out


def test_unknown_metric_is_refused_before_inference(cli_env, tiny, capsys, monkeypatch):
    import mmdet_hpu.cli.test as test_cli

    ran = []
    monkeypatch.setattr(test_cli, '_run_inference', lambda *a, **k: ran.append(1))
    code, err = _exit_code(test_cli.main, _test_argv(tiny, '--eval', 'mAP'), capsys)
    assert code == 2 and not ran
    assert "CocoDataset has no metric 'mAP'" in err
    assert 'bbox, segm, proposal, proposal_fast' in err


def test_format_only_says_what_it_wrote(cli_env, tiny, capsys, tmp_path):
    from mmdet_hpu.cli.test import main

    work_dir = str(tmp_path / 'out')
    main(_test_argv(tiny, '--format-only', '--work-dir', work_dir))
    out = capsys.readouterr().out
    path = osp.join(work_dir, 'results.bbox.json')
    assert f'--format-only: bbox results of {NUM_VAL} images written to {path}' in out
    assert osp.isfile(path)  # kept, not in a deleted temporary folder


def test_show_without_display_points_to_show_dir(cli_env, tiny, capsys, monkeypatch):
    from mmdet_hpu.cli.test import main

    monkeypatch.delenv('DISPLAY', raising=False)
    monkeypatch.delenv('WAYLAND_DISPLAY', raising=False)
    code, err = _exit_code(main, _test_argv(tiny, '--show'), capsys)
    assert code == 2 and 'no display' in err and '--show-dir' in err


@pytest.mark.parametrize('argv_extra,message', [
    ((), 'say what to do with the results'),
    (('--eval', 'bbox', '--format-only'), 'cannot be both given'),
    (('--out', 'results.txt'), '--out must end with .pkl'),
    (('--eval', 'bbox', '--hpu', '2'), '--hpu takes 0 or 1'),
    (('--eval', 'bbox', '--hpu', '--device', 'cpu'), '--hpu conflicts with --device cpu'),
])
def test_test_script_usage_mistakes_exit_2(cli_env, tiny, capsys, argv_extra, message):
    from mmdet_hpu.cli.test import main

    data, ckpt = tiny
    code, err = _exit_code(main, [DEMO_CONFIG, ckpt, *argv_extra], capsys)
    assert code == 2 and err.startswith('error: ') and message in err


def test_launcher_without_its_environment_exits_2(cli_env, tiny, capsys, monkeypatch):
    from mmdet_hpu.cli.test import main

    for var in ('WORLD_SIZE', 'RANK', 'MASTER_ADDR'):
        monkeypatch.delenv(var, raising=False)
    code, err = _exit_code(main, _test_argv(tiny, '--eval', 'bbox', '--launcher', 'pytorch'),
                           capsys)
    assert code == 2 and 'torchrun' in err


def test_demo_data_bad_size_exits_2(tmp_path, capsys):
    from mmdet_hpu.datasets.demo_data import main

    code, err = _exit_code(main, ['--out', str(tmp_path / 'd'), '--img-size', '16'], capsys)
    assert code == 2 and 'img_size must be >= 32' in err


# --- mmdet-hpu-train: caught before the work dir is written -------------------------

def _train_fails(tiny, tmp_path, capsys, *extra, options=()):
    from mmdet_hpu.cli.train import main

    data, _ = tiny
    work_dir = tmp_path / 'work'
    code, err = _exit_code(main, [DEMO_CONFIG, '--device', 'cpu', '--work-dir', str(work_dir),
                                  *extra, '--cfg-options', f'data_root={data}/', *options],
                           capsys)
    assert code == 2 and err.startswith('error: ')
    assert not work_dir.exists() or not os.listdir(work_dir), 'something was written'
    return err


def test_hook_list_in_cfg_options_is_a_clean_error(cli_env, tiny, tmp_path, capsys):
    err = _train_fails(tiny, tmp_path, capsys,
                       options=["log_config.hooks=[dict(type='TensorboardLoggerHook')]"])
    assert 'log_config.hooks must be a list of hook dicts' in err and '--tensorboard' in err


def test_tensorboard_missing_is_a_clean_error(cli_env, tiny, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', None)  # import fails
    err = _train_fails(tiny, tmp_path, capsys, '--tensorboard')
    assert "pip install 'mmdet-hpu[logs]'" in err


def test_fp16_is_refused_up_front(cli_env, tiny, tmp_path, capsys):
    err = _train_fails(tiny, tmp_path, capsys, options=['fp16.loss_scale=512.'])
    assert 'fp16' in err and '--autocast' in err


def test_steps_with_an_iteration_runner_is_a_clean_error(cli_env, tiny, tmp_path, capsys,
                                                          monkeypatch):
    err = _train_fails(tiny, tmp_path, capsys, '--steps', '2',
                       options=['runner.type=IterBasedRunner', 'runner.max_iters=4'])
    assert '--steps caps the iterations of each epoch' in err and 'HPUIterBasedRunner' in err


@pytest.mark.parametrize('text,message', [
    ('model = dict(type=\n', 'cannot be read: SyntaxError'),
    ("_base_ = ['missing_base.py']\n", 'missing_base.py'),
    ("custom_imports = dict(imports=['no_such_module_xyz'], allow_failed_imports=False)\n",
     "custom_imports names the module 'no_such_module_xyz'"),
])
def test_broken_config_file_exits_2(cli_env, tmp_path, capsys, text, message):
    from mmdet_hpu.cli.train import main

    config = tmp_path / 'broken.py'
    config.write_text(text)
    code, err = _exit_code(main, [str(config), '--device', 'cpu', '--work-dir',
                                  str(tmp_path / 'work')], capsys)
    assert code == 2 and err.startswith('error: ') and message in err
    assert not (tmp_path / 'work').exists()


def test_unknown_validation_metric_is_refused_before_training(cli_env, tiny, tmp_path, capsys):
    from mmdet_hpu.cli.train import main

    data, _ = tiny
    work_dir = tmp_path / 'work'
    code, err = _exit_code(main, [DEMO_CONFIG, '--device', 'cpu', '--work-dir', str(work_dir),
                                  '--cfg-options', f'data_root={data}/', 'data.workers_per_gpu=0',
                                  'evaluation.metric=mAP'], capsys)
    assert code == 2 and "evaluation.metric mAP: CocoDataset has no metric 'mAP'" in err
    assert '--cfg-options evaluation.metric=bbox' in err
    assert not list(work_dir.glob('*.pth'))  # refused before the first iteration
