"""How many graphs a compiler builds for the configured detector over many varied batches.

"0 dynamic ops" says nothing about recompiles: a graph compiler (Gaudi's ``hpu_backend``,
inductor) builds one graph per input signature it sees, and per-image ground-truth lengths or
per-batch Python values in the compiled code multiply them. This runs the detector's compiled
training step (:meth:`HPUYOLOV3.train_graph`, reached through ``forward_train`` after the
wrappers' host-side ground-truth batching) over N synthetic batches whose box counts follow a
COCO-like distribution, and its post-processing (:meth:`HPUYOLOV3.test_graph`, through
``simple_test``) at two batch sizes, under ``torch.compile(dynamic=False, fullgraph=True)`` with
a counting backend that does not compile (``'eager'``): the graph count a device compiler would
get, without paying for compilation.
"""
from typing import Dict, List, Sequence

import numpy as np
import torch

from mmdet_hpu.device.compile_counter import GraphCounter, raise_recompile_limit
from mmdet_hpu.models.utils.gt_padding import MIN_GT_BUCKET, gt_bucket
from mmdet_hpu.parallel.scatter import batch_gt

from . import synthetic

#: Default number of training batches: enough for every bucket to show up (see
#: :func:`coco_like_box_counts`: ~1 image in 80 holds more than 64 boxes).
DEFAULT_BATCHES = 40


def coco_like_box_counts(num_images: int, rng: np.random.Generator,
                         max_count: int = 93) -> List[int]:
    """Boxes per image drawn like COCO train2017's (mean ~7, 0 to 93, long tail).

    A negative binomial (mean 6.3, many images with 0-5 boxes) for 97 % of the images and a
    uniform 20 to ``max_count`` crowd tail for 3 %.

    Args:
        num_images (int): Images.
        rng (np.random.Generator): Random source.
        max_count (int): Largest count. Default: 93 (COCO's).

    Returns:
        list[int]: One count per image.
    """
    counts = rng.negative_binomial(1.3, 1.3 / (1.3 + 6.3), size=num_images)
    crowd = rng.random(num_images) < 0.03
    counts = np.where(crowd, rng.integers(20, max_count + 1, size=num_images), counts)
    return [int(c) for c in np.minimum(counts, max_count)]


def possible_buckets(max_num_gt: int) -> List[int]:
    """Every GT bucket (padded row count) a batch can take with this cap."""
    buckets, num = [], 0
    while not buckets or buckets[-1] < max_num_gt:
        buckets.append(gt_bucket(num, max_num_gt))
        num = buckets[-1] + 1
    return buckets if max_num_gt >= MIN_GT_BUCKET else [max_num_gt]


def _counting_compiler(counter: GraphCounter):
    def compiler(fn):
        return torch.compile(fn, backend=counter.wrap('eager'), dynamic=False, fullgraph=True)
    return compiler


def count_train_graphs(model, cfg, num_batches: int, batch_size: int,
                       img_hw: Sequence[int], seed: int = 0, device='cpu') -> Dict:
    """Graphs compiled by the training step over ``num_batches`` COCO-like batches.

    Args:
        model (HPUYOLOV3): The detector (its ``train_graph`` is compiled for the count, then
            restored).
        cfg (mmcv.Config): Config (train pipeline tail: ``HPUPadGT`` or not).
        num_batches (int): Batches.
        batch_size (int): Images per batch.
        img_hw (Sequence[int]): Input size.
        seed (int): Seed of box counts and data.
        device (str): Where to run.

    Returns:
        dict: ``batches``, ``batch_size``, ``buckets_seen`` (sorted), ``train_graphs``.
    """
    counter = GraphCounter()
    rng = np.random.default_rng(seed)
    max_gt = synthetic.max_gt_of(cfg)
    buckets = set()
    model.train_graph = _counting_compiler(counter)(model.train_graph)
    try:
        for index in range(num_batches):
            counts = [min(c, max_gt) for c in coco_like_box_counts(batch_size, rng)]
            batch = synthetic.make_train_batch(cfg, False, batch_size, tuple(img_hw), counts,
                                               device, seed=seed + index)
            batch = batch_gt(batch, model.padded_gt_max_num_gt)
            buckets.add(int(batch['gt_valid'].shape[-1]))
            model.forward_train(**batch)
    finally:
        del model.train_graph
    return dict(batches=num_batches, batch_size=batch_size, buckets_seen=sorted(buckets),
                possible_buckets=possible_buckets(max_gt), train_graphs=counter.graphs)


def count_test_graphs(model, cfg, batch_sizes: Sequence[int], batches_per_size: int,
                      img_hw: Sequence[int], device='cpu') -> Dict:
    """Graphs compiled by inference + post-processing (``simple_test``) per batch size.

    Returns:
        dict: ``test_batch_sizes``, ``test_batches``, ``test_graphs``.
    """
    counter = GraphCounter()
    model.test_graph = _counting_compiler(counter)(model.test_graph)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for size in batch_sizes:
                for index in range(batches_per_size):
                    batch = synthetic.make_test_batch(cfg, size, tuple(img_hw), device,
                                                      seed=100 + index)
                    model.simple_test(batch['img'], batch['img_metas'], rescale=True)
    finally:
        del model.test_graph
        model.train(was_training)
    return dict(test_batch_sizes=list(batch_sizes), test_batches=batches_per_size * len(
        batch_sizes), test_graphs=counter.graphs)


def count_compiled_graphs(model, cfg, sizes: Dict, num_batches: int = DEFAULT_BATCHES,
                          seed: int = 0, device='cpu') -> Dict:
    """Training and post-processing graph counts (see the module docstring).

    Args:
        model (HPUYOLOV3): The configured detector.
        cfg (mmcv.Config): Its config.
        sizes (dict): ``batch_size``, ``test_batch_size``, ``train_hw``, ``test_hw`` (the
            audit's :func:`~mmdet_hpu.analysis.audit.resolve_sizes`).
        num_batches (int): Training batches.
        seed (int): Seed.
        device (str): Where to run.

    Returns:
        dict: :func:`count_train_graphs` and :func:`count_test_graphs` merged.
    """
    torch._dynamo.reset()
    raise_recompile_limit()
    report = count_train_graphs(model, cfg, num_batches, sizes['batch_size'],
                                sizes['train_hw'], seed, device)
    test_bs = sizes['test_batch_size']
    report.update(count_test_graphs(model, cfg, sorted({test_bs, max(1, test_bs // 2)}),
                                    3, sizes['test_hw'], device))
    return report


def format_compile_lines(report: Dict) -> List[str]:
    """Table lines for the audit (empty when the count was not run)."""
    counts = report.get('compile')
    if not counts:
        return []
    return ['', 'compiled graphs (torch.compile dynamic=False fullgraph=True, counting backend):',
            f"  training step: {counts['train_graphs']} over {counts['batches']} batches of "
            f"{counts['batch_size']} with COCO-like box counts; GT buckets seen "
            f"{counts['buckets_seen']} of {counts['possible_buckets']}",
            f"  post-processing: {counts['test_graphs']} over {counts['test_batches']} batches "
            f"of sizes {counts['test_batch_sizes']}"]
