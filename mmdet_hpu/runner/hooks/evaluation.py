"""Evaluation hooks that test on the training device with their own batch size."""
import copy
import os.path as osp
import sys
from typing import Callable, List, Optional, Union

import torch
import torch.distributed as dist
from mmcv import ProgressBar
from mmcv.runner import HOOKS, get_dist_info
from mmdet.core.evaluation.eval_hooks import DistEvalHook, EvalHook
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.data import DataLoader

from mmdet_hpu import device


def _to_host(obj):
    """Copy every tensor in a (nested) result to host numpy; other objects are kept."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().float().cpu().numpy() if obj.is_floating_point() \
            else obj.detach().cpu().numpy()
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_host(item) for item in obj)
    if isinstance(obj, dict):
        return {key: _to_host(value) for key, value in obj.items()}
    return obj


def _encode_masks(result: List) -> List:
    """Encode instance masks like mmdet's ``single_gpu_test`` (bbox-only results pass)."""
    if result and isinstance(result[0], tuple):
        from mmdet.core import encode_mask_results
        return [(bbox, encode_mask_results(masks)) for bbox, masks in result]
    return result


def single_device_test(model: torch.nn.Module, data_loader: DataLoader,
                       show_progress: bool = True) -> List:
    """Test ``model`` on its device; results come to the host once per batch.

    Like mmdet's ``single_gpu_test`` without visualisation: ``model.eval()``, then
    ``model(return_loss=False, rescale=True, **data)`` under ``no_grad`` per batch,
    one ``device.mark_step()`` per batch (lazy HPU only), and any tensors left in the
    batch result copied to host numpy in one pass. Rank 0 shows mmcv's
    ``ProgressBar`` over the dataset, advanced by the (host) length of each batch
    result times the world size, as mmdet's ``multi_gpu_test``: no extra host read.

    Args:
        model (nn.Module): A data-parallel wrapped detector (moves inputs to its device).
        data_loader (DataLoader): Test loader.
        show_progress (bool): Show the progress bar on rank 0. Defaults to True.

    Returns:
        list: One result per image, in loader order.
    """
    model.eval()
    results = []
    rank, world_size = get_dist_info()
    num_images = len(getattr(data_loader, 'dataset', ()))  # 0: a count without a bar
    progress = ProgressBar(num_images, file=sys.stdout) if show_progress and rank == 0 else None
    for data in data_loader:
        with torch.no_grad():
            result = model(return_loss=False, rescale=True, **data)
        device.mark_step()
        results.extend(_encode_masks(_to_host(result)))
        if progress is not None:
            progress.update(len(result) * world_size)
    if progress is not None:
        sys.stdout.write('\n')
    return results


def multi_device_test(model: torch.nn.Module, data_loader: DataLoader,
                      tmpdir: str) -> Optional[List]:
    """Distributed :func:`single_device_test`; rank 0 gets all results.

    Results are collected with mmdet's ``collect_results_cpu`` through the explicit
    ``tmpdir`` (its tmpdir-less path allocates CUDA tensors).

    Args:
        model (nn.Module): A distributed wrapped detector.
        data_loader (DataLoader): Test loader with a distributed sampler.
        tmpdir (str): Directory shared by all ranks for the partial results.

    Returns:
        list | None: All results on rank 0, None on the other ranks.
    """
    from mmdet.apis.test import collect_results_cpu
    if not tmpdir:
        raise ValueError('multi_device_test needs an explicit tmpdir')
    results = single_device_test(model, data_loader)
    return collect_results_cpu(results, len(data_loader.dataset), tmpdir)


def build_eval_dataloader(cfg: dict, distributed: bool = False) -> DataLoader:
    """Build a test loader from ``dict(dataset=..., samples_per_gpu=1, workers_per_gpu=2)``.

    With ``samples_per_gpu > 1`` the pipeline's ``ImageToTensor`` becomes
    ``DefaultFormatBundle`` (as in mmdet's ``train_detector``).

    Args:
        cfg (dict): ``dataset`` (a dataset config) plus ``build_dataloader`` keyword
            arguments (``samples_per_gpu``, ``workers_per_gpu``...).
        distributed (bool): Use a distributed sampler. Defaults to False.

    Returns:
        DataLoader: An unshuffled test loader.
    """
    from mmdet.datasets import build_dataloader, build_dataset, replace_ImageToTensor
    cfg = copy.deepcopy(dict(cfg))
    dataset_cfg = cfg.pop('dataset')
    loader_args = {'samples_per_gpu': 1, 'workers_per_gpu': 2, **cfg}
    if loader_args['samples_per_gpu'] > 1:
        dataset_cfg['pipeline'] = replace_ImageToTensor(dataset_cfg['pipeline'])
    dataset = build_dataset(dataset_cfg, dict(test_mode=True))
    return build_dataloader(dataset, dist=distributed, shuffle=False, **loader_args)


def save_best_checkpoint(hook, runner, key_score) -> None:
    """mmcv's ``EvalHook._save_ckpt``, crash-safe: the new best checkpoint is written
    atomically, and only then is the previous best removed (mmcv removes it first, so
    a kill in between left no best checkpoint, and a kill during the write a partial one).
    """
    from ...checkpoint.hook import save_runner_checkpoint

    if hook.by_epoch:
        current, cur_type, cur_time = f'epoch_{runner.epoch + 1}', 'epoch', runner.epoch + 1
    else:
        current, cur_type, cur_time = f'iter_{runner.iter + 1}', 'iter', runner.iter + 1
    best_score = runner.meta['hook_msgs'].get('best_score', hook.init_value_map[hook.rule])
    if not hook.compare_func(key_score, best_score):
        return
    if '://' in str(hook.out_dir):  # object stores: no rename, mmcv's way
        EvalHook._save_ckpt(hook, runner, key_score)
        return
    msgs = runner.meta['hook_msgs']
    previous, saved_msgs = hook.best_ckpt_path, dict(msgs)
    best_ckpt_name = f'best_{hook.key_indicator}_{current}.pth'
    hook.best_ckpt_path = hook.file_client.join_path(hook.out_dir, best_ckpt_name)
    msgs.update(best_score=key_score, best_ckpt=hook.best_ckpt_path)  # saved in its meta
    try:
        save_runner_checkpoint(runner, hook.out_dir, filename_tmpl=best_ckpt_name,
                               create_symlink=False)
    except BaseException:  # not saved: the previous best stays the best
        hook.best_ckpt_path = previous
        msgs.clear()
        msgs.update(saved_msgs)
        raise
    runner.logger.info(f'Now best checkpoint is saved as {best_ckpt_name}.')
    if previous and previous != hook.best_ckpt_path and hook.file_client.isfile(previous):
        hook.file_client.remove(previous)
        runner.logger.info(f'The previous best checkpoint {previous} was removed')
    runner.logger.info(f'Best {hook.key_indicator} is {key_score:0.4f} at {cur_time} '
                       f'{cur_type}.')


def _as_loader(dataloader: Union[DataLoader, dict], distributed: bool) -> DataLoader:
    if isinstance(dataloader, dict):
        return build_eval_dataloader(dataloader, distributed=distributed)
    return dataloader


@HOOKS.register_module()
class HPUEvalHook(EvalHook):
    """mmdet :class:`EvalHook` testing with :func:`single_device_test`.

    Differences from mmdet's hook: the ``test_fn`` is honoured (mmdet hard-codes
    ``single_gpu_test``) and defaults to :func:`single_device_test`; ``dataloader`` may
    be a config ``dict(dataset=..., samples_per_gpu=N)`` so that ``custom_hooks`` can
    build the hook. The dataset's ``evaluate`` (COCO through pycocotools) is
    unchanged; ``save_best`` also keeps a checkpoint for a score of 0.0 (mmdet skips
    falsy scores, so an early mAP of 0 never saved one), and writes it atomically
    before removing the previous best (:func:`save_best_checkpoint`).

    Args:
        dataloader (DataLoader | dict): Test loader or its config
            (see :func:`build_eval_dataloader`).
        *args: Passed to mmdet's ``EvalHook``.
        test_fn (callable, optional): ``test_fn(model, loader) -> results``.
            Defaults to None: :func:`single_device_test`.
        **kwargs: Passed to mmdet's ``EvalHook`` (``interval``, ``save_best``,
            ``metric``...).
    """

    def __init__(self, dataloader: Union[DataLoader, dict], *args,
                 test_fn: Optional[Callable] = None, **kwargs) -> None:
        super().__init__(_as_loader(dataloader, distributed=False), *args,
                         test_fn=test_fn or single_device_test, **kwargs)

    def _do_evaluate(self, runner) -> None:
        """Test, evaluate and keep the best checkpoint."""
        if not self._should_evaluate(runner):
            return
        results = self.test_fn(runner.model, self.dataloader)
        self.latest_results = results
        runner.log_buffer.output['eval_iter_num'] = len(self.dataloader)
        key_score = self.evaluate(runner, results)
        if self.save_best and key_score is not None:
            self._save_ckpt(runner, key_score)

    def _save_ckpt(self, runner, key_score) -> None:
        """Keep the best checkpoint, crash-safe (:func:`save_best_checkpoint`)."""
        save_best_checkpoint(self, runner, key_score)


@HOOKS.register_module()
class HPUDistEvalHook(DistEvalHook):
    """mmdet :class:`DistEvalHook` testing with :func:`multi_device_test`.

    Results are gathered on rank 0 through files in ``tmpdir`` (default
    ``work_dir/.eval_hook``); ``gpu_collect`` (CUDA-only) is refused.

    Args:
        dataloader (DataLoader | dict): Test loader or its config.
        *args: Passed to mmdet's ``DistEvalHook``.
        test_fn (callable, optional): ``test_fn(model, loader, tmpdir) -> results``.
            Defaults to None: :func:`multi_device_test`.
        **kwargs: Passed to mmdet's ``DistEvalHook``.

    Raises:
        ValueError: If ``gpu_collect=True``.
    """

    def __init__(self, dataloader: Union[DataLoader, dict], *args,
                 test_fn: Optional[Callable] = None, **kwargs) -> None:
        if kwargs.get('gpu_collect'):
            raise ValueError('gpu_collect=True collects through CUDA tensors; '
                             'HPUDistEvalHook collects through files (tmpdir) instead')
        super().__init__(_as_loader(dataloader, distributed=True), *args,
                         test_fn=test_fn or multi_device_test, **kwargs)

    def _do_evaluate(self, runner) -> None:
        """Broadcast BN buffers, test on every rank, evaluate on rank 0."""
        if self.broadcast_bn_buffer:
            _broadcast_bn_buffers(runner.model)
        if not self._should_evaluate(runner):
            return
        tmpdir = self.tmpdir or osp.join(runner.work_dir, '.eval_hook')
        results = self.test_fn(runner.model, self.dataloader, tmpdir)
        self.latest_results = results
        if runner.rank != 0:
            return
        runner.log_buffer.output['eval_iter_num'] = len(self.dataloader)
        key_score = self.evaluate(runner, results)
        if self.save_best and key_score is not None:
            self._save_ckpt(runner, key_score)

    def _save_ckpt(self, runner, key_score) -> None:
        """Keep the best checkpoint, crash-safe (:func:`save_best_checkpoint`)."""
        save_best_checkpoint(self, runner, key_score)


def _broadcast_bn_buffers(model: torch.nn.Module) -> None:
    """Give every rank rank 0's BatchNorm statistics (DDP does not sync them)."""
    for module in model.modules():
        if isinstance(module, _BatchNorm) and module.track_running_stats:
            dist.broadcast(module.running_var, 0)
            dist.broadcast(module.running_mean, 0)
