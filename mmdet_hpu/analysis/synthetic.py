"""Models and synthetic batches for the audit and the benchmark (no dataset needed).

* :func:`build_model_pair` builds the detector of a config **and** a stock mmdet copy of it
  (every ``HPU*`` type replaced by its stock parent, HPU-only arguments dropped, see
  :mod:`mmdet_hpu.analysis.stock`) holding the same weights, without downloading anything.
* :func:`make_train_batch` / :func:`make_test_batch` synthesise what the data loader would
  deliver for a config: images at the pipeline's input size, image metas and COCO-like ground
  truth, passed through the tail of the config's own train pipeline (``HPUPadGT`` when it is
  used, ``DefaultFormatBundle``, ``Collect``), collated and unwrapped as
  ``MMDataParallel.scatter`` does.
"""
import copy
import logging
from typing import Dict, List, Optional, Sequence, Tuple

import mmcv
import numpy as np
import torch
from mmcv.parallel import DataContainer, collate
from mmcv.utils import build_from_cfg
from mmdet.datasets.builder import PIPELINES
from mmdet.models import build_detector

from mmdet_hpu.errors import ConfigError

from .stock import plain_dict, stock_model_cfg, strip_pretrained

#: Per-image box counts cycled over a batch: COCO-like (mean ~7, long tail); 57 boxes at batch 8.
COCO_LIKE_COUNTS = (3, 12, 1, 7, 19, 2, 8, 5)
#: What the synthetic training samples hold (``gt_valid`` from ``HPUPadGT``).
SYNTHETIC_KEYS = frozenset(('img', 'gt_bboxes', 'gt_labels', 'gt_valid'))
_TAIL_TYPES = ('HPUPadGT', 'DefaultFormatBundle', 'Collect')
_IMG_NORM_CFG = dict(mean=np.zeros(3, np.float32), std=np.ones(3, np.float32), to_rgb=False)


# ------------------------------------------------------------------------------ models
def offline_model_cfg(model_cfg: dict) -> mmcv.ConfigDict:
    """``cfg.model`` without ``pretrained`` / ``Pretrained`` inits (nothing to download)."""
    return mmcv.ConfigDict(strip_pretrained(plain_dict(model_cfg)))


def _build(model_cfg: dict, cfg: mmcv.Config) -> torch.nn.Module:
    return build_detector(model_cfg, train_cfg=cfg.get('train_cfg'),
                          test_cfg=cfg.get('test_cfg'))


def _init_quietly(model: torch.nn.Module) -> None:
    """``model.init_weights()`` (mmdet's initialisation before training) without its log."""
    logger = logging.getLogger('mmcv')
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)


def build_model_pair(cfg: mmcv.Config, device: str = 'cpu', seed: int = 0,
                     init: bool = True, checkpoint: Optional[str] = None
                     ) -> Tuple[torch.nn.Module, torch.nn.Module]:
    """Build the configured detector and its stock copy with identical weights.

    ``pretrained`` and ``init_cfg=dict(type='Pretrained', ...)`` are stripped from the model
    config first, so nothing is downloaded: without ``checkpoint`` the weights are mmdet's
    from-scratch initialisation (``init_weights()``; the backbone's default init instead of
    ImageNet weights). The stock copy replaces every ``HPU*`` type by its stock parent (see
    :func:`mmdet_hpu.analysis.stock.stock_model_cfg`); for a config without HPU types it is
    the same model.

    Args:
        cfg (mmcv.Config): The config.
        device (str): Where the models go.
        seed (int): Seed of the weights.
        init (bool): Call ``init_weights()`` (else PyTorch's default initialisation).
        checkpoint (str | None): Weights to load (safe ``weights_only`` loading).

    Returns:
        tuple[nn.Module, nn.Module]: configured, stock (both in train mode).
    """
    model_cfg = offline_model_cfg(cfg.model)
    torch.manual_seed(seed)
    configured = _build(model_cfg, cfg)
    if init:
        _init_quietly(configured)
    if checkpoint:
        from mmdet_hpu.checkpoint import load_checkpoint_safe, load_weights

        load_weights(configured, load_checkpoint_safe(checkpoint))
    stock = _build(stock_model_cfg(model_cfg), cfg)
    stock.load_state_dict(configured.state_dict(), strict=True)
    return configured.to(device).train(), stock.to(device).train()


def num_classes_of(cfg: mmcv.Config) -> int:
    """Object classes of a detector config (``bbox_head`` or the RoI head's ``bbox_head``).

    Raises:
        ConfigError: If the model config names none.
    """
    model = cfg.model
    heads = [model.get('bbox_head'), model.get('roi_head', {}).get('bbox_head')]
    for head in heads:
        if isinstance(head, (list, tuple)) and head:  # cascade: one per stage
            head = head[0]
        if isinstance(head, dict) and 'num_classes' in head:
            return int(head['num_classes'])
    raise ConfigError('the model config has no bbox_head.num_classes nor '
                      'roi_head.bbox_head.num_classes; the audit cannot draw box labels')


# ------------------------------------------------------------------------------ sizes
def _size_of(value) -> Optional[Tuple[int, int]]:
    if isinstance(value, int):
        return value, value
    if isinstance(value, (tuple, list)) and len(value) == 2 and \
            all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    if isinstance(value, list) and value:  # a list of scales: the largest
        sizes = [_size_of(v) for v in value]
        sizes = [s for s in sizes if s is not None]
        return max(sizes) if sizes else None
    return None


def _flatten(pipeline: Sequence[dict]) -> List[dict]:
    steps = []
    for step in pipeline:
        steps.append(step)
        steps.extend(_flatten(step.get('transforms', [])))
    return steps


def pipeline_input_size(pipeline: Sequence[dict], default: int = 416) -> Tuple[int, int]:
    """Network input (h, w) of a pipeline: ``Pad(size=...)``, else the largest resize scale.

    mmcv scales are (w, h) or (long, short) edges; a square canvas (every YOLOv3 config of this
    repository) is unambiguous.

    Args:
        pipeline (Sequence[dict]): ``data.train.pipeline`` or ``data.test.pipeline``.
        default (int): Used when nothing gives a size.

    Returns:
        tuple[int, int]: (h, w).
    """
    steps = _flatten(pipeline)
    for step in steps:
        if step.get('type') == 'Pad' and _size_of(step.get('size')) is not None:
            return _size_of(step['size'])
    divisor = max([step.get('size_divisor') or 1 for step in steps
                   if step.get('type') == 'Pad'] + [1])
    for step in steps:
        size = _size_of(step.get('img_scale'))
        if size is not None:  # (w, h), padded to the Pad step's size_divisor
            return tuple(-(-edge // divisor) * divisor for edge in (size[1], size[0]))
    return default, default


def _pipeline_of(dataset: dict) -> list:
    """A dataset config's pipeline, looking through wrappers (``RepeatDataset``...)."""
    while 'pipeline' not in dataset and isinstance(dataset.get('dataset'), dict):
        dataset = dataset['dataset']
    return dataset.get('pipeline', [])


def config_sizes(cfg: mmcv.Config, img_size: Optional[int] = None
                 ) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    """Train and test input sizes of a config, or ``img_size`` square for both."""
    if img_size is not None:
        return (img_size, img_size), (img_size, img_size)
    data = cfg.get('data', {})
    train = pipeline_input_size(_pipeline_of(data.get('train', {})))
    test = pipeline_input_size(_pipeline_of(data.get('test', {})))
    return train, test


def config_batch_sizes(cfg: mmcv.Config) -> Tuple[int, int]:
    """``samples_per_gpu`` of the train and test loaders (defaults 8 and 16)."""
    data = cfg.get('data', {})
    train = data.get('samples_per_gpu', 8)
    test = data.get('test_dataloader', {}).get('samples_per_gpu', 16)
    return int(train), int(test)


# ------------------------------------------------------------------------------ batches
def train_tail(cfg: mmcv.Config, stock: bool) -> List[dict]:
    """The last pipeline steps (``HPUPadGT``, formatting, ``Collect``) of the train pipeline.

    For the stock side ``HPUPadGT`` and ``gt_valid`` are removed, as a stock config would have.

    Args:
        cfg (mmcv.Config): The config.
        stock (bool): Strip the HPU-only parts.

    Returns:
        list[dict]: Pipeline step configs.
    """
    pipeline = _pipeline_of(cfg.get('data', {}).get('train', {}))
    tail = [copy.deepcopy(dict(step)) for step in pipeline if step.get('type') in _TAIL_TYPES]
    if not any(step['type'] == 'Collect' for step in tail):
        tail = [dict(type='DefaultFormatBundle'),
                dict(type='Collect', keys=['img', 'gt_bboxes', 'gt_labels'])]
    if stock:
        tail = [step for step in tail if step['type'] != 'HPUPadGT']
    for step in tail:
        if step['type'] == 'Collect':
            step['keys'] = _collected_keys(step['keys'], stock)
    return tail


def _collected_keys(keys: Sequence[str], stock: bool) -> List[str]:
    """``Collect`` keys the synthetic samples provide (no ignored boxes: none is drawn).

    Raises:
        ConfigError: For keys the audit cannot synthesise (masks, segmentation maps...).
    """
    dropped = {'gt_bboxes_ignore'} | ({'gt_valid'} if stock else set())
    unsupported = [key for key in keys if key not in SYNTHETIC_KEYS | dropped]
    if unsupported:
        raise ConfigError(f'the train pipeline collects {unsupported}; the audit synthesises '
                          f'only {sorted(SYNTHETIC_KEYS)} (images and boxes), so detectors that '
                          'train on masks or segmentation maps cannot be audited yet. Audit a '
                          'box-only variant of the config instead.')
    return [key for key in keys if key not in dropped]


def pads_gt(cfg: mmcv.Config) -> bool:
    """Whether the train pipeline pads the ground truth (``HPUPadGT``)."""
    return any(step['type'] == 'HPUPadGT' for step in train_tail(cfg, stock=False))


def max_gt_of(cfg: mmcv.Config) -> int:
    """The smallest ``max_num_gt`` of the ``HPUPadGT`` step and the head (large if unset)."""
    limits = [step.get('max_num_gt', 128) for step in train_tail(cfg, stock=False)
              if step['type'] == 'HPUPadGT']
    head = cfg.model.get('bbox_head') or {}
    if 'HPU' in head.get('type', ''):
        limits.append(head.get('max_num_gt', 128))
    return min(limits) if limits else 10 ** 6


def gt_counts(batch_size: int, num_gt: Optional[int], max_num_gt: int) -> List[int]:
    """Boxes per image: ``num_gt`` everywhere, or :data:`COCO_LIKE_COUNTS` cycled.

    Counts are capped at ``max_num_gt`` (what ``HPUPadGT`` accepts).
    """
    if num_gt is not None:
        counts = [num_gt] * batch_size
    else:
        counts = [COCO_LIKE_COUNTS[i % len(COCO_LIKE_COUNTS)] for i in range(batch_size)]
    return [min(count, max_num_gt) for count in counts]


def random_boxes(num: int, img_hw: Tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """``num`` boxes inside an (h, w) image with log-uniform sizes (small to large, as COCO)."""
    height, width = img_hw
    low = min(4.0, 0.5 * min(height, width))
    wh = np.exp(rng.uniform(np.log(low), np.log(0.9 * min(height, width)), size=(num, 2)))
    x1 = rng.uniform(0, width - wh[:, 0])
    y1 = rng.uniform(0, height - wh[:, 1])
    return np.stack([x1, y1, x1 + wh[:, 0], y1 + wh[:, 1]], axis=1).astype(np.float32)


def _image_meta(pad_hw: Tuple[int, int]) -> dict:
    """Meta of a 4:3 landscape photo twice the canvas size, resized keeping ratio, padded."""
    pad_h, pad_w = pad_hw
    img_h, img_w = min(pad_h, round(pad_w * 3 / 4)), pad_w
    return dict(filename='synthetic.jpg', ori_filename='synthetic.jpg',
                ori_shape=(2 * img_h, 2 * img_w, 3), img_shape=(img_h, img_w, 3),
                pad_shape=(pad_h, pad_w, 3),
                scale_factor=np.full(4, 0.5, dtype=np.float32), flip=False,
                flip_direction=None, img_norm_cfg=_IMG_NORM_CFG)


def _samples(pad_hw, counts, num_classes, seed) -> List[dict]:
    rng = np.random.default_rng(seed)
    samples = []
    for count in counts:
        results = _image_meta(pad_hw)
        results['img'] = rng.standard_normal((*pad_hw, 3)).astype(np.float32)
        results['gt_bboxes'] = random_boxes(count, results['img_shape'][:2], rng)
        results['gt_labels'] = rng.integers(0, num_classes, size=count).astype(np.int64)
        samples.append(results)
    return samples


def _unwrap(value, device):
    """What ``MMDataParallel.scatter`` does for one device: unwrap DataContainers, move."""
    if isinstance(value, DataContainer):
        return _unwrap(value.data[0], None if value.cpu_only else device)
    if isinstance(value, torch.Tensor):
        return value if device is None else value.to(device)
    if isinstance(value, list):
        return [_unwrap(item, device) for item in value]
    return value


def collate_batch(samples: Sequence[dict], device) -> Dict:
    """Collate pipeline outputs into one batch on ``device`` (the runner's path)."""
    batch = collate(list(samples), samples_per_gpu=len(samples))
    return {key: _unwrap(value, device) for key, value in batch.items()}


def make_train_batch(cfg: mmcv.Config, stock: bool, batch_size: int,
                     pad_hw: Tuple[int, int], counts: Sequence[int], device='cpu',
                     seed: int = 0) -> Dict:
    """A training batch as the config's data loader would deliver it.

    Args:
        cfg (mmcv.Config): The config (its train pipeline tail and ``num_classes``).
        stock (bool): Build the stock side's batch (no ``HPUPadGT``).
        batch_size (int): Images.
        pad_hw (tuple[int, int]): Network input size.
        counts (Sequence[int]): Boxes per image.
        device (str | torch.device): Where the tensors go.
        seed (int): Seed of images and boxes (same seed -> same data on both sides).

    Returns:
        dict: ``img`` (B, 3, H, W), ``img_metas`` and ``gt_bboxes``/``gt_labels`` (and
        ``gt_valid`` for a config that pads the ground truth).
    """
    num_classes = num_classes_of(cfg)
    samples = _samples(pad_hw, list(counts)[:batch_size], num_classes, seed)
    steps = [build_from_cfg(step, PIPELINES) for step in train_tail(cfg, stock)]
    for step in steps:
        samples = [step(results) for results in samples]
    return collate_batch(samples, device)


def make_test_batch(cfg: mmcv.Config, batch_size: int, pad_hw: Tuple[int, int],
                    device='cpu', seed: int = 1) -> Dict:
    """A test batch (``img`` and ``img_metas``, with ``batch_input_shape``)."""
    samples = _samples(pad_hw, [0] * batch_size, num_classes_of(cfg), seed)
    steps = [build_from_cfg(dict(type='DefaultFormatBundle'), PIPELINES),
             build_from_cfg(dict(type='Collect', keys=['img']), PIPELINES)]
    for step in steps:
        samples = [step(results) for results in samples]
    batch = collate_batch(samples, device)
    for meta in batch['img_metas']:
        meta['batch_input_shape'] = tuple(pad_hw)
    return batch
