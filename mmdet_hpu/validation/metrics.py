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


def check_eval_metrics(dataset, metrics: Sequence[str], option: str = '--eval') -> None:
    """Refuse metric names ``dataset.evaluate`` does not support, naming the valid ones.

    Args:
        dataset: A built mmdet dataset.
        metrics (str | Sequence[str]): The metric names.
        option (str): Where the names came from, for the message. Defaults to
            ``'--eval'``; ``'evaluation.metric'`` for validation during training.

    Raises:
        ValidationError: For the first unsupported name.
    """
    for metric in [metrics] if isinstance(metrics, str) else (metrics or ()):
        if not metric_accepted(dataset, metric):
            valid = valid_metrics(dataset)
            example = valid[0] if valid else 'bbox'
            fix = f'--eval {example}' if option == '--eval' else \
                f"--cfg-options {option}={example}"
            raise ValidationError(
                f'{option} {metric}: {type(dataset).__name__} has no metric {metric!r}; its '
                f'metrics are {", ".join(valid) or "(none known)"}. Example: {fix}. Checked '
                'before inference, nothing was run.')
