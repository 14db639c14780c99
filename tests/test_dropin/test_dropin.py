"""Drop-in details found by running mmcv 1.7.2's own runner/checkpoint tests on the HPU classes."""
import logging

import pytest
import torch
from mmcv.parallel import MMDataParallel
from mmcv.runner import CheckpointLoader, build_runner

import mmdet_hpu  # noqa: F401  (registers the plugin, renames nothing visible)
from mmdet_hpu.checkpoint import save_checkpoint_atomic
from mmdet_hpu.parallel import HPUDataParallel
from mmdet_hpu.runner import HPUThroughputHook


class _Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)

    def train_step(self, data, optimizer=None):
        loss = self.linear(data).pow(2).mean()
        return dict(loss=loss, log_vars={'loss': loss.detach()}, num_samples=data.shape[0])


def test_positional_device_ids_and_output_device_as_mmdataparallel():
    stock = MMDataParallel(_Toy(), device_ids=None, output_device=None)
    wrapped = HPUDataParallel(_Toy(), [0])  # positional device_ids, as mmcv's tests do
    assert wrapped.src_device_obj == torch.device('cpu') and isinstance(wrapped, MMDataParallel)
    with_output = HPUDataParallel(_Toy(), [0], output_device=0, dim=0)
    assert with_output.output_device == 0 and with_output.dim == stock.dim
    assert HPUDataParallel(_Toy(), device_ids=[0], output_device=None).output_device is None
    legacy = HPUDataParallel(_Toy(), 'cpu')  # a device string where device_ids stands
    assert legacy.src_device_obj == torch.device('cpu') and legacy.device_ids == []
    out = wrapped.train_step(torch.ones(3, 2))
    assert out['num_samples'] == 3


def test_mmcv_log_line_reads_local_path(tmp_path):
    path = str(tmp_path / 'w.pth')
    save_checkpoint_atomic(torch.nn.Linear(2, 2), path)
    records = []
    logger = logging.getLogger('test_dropin_loader')
    logger.addHandler(type('H', (logging.Handler,), {'emit': lambda s, r: records.append(
        r.getMessage())})())
    logger.setLevel(logging.INFO)
    CheckpointLoader.load_checkpoint(path, map_location='cpu', logger=logger)
    assert records == [f'load checkpoint from local path: {path}']


def _runner(tmp_path, **kwargs):
    model = _Toy()
    return build_runner(dict(type='HPUEpochBasedRunner', max_epochs=1, epoch_sleep=0, **kwargs),
                        default_args=dict(model=model, work_dir=str(tmp_path),
                                          optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                                          logger=logging.getLogger('test_dropin')))


@pytest.mark.parametrize('switch, count', [(None, 1), (True, 1), (False, 0)])
def test_throughput_hook_can_be_switched_off_from_the_config(tmp_path, switch, count):
    kwargs = {} if switch is None else dict(throughput_hook=switch)
    runner = _runner(tmp_path, **kwargs)
    runner.register_training_hooks(lr_config=None, optimizer_config=dict(),
                                   log_config=dict(interval=1, hooks=[]))
    assert sum(isinstance(h, HPUThroughputHook) for h in runner.hooks) == count
    runner.run([[torch.ones(2, 2)] * 2], [('train', 1)])
    assert runner.iter == 2


def test_throughput_hook_switch_is_validated(tmp_path):
    with pytest.raises(ValueError, match='throughput_hook'):
        _runner(tmp_path, throughput_hook='no')


def test_throughput_switch_is_a_known_runner_key():
    """The config-key check must not call ``runner.throughput_hook`` a typo."""
    from mmcv.runner import RUNNERS

    from mmdet_hpu.validation import accepted_kwargs

    assert 'throughput_hook' in accepted_kwargs(RUNNERS.get('HPUEpochBasedRunner'))
    assert 'throughput_hook' in accepted_kwargs(RUNNERS.get('HPUIterBasedRunner'))
