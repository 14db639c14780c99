"""Train + evaluate a config and its stock counterpart; compare their bbox mAP.

The stock side is the same config with every ``HPU*`` model type replaced by its stock
parent (:func:`mmdet_hpu.analysis.stock.stock_model_cfg`) and one pipeline change: stock heads
take ground truth as per-image lists of the real boxes, not the fixed-size padded tensors
(+ ``gt_valid``) that ``HPUPadGT`` makes for the HPU heads, so the stock training pipeline
drops ``HPUPadGT`` and ``gt_valid`` (:func:`stock_pipeline`). Data, schedule, seed, runner,
optimizer and every other pipeline step stay the same. Both sides run through
``mmdet-hpu-train`` and ``mmdet-hpu-test --eval bbox`` in subprocesses, one after the other.
"""
import copy
import os
import os.path as osp
import re
import subprocess
import sys
import time
from typing import List, NamedTuple, Optional, Sequence, Tuple

import mmcv

from .stock import plain_dict, stock_model_cfg

PAD_GT_TYPE = 'HPUPadGT'
PAD_GT_KEYS = ('gt_valid',)
_MAP_LINE = re.compile(r'^bbox_mAP: ([0-9.]+)$', re.MULTILINE)
# What mmdet's CocoDataset.evaluate prints (and then reports no bbox_mAP) when nothing was detected.
_NO_DETECTIONS = 'The testing results of the whole dataset is empty.'


class SideResult(NamedTuple):
    """One side of the comparison: bbox mAP and wall-clock seconds."""
    bbox_map: float
    train_s: float
    eval_s: float


def stock_pipeline(pipeline: Sequence[dict]) -> Tuple[List[dict], List[str]]:
    """A training pipeline for stock heads: no ``HPUPadGT``, no ``gt_valid`` key.

    Args:
        pipeline (list[dict]): Pipeline step configs.

    Returns:
        tuple: The new list of steps (copies), and the changes made, in words.
    """
    steps, changes = [], []
    for step in pipeline:
        step = copy.deepcopy(plain_dict(step))
        if step.get('type') == PAD_GT_TYPE:
            changes.append(f'dropped {PAD_GT_TYPE}(max_num_gt={step.get("max_num_gt")})')
            continue
        keys = step.get('keys')
        if step.get('type') == 'Collect' and keys and any(k in PAD_GT_KEYS for k in keys):
            step['keys'] = [k for k in keys if k not in PAD_GT_KEYS]
            changes.append(f'Collect keys without {", ".join(PAD_GT_KEYS)}')
        steps.append(step)
    return steps, changes


def _stock_dataset(dataset: dict, changes: List[str]) -> dict:
    """A dataset config whose pipelines (also of wrapped datasets) suit stock heads."""
    dataset = dict(dataset)
    if 'pipeline' in dataset:
        dataset['pipeline'], changed = stock_pipeline(dataset['pipeline'])
        changes += changed
    if isinstance(dataset.get('dataset'), dict):
        dataset['dataset'] = _stock_dataset(dataset['dataset'], changes)
    if isinstance(dataset.get('datasets'), (list, tuple)):
        dataset['datasets'] = [_stock_dataset(d, changes) for d in dataset['datasets']]
    return dataset


def stock_config(cfg: mmcv.Config) -> Tuple[mmcv.Config, List[str]]:
    """The stock counterpart of a training config.

    Args:
        cfg (mmcv.Config): A config using HPU model types (and maybe ``HPUPadGT``).

    Returns:
        tuple: The stock ``mmcv.Config`` (same ``filename``), and the changes beyond the
        model types, in words (e.g. ``['dropped HPUPadGT(max_num_gt=16)', ...]``).
    """
    stock = plain_dict(cfg._cfg_dict.to_dict())
    stock['model'] = plain_dict(stock_model_cfg(cfg.model))
    changes: List[str] = []
    stock['data']['train'] = _stock_dataset(stock['data']['train'], changes)
    if isinstance(stock.get('train_pipeline'), list):  # the top-level variable, kept in sync
        stock['train_pipeline'] = stock_pipeline(stock['train_pipeline'])[0]
    return mmcv.Config(stock, filename=cfg.filename), changes


def parse_bbox_map(test_output: str) -> float:
    """The ``bbox_mAP`` that ``mmdet-hpu-test --eval bbox`` printed (0.0: no detections).

    Raises:
        ValueError: If the output has no ``bbox_mAP: <number>`` line.
    """
    found = _MAP_LINE.findall(test_output)
    if not found and _NO_DETECTIONS in test_output:
        return 0.0
    if not found:
        raise ValueError('no "bbox_mAP: <number>" line in the mmdet-hpu-test output:\n'
                         + test_output[-2000:])
    return float(found[-1])


def _run(module: str, args: List[str], log_path: str) -> str:
    """Run ``module.main()`` with ``args`` in a subprocess; tee its stdout into ``log_path``."""
    cmd = [sys.executable, '-c', f'from {module} import main; main()', *args]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=dict(os.environ))
    with open(log_path, 'w') as f:
        f.write(' '.join(cmd) + '\n' + proc.stdout)
    if proc.returncode != 0:
        raise RuntimeError(f'{module} failed (exit status {proc.returncode}); output in '
                           f'{log_path}:\n{proc.stdout[-3000:]}')
    return proc.stdout


def train_and_evaluate(config: str, work_dir: str, seed: int = 0, device: str = 'cpu',
                       train_args: Sequence[str] = (), test_args: Sequence[str] = (),
                       cfg_options: Sequence[str] = ()) -> SideResult:
    """``mmdet-hpu-train`` then ``mmdet-hpu-test --eval bbox`` on the last checkpoint.

    Args:
        config (str): Config file.
        work_dir (str): Where checkpoints, logs and ``train.out`` / ``test.out`` go.
        seed (int): ``--seed`` of the training.
        device (str): ``--device`` of both commands.
        train_args / test_args (Sequence[str]): Extra flags for each command.
        cfg_options (Sequence[str]): ``--cfg-options`` items for both commands.

    Returns:
        SideResult: bbox mAP, training and evaluation wall-clock seconds.
    """
    os.makedirs(work_dir, exist_ok=True)
    options = ['--cfg-options', *cfg_options] if cfg_options else []
    start = time.perf_counter()
    _run('mmdet_hpu.cli.train',
         [config, '--device', device, '--work-dir', work_dir, '--seed', str(seed),
          '--no-validate', *train_args, *options], osp.join(work_dir, 'train.out'))
    trained = time.perf_counter()
    output = _run('mmdet_hpu.cli.test',
                  [config, osp.join(work_dir, 'latest.pth'), '--device', device, '--eval',
                   'bbox', '--work-dir', work_dir, *test_args, *options],
                  osp.join(work_dir, 'test.out'))
    return SideResult(parse_bbox_map(output), trained - start, time.perf_counter() - trained)


def format_comparison(hpu: SideResult, stock: SideResult,
                      changes: Optional[Sequence[str]] = None) -> str:
    """The report: both mAPs, their difference (HPU - stock) and the times."""
    lines = [f'{"":8}{"bbox mAP":>10}{"train s":>10}{"eval s":>9}']
    for name, side in (('HPU', hpu), ('stock', stock)):
        lines.append(f'{name:8}{side.bbox_map:>10.3f}{side.train_s:>10.1f}{side.eval_s:>9.1f}')
    lines.append(f'difference (HPU - stock): {hpu.bbox_map - stock.bbox_map:+.3f}')
    if changes:
        lines.append('stock side pipeline changes: ' + '; '.join(changes))
    return '\n'.join(lines)
