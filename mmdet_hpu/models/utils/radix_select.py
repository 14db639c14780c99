"""The k largest entries of each row as a mask, by a three-pass radix select (a CPU speed-up).

``HPUSSDHead`` keeps, per image, the k hardest negatives, with k different per image. A full
sort of each row ranks them exactly, but on the CPU it is the largest single cost of the SSD
loss after the cross-entropy (~3.7 ms for (8, 8732)). Selecting by the keys' bits is about
twice as fast: each pass counts the candidates per value of the next 10-11 bits (one
``scatter_add`` per row), and the suffix sums of the counts give the digit of the k-th largest
key. After three passes that key t is known exactly; the mask is every key above t plus the
first (by index) of the keys equal to t, as many as k still needs. Fixed shapes and a fixed
op count, no host read.
"""
import torch

# (shift, width) of the digits, high to low, covering bits 0-30 of a non-negative int32.
PASSES = ((21, 10), (10, 11), (0, 10))


def largest_k_mask(keys: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Mask of the k largest non-negative keys of each row (ties: the lowest indices first).

    Args:
        keys (Tensor): (B, N) int32; entries >= 0 are candidates, negative ones never chosen
            (e.g. the int32 bit patterns of non-negative float32 values, which order as the
            values do).
        k (Tensor): (B,) long, how many to choose per row (capped at the row's candidates).

    Returns:
        Tensor: (B, N) bool with ``min(k, candidates)`` True entries per row.
    """
    num_rows, num_cols = keys.shape
    wide = keys.long()
    candidate = keys >= 0
    # remaining: the rank of the k-th largest key among the candidates sharing `prefix`.
    remaining = torch.minimum(k, candidate.sum(dim=1))[:, None]
    prefix = torch.zeros(num_rows, 1, dtype=torch.long, device=keys.device)
    ones = torch.ones(1, 1, dtype=torch.long, device=keys.device).expand(num_rows, num_cols)
    for shift, width in PASSES:
        size = 1 << width
        high = wide >> shift
        match = candidate if shift + width == 31 else (high >> width) == prefix
        # Candidates whose higher digits differ from the prefix are counted in slot `size`.
        slot = torch.where(match, high.bitwise_and_(size - 1), size)
        counts = torch.zeros(num_rows, size + 1, dtype=torch.long, device=keys.device)
        counts = counts.scatter_add_(1, slot, ones)[:, :size]
        at_or_above = counts.flip(1).cumsum(1).flip(1)  # candidates with digit >= d
        digit = (at_or_above >= remaining).sum(dim=1, keepdim=True) - 1
        remaining = remaining - (at_or_above.gather(1, digit) - counts.gather(1, digit))
        prefix = (prefix << width) | digit
    tied = wide == prefix
    return (wide > prefix) | (tied & (tied.cumsum(dim=1) <= remaining))
