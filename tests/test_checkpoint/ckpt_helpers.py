"""Small models, optimizers and pickles shared by the checkpoint tests."""
import torch
from torch import nn


class TinyNet(nn.Module):
    """Conv + BN (buffers included) + linear; ``train_step`` for mmcv runners."""

    CLASSES = ('a', 'b')

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).mean((2, 3)))

    def train_step(self, data, optimizer=None, **kwargs):
        loss = self(data).sum()
        return dict(loss=loss, log_vars=dict(loss=loss.item()), num_samples=len(data))


def stepped_optimizer(model, kind='adamw'):
    """An optimizer that has taken one step, so its state holds tensors."""
    if kind == 'adamw':
        optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model(torch.rand(2, 3, 8, 8)).sum().backward()
    optimizer.step()
    return optimizer


MARKER = {'path': None}


def mark(path):
    """Called when the reduce payload below is unpickled: proves code ran."""
    with open(path, 'w') as f:
        f.write('code from the checkpoint ran')
    return 'payload'


class Payload:
    """Unpickles to a call of :func:`mark` (stands in for ``os.system``)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (mark, (self.path,))


class CustomThing:
    """A plain custom class, not in any allow-list."""

    def __init__(self):
        self.value = 3
