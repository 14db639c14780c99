"""Bring fixed-size batch detections to the host with one device-to-host copy."""
from typing import List, Tuple

import numpy as np
import torch


def detections_to_host(dets: torch.Tensor, labels: torch.Tensor, num_dets: torch.Tensor
                       ) -> List[Tuple[np.ndarray, np.ndarray]]:
    """Copy a batch's static detections to the host at once and split them per image.

    mmdet's ``bbox2result`` copies two tensors per image (2B + 1 reads for a batch of B);
    here the three tensors are packed into one float32 (B, 6M + 1) tensor on the device and
    read once. Labels and counts are small integers (< 2**24), exact in float32.

    Args:
        dets (Tensor): (B, M, 5) boxes and scores, best first; rows from ``num_dets`` on are
            padding.
        labels (Tensor): (B, M) long labels.
        num_dets (Tensor): (B,) long count of real rows.

    Returns:
        list[tuple[ndarray, ndarray]]: per image, boxes (n, 5) float32 and labels (n,) int64.
    """
    num_imgs, num_rows = labels.shape
    packed = torch.cat([dets.reshape(num_imgs, num_rows * 5).float(), labels.float(),
                        num_dets.reshape(num_imgs, 1).float()], dim=1)
    # The one device-to-host read of the batch.
    host = packed.cpu().numpy()
    results = []
    for row in host:
        count = int(row[-1])
        boxes = row[:num_rows * 5].reshape(num_rows, 5)[:count]
        results.append((boxes, row[num_rows * 5:num_rows * 6][:count].astype(np.int64)))
    return results
