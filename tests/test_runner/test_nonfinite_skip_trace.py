"""``--on-nonfinite-loss skip`` with a NaN in an input image leaves no trace (issue 9, 3)."""
import os.path as osp

import torch
from runner_helpers import PerIterHostReads, toy_runner

from mmdet_hpu.checkpoint import load_checkpoint_safe
from mmdet_hpu.runner.host_reads import HostReadCounter


class BNModel(torch.nn.Module):
    """Conv + BatchNorm: the forward pass updates running statistics from the image."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4, 1)

    def train_step(self, data, optimizer=None):
        loss = self.fc(self.bn(self.conv(data)).mean((2, 3))).pow(2).mean()
        return dict(loss=loss, log_vars=dict(loss=loss.detach()), num_samples=data.shape[0])


def _images(num, bad=()):
    gen = torch.Generator().manual_seed(0)
    images = [torch.rand(2, 3, 8, 8, generator=gen) for _ in range(num)]
    for it in bad:
        images[it - 1][0, 1, 4, 4] = float('nan')  # one NaN pixel in one input image
    return images


def _run(work_dir, images, checkpoint=None):
    torch.manual_seed(0)
    model = BNModel()
    runner = toy_runner(str(work_dir), model=model)
    runner.register_training_hooks(
        lr_config=None, optimizer_config=dict(grad_clip=None, nonfinite_loss='skip'),
        checkpoint_config=checkpoint, log_config=dict(interval=50, hooks=[]))
    runner.run([images], [('train', 1)])
    return runner, model


def test_skipped_nan_image_leaves_batchnorm_statistics_untouched(tmp_path):
    _, model = _run(tmp_path / 'bad', _images(4, bad=[2]), checkpoint=dict(interval=1))
    good = _images(4)
    _, reference = _run(tmp_path / 'ref', [good[0], good[2], good[3]])
    for (name, a), (_, b) in zip(model.named_buffers(), reference.named_buffers()):
        assert torch.equal(a, b), name  # as if the bad batch had never been seen
    for a, b in zip(model.parameters(), reference.parameters()):
        assert torch.equal(a, b)
    state = load_checkpoint_safe(osp.join(str(tmp_path / 'bad'), 'epoch_1.pth'))['state_dict']
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_skip_mode_buffer_copies_add_no_host_read(tmp_path):
    torch.manual_seed(0)
    model = BNModel()
    runner = toy_runner(str(tmp_path), model=model)
    runner.register_training_hooks(
        lr_config=None, optimizer_config=dict(grad_clip=None, nonfinite_loss='skip'),
        log_config=dict(interval=50, hooks=[]))
    counter = HostReadCounter()
    probe = PerIterHostReads(counter)
    runner.register_hook(probe, priority='HIGHEST')
    with counter:
        runner.run([_images(3)], [('train', 1)])
    # The documented read of skip mode (isfinite of the loss), nothing more.
    assert probe.per_iter == [{'scalar': 0, 'bulk': 1, 'dynamic': 0}] * 3
