"""Every HPU head's ``forward_train`` passes the padded ground truth's mask to ``loss``."""
import pytest

from mmdet_hpu.models.dense_heads import (
    HPUATSSHead,
    HPUFCOSHead,
    HPURetinaHead,
    HPUSSDHead,
    HPUYOLOV3Head,
)
from mmdet_hpu.models.dense_heads.padded_gt_forward import PaddedGTForwardMixin


@pytest.mark.parametrize('head_cls', [HPUYOLOV3Head, HPURetinaHead, HPUSSDHead, HPUFCOSHead,
                                      HPUATSSHead])
def test_every_hpu_head_uses_it_not_stocks(head_cls):
    assert head_cls.forward_train is PaddedGTForwardMixin.forward_train


class _RecordingHead(PaddedGTForwardMixin):
    """Forward, loss and proposals that record what they are given."""

    def __init__(self):
        self.calls = []

    def __call__(self, x):
        self.calls.append('forward')
        return ('cls', 'reg')

    def _before_loss(self):
        self.calls.append('before_loss')

    def loss(self, *args, **kwargs):
        self.calls.append(('loss', args, kwargs))
        return dict(loss_cls=1.0)

    def get_bboxes(self, *outs, img_metas, cfg):
        return [('boxes', outs, cfg)]


def test_passes_gt_valid_to_loss_after_the_hook():
    head = _RecordingHead()
    losses = head.forward_train('feats', ['meta'], 'boxes', 'labels', gt_valid='valid')
    assert losses == dict(loss_cls=1.0)
    assert head.calls[:2] == ['forward', 'before_loss']
    assert head.calls[2] == ('loss', ('cls', 'reg', 'boxes', 'labels', ['meta']),
                             dict(gt_bboxes_ignore=None, gt_valid='valid'))


def test_returns_proposals_when_asked():
    head = _RecordingHead()
    losses, proposals = head.forward_train('feats', ['meta'], 'boxes', 'labels',
                                           proposal_cfg='cfg')
    assert losses == dict(loss_cls=1.0)
    assert proposals == [('boxes', ('cls', 'reg'), 'cfg')]
