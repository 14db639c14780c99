"""One rank of the two-process DDP test; started like torchrun (env vars) by test_ddp.py.

Usage: ``python ddp_worker.py OUT_DIR DEVICE`` with RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT set. Writes ``OUT_DIR/rank{RANK}.pt`` with the flattened
parameters after 3 training iterations and a few facts about the run.
"""
import os
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from tiny_detector import build_tiny_detector, eval_batch, train_batch  # noqa: E402


def main(out_dir, device):
    import torch.distributed as dist

    from mmdet_hpu.dist import init_dist
    from mmdet_hpu.parallel import HPUDistributedDataParallel

    rank, world_size, _ = init_dist('pytorch', device=device, bucket_cap_mb=4)
    model = build_tiny_detector(seed=rank)  # DDP must broadcast rank 0's weights
    # MobileNetV2 computes an unused last stage, as in mmdet's yolov3_mobilenetv2 config.
    ddp = HPUDistributedDataParallel(model, device=device, bucket_cap_mb=4,
                                     find_unused_parameters=True)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for it in range(3):
        outputs = ddp.train_step(train_batch(seed=100 * rank + it), optimizer)
        optimizer.zero_grad()
        outputs['loss'].backward()
        optimizer.step()
        losses.append(outputs['loss'].item())  # local loss (log_vars are all-reduced)
    with torch.no_grad():
        val = ddp.val_step(train_batch(seed=7), None)
        ddp.eval()  # distributed-eval forward (mmcv's breaks on torch >= 2.1)
        detections = ddp(return_loss=False, rescale=True, **eval_batch())
    params = torch.cat([p.detach().flatten() for p in model.parameters()])
    torch.save(dict(params=params, losses=losses, val_loss=val['loss'].item(),
                    backend=str(dist.get_backend()), world_size=world_size,
                    first_bucket=dist._DEFAULT_FIRST_BUCKET_BYTES,
                    num_detection_lists=len(detections[0])),
               osp.join(out_dir, f'rank{rank}.pt'))
    dist.destroy_process_group()


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
    os._exit(0)
