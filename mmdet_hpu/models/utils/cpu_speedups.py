"""Where the CPU-only tricks of the static heads apply.

A few rewrites are CPU speed-ups measured on this project's machine: a 1-byte first-match
pass instead of ``max`` with indices (``static_max_iou_assigner``), a radix select over the
int32 bit patterns of non-negative losses instead of a float sort (``HPUSSDHead``,
``radix_select``), and the softmax passes of ``fused_cross_entropy`` over cache-sized blocks
of rows, all exact. Other devices take the plain op: a graph compiler gains nothing from the
trick (it fuses the passes itself), and a device's kernels for 1-byte arithmetic or dtype
reinterpretation are not guaranteed (on Gaudi an op without a kernel falls back to
the host, a copy each way). Tests patch :func:`use_cpu_speedups` to run the device path on the
CPU.
"""
import torch


def use_cpu_speedups(tensor: torch.Tensor) -> bool:
    """True when ``tensor`` lives on the CPU (a static, shape-free decision)."""
    return tensor.device.type == 'cpu'
