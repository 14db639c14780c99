"""The fake bridge can be re-imported in one process (what the ``fake_habana`` fixture does).

torch < 2.7 asserts when a process-group backend is registered twice; before the fake
hccl module checked for that, every test after the first one that imported it failed
on torch 2.6 (``test_init_dist_single_process[hpu-pytorch]`` in the full suite).
"""
import sys

import torch.distributed as dist

from mmdet_hpu import device


def _forget_fake_bridge():
    for name in [n for n in sys.modules if n.split('.')[0] == 'habana_frameworks']:
        del sys.modules[name]
    device.reset_state()


def test_hccl_registers_once_across_reimports(fake_habana):
    assert device.init_hccl() == (1, 0, 0)
    _forget_fake_bridge()
    assert device.init_hccl() == (1, 0, 0)  # raised AssertionError on torch 2.6
    assert dist.Backend.HCCL == 'hccl'
    assert fake_habana.count('hccl.initialize_distributed_hpu') == 4  # 2 imports + 2 calls
