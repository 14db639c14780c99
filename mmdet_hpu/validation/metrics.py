"""Check ``--eval`` metric names before inference, not after it."""
from typing import List, Sequence

from .errors import ValidationError

#: Metric names of mmdet 2.28's datasets, tried on the dataset to list the valid ones.
KNOWN_METRICS = ('bbox', 'segm', 'proposal', 'proposal_fast', 'mAP', 'recall', 'PQ',
                 'cityscapes')


class _MetricAccepted(Exception):
    """Raised when ``evaluate`` touches the results: the metric names passed its check."""


class _ProbeResults(list):
    """Stand-in results: any use after the metric check raises :class:`_MetricAccepted`."""

    def _accepted(self, *args, **kwargs):
        raise _MetricAccepted

    __len__ = __iter__ = __getitem__ = _accepted


def metric_accepted(dataset, metric: str) -> bool:
    """Whether ``dataset.evaluate`` accepts ``metric`` (it checks names before results).

    mmdet datasets raise ``KeyError`` for an unsupported name before they look at the
    results; the stand-in results stop ``evaluate`` as soon as it gets past that check,
    so nothing is computed.
    """
    try:
        dataset.evaluate(_ProbeResults(), metric=metric)
    except _MetricAccepted:
        return True
    except KeyError:
        return False
    except Exception:  # noqa: BLE001  (any other early failure: not a metric-name error)
        return True
    return True


def valid_metrics(dataset) -> List[str]:
    """The names of :data:`KNOWN_METRICS` that ``dataset`` accepts."""
    return [name for name in KNOWN_METRICS if metric_accepted(dataset, name)]


def check_eval_metrics(dataset, metrics: Sequence[str]) -> None:
    """Refuse metric names ``dataset.evaluate`` does not support, naming the valid ones.

    Args:
        dataset: A built mmdet dataset.
        metrics (Sequence[str]): The ``--eval`` names.

    Raises:
        ValidationError: For the first unsupported name.
    """
    for metric in metrics or ():
        if not metric_accepted(dataset, metric):
            valid = valid_metrics(dataset)
            raise ValidationError(
                f'--eval {metric}: {type(dataset).__name__} has no metric {metric!r}; its '
                f'metrics are {", ".join(valid) or "(none known)"}. Example: --eval '
                f'{valid[0] if valid else "bbox"}. Checked before inference, nothing was run.')
