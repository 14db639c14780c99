"""Evaluation helpers for hpu, cuda and cpu.

``mmdet.apis.single_gpu_test``/``multi_gpu_test`` already work on any device once
the model is wrapped by :func:`build_test_wrapper` (the wrapper moves batches);
the only CUDA-ism left is ``collect_results_cpu(tmpdir=None)``, which allocates a
CUDA tensor, so :func:`multi_device_test` always passes a tmpdir.
"""
import os
import os.path as osp

from mmdet.apis import multi_gpu_test, single_gpu_test

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
    """``mmdet.apis.single_gpu_test`` on a model from :func:`build_test_wrapper`."""
    return single_gpu_test(model, data_loader, show=show, out_dir=out_dir,
                           show_score_thr=show_score_thr)


def multi_device_test(model, data_loader, tmpdir=None):
    """``mmdet.apis.multi_gpu_test`` with CPU result collection through ``tmpdir``.

    Args:
        tmpdir (str, optional): Directory shared by all ranks. Defaults to
            ``./.dist_test`` (the same path on every rank of a single-node job).
    """
    tmpdir = tmpdir or osp.join(os.getcwd(), '.dist_test')
    return multi_gpu_test(model, data_loader, tmpdir=tmpdir, gpu_collect=False)
