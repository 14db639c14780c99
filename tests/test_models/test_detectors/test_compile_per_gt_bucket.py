"""At most one compiled graph per GT bucket for each static detector's whole training step.

40 batches of 2 images with 0-128 boxes each, padded to their bucket (8/16/32/64/128 rows),
through ``forward_train`` + ``_parse_losses`` under ``torch.compile(dynamic=False,
fullgraph=True)`` with a counting backend (``count_training_graphs``, ``tests/tiny_detectors.py``).
"""
import pytest
from tiny_detectors import CONFIGS, IMG_SIZES, count_training_graphs, tiny_detector


@pytest.mark.slow
@pytest.mark.parametrize('name', list(CONFIGS))
def test_training_step_compiles_at_most_one_graph_per_gt_bucket(name):
    model = tiny_detector(name)
    graphs, buckets = count_training_graphs(model, IMG_SIZES[name], num_batches=40)
    assert buckets == {8, 16, 32, 64, 128}
    assert 1 <= graphs <= len(buckets), (graphs, sorted(buckets))


@pytest.mark.parametrize('name', list(CONFIGS))
def test_tiny_detector_keeps_the_configs_static_types(name):
    model = tiny_detector(name)
    assert type(model).__name__ in ('HPURetinaNet', 'HPUSingleStageDetector')
    assert type(model.bbox_head).__name__ == {
        'retinanet': 'HPURetinaHead', 'ssd': 'HPUSSDHead', 'fcos': 'HPUFCOSHead',
        'fcos_giou': 'HPUFCOSHead', 'atss': 'HPUATSSHead'}[name]
