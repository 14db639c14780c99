"""Evaluation helpers for hpu, cuda and cpu.

The wrappers of :func:`build_test_wrapper` move batches themselves; the test loops are
the evaluation hooks' (one implementation for training-time and standalone testing).
mmdet's ``collect_results_cpu(tmpdir=None)`` allocates a CUDA tensor, so
:func:`multi_device_test` always passes a tmpdir.
"""
import os
import os.path as osp

from mmdet.apis import single_gpu_test

from ..runner.hooks.evaluation import multi_device_test as hook_multi_device_test
from ..runner.hooks.evaluation import single_device_test as hook_single_device_test
from ._wiring import cfg_device, wrap_model


def build_test_wrapper(model, cfg, distributed=False):
    """Wrap a detector for testing on ``cfg.device`` (autocast off for fp32 results).

    Args:
        model (nn.Module): Detector with weights loaded.
        cfg (mmcv.Config): Config with ``device`` (and ``gpu_ids`` when not distributed).
        distributed (bool): Use :class:`HPUDistributedDataParallel`.

    Returns:
        HPUDataParallel | HPUDistributedDataParallel: The wrapped model.
    """
    test_cfg = cfg.copy()
    test_cfg.autocast = False
    test_cfg.keep_gt_on_host = False
    return wrap_model(model, test_cfg, cfg_device(cfg), distributed)


def single_device_test(model, data_loader, show=False, out_dir=None, show_score_thr=0.3):
    """Test a model from :func:`build_test_wrapper` on its device.

    Without visualisation this is the evaluation hooks' loop
    (:func:`mmdet_hpu.runner.hooks.evaluation.single_device_test`: one ``mark_step`` per
    batch in lazy mode, results copied to the host once per batch). ``show``/``out_dir``
    need the images, which only ``mmdet.apis.single_gpu_test`` draws.
    """
    if show or out_dir:
        return single_gpu_test(model, data_loader, show=show, out_dir=out_dir,
                               show_score_thr=show_score_thr)
    return hook_single_device_test(model, data_loader)


def multi_device_test(model, data_loader, tmpdir=None):
    """Distributed :func:`single_device_test`, results collected on the CPU through ``tmpdir``.

    Args:
        tmpdir (str, optional): Directory shared by all ranks. Defaults to
            ``./.dist_test`` (the same path on every rank of a single-node job).
    """
    tmpdir = tmpdir or osp.join(os.getcwd(), '.dist_test')
    return hook_multi_device_test(model, data_loader, tmpdir)
