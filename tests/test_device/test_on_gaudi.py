"""Checks that need a real Intel Gaudi: skipped elsewhere (``@pytest.mark.hpu``).

Each runs in a fresh interpreter so that the execution mode is set before
``habana_frameworks`` is imported, as the console scripts do.
"""
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.hpu

STATIC_TRAINING = textwrap.dedent('''
    from mmdet_hpu import device
    device.set_execution_mode('lazy')
    import torch
    from habana_frameworks.torch.hpu.metrics import metric_global
    from mmdet_hpu.analysis.host_read_loop import synthetic_batches, tiny_yolov3
    from mmdet_hpu.parallel import HPUDataParallel

    model = HPUDataParallel(tiny_yolov3(hpu=True), device='hpu')
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    compilations = []
    for batch in synthetic_batches(8, batch_size=2, num_gt=3):
        optimizer.zero_grad(set_to_none=True)
        model.train_step(batch, optimizer)['loss'].backward()
        device.mark_step()
        optimizer.step()
        device.mark_step()
        stats = dict(metric_global('graph_compilation').stats())
        compilations.append(stats['TotalNumber'])
    device.synchronize('hpu')
    print('compilations', compilations)
    assert compilations[3:] == [compilations[3]] * 5, compilations
''')

NMS_ON_DEVICE = textwrap.dedent('''
    from mmdet_hpu import device
    device.set_execution_mode('eager')
    import torch
    import torchvision
    boxes = torch.rand(500, 4) * 100
    boxes[:, 2:] += boxes[:, :2]
    scores, idxs = torch.rand(500), torch.randint(0, 5, (500,))
    cpu = torchvision.ops.batched_nms(boxes, scores, idxs, 0.5)
    hpu = torchvision.ops.batched_nms(boxes.to('hpu'), scores.to('hpu'), idxs.to('hpu'), 0.5)
    assert torch.equal(cpu, hpu.cpu())
    print('nms ok')
''')


def _run(code):
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out.stdout


def test_fixed_shape_training_stops_compiling_after_warmup():
    assert 'compilations' in _run(STATIC_TRAINING)


def test_torchvision_batched_nms_runs_on_hpu_and_equals_cpu():
    assert 'nms ok' in _run(NMS_ON_DEVICE)
