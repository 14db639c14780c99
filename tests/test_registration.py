"""``import mmdet_hpu`` registers every plugin module under its documented name."""
import subprocess
import sys

import pytest


def _registries():
    from mmcv.parallel import MODULE_WRAPPERS
    from mmcv.runner import HOOKS, OPTIMIZERS, RUNNERS
    from mmdet.datasets import PIPELINES
    from mmdet.models import DETECTORS, HEADS
    return dict(MODULE_WRAPPERS=MODULE_WRAPPERS, HOOKS=HOOKS, OPTIMIZERS=OPTIMIZERS,
                RUNNERS=RUNNERS, PIPELINES=PIPELINES, DETECTORS=DETECTORS, HEADS=HEADS)


EXPECTED = [
    ('HEADS', 'HPUYOLOV3Head', 'mmdet_hpu.models.dense_heads.hpu_yolo_head'),
    ('HEADS', 'HPUFCOSHead', 'mmdet_hpu.models.dense_heads.hpu_fcos_head'),
    ('HEADS', 'HPUATSSHead', 'mmdet_hpu.models.dense_heads.hpu_atss_head'),
    ('DETECTORS', 'HPUYOLOV3', 'mmdet_hpu.models.detectors.hpu_yolo'),
    ('PIPELINES', 'HPUPadGT', 'mmdet_hpu.datasets.pipelines.pad_gt'),
    ('MODULE_WRAPPERS', 'HPUDataParallel', 'mmdet_hpu.parallel.data_parallel'),
    ('MODULE_WRAPPERS', 'HPUDistributedDataParallel', 'mmdet_hpu.parallel.distributed'),
    ('RUNNERS', 'HPUEpochBasedRunner', 'mmdet_hpu.runner.epoch_based_runner'),
    ('RUNNERS', 'HPUIterBasedRunner', 'mmdet_hpu.runner.iter_based_runner'),
    ('HOOKS', 'HPUOptimizerHook', 'mmdet_hpu.runner.hooks.optimizer'),
    ('HOOKS', 'HPUEvalHook', 'mmdet_hpu.runner.hooks.evaluation'),
    ('HOOKS', 'HPUDistEvalHook', 'mmdet_hpu.runner.hooks.evaluation'),
    ('HOOKS', 'HPUThroughputHook', 'mmdet_hpu.runner.hooks.throughput'),
    ('HOOKS', 'HPUProfilerHook', 'mmdet_hpu.runner.hooks.profiler'),
    ('HOOKS', 'HPUCheckpointHook', 'mmdet_hpu.checkpoint.hook'),
    ('OPTIMIZERS', 'HPUFusedSGD', 'mmdet_hpu.optimizers'),
    ('OPTIMIZERS', 'HPUFusedAdamW', 'mmdet_hpu.optimizers'),
]


@pytest.mark.parametrize('registry,name,module', EXPECTED)
def test_each_name_resolves_to_the_plugin_class(registry, name, module):
    import mmdet_hpu  # noqa: F401

    cls = _registries()[registry].get(name)
    assert cls is not None, f'{name} is not registered in {registry}'
    assert cls.__module__ == module
    assert cls.__name__ == name


def test_import_needs_no_habana_and_does_not_load_it():
    code = ('import sys, importlib.util\n'
            'assert importlib.util.find_spec("habana_frameworks") is None\n'
            'import mmdet_hpu\n'
            'assert not any(m.startswith("habana_frameworks") for m in sys.modules)\n'
            'print("ok")\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == 'ok'


def test_custom_imports_in_a_config_registers_the_plugin(tmp_path):
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text("custom_imports = dict(imports=['mmdet_hpu'], allow_failed_imports=False)\n"
                        "model = dict(type='HPUYOLOV3')\n")
    code = ('import sys\n'
            'from mmcv import Config\n'
            f'Config.fromfile({str(cfg_file)!r})\n'
            'from mmdet.models import DETECTORS\n'
            'print(DETECTORS.get("HPUYOLOV3").__name__)\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith('HPUYOLOV3')
