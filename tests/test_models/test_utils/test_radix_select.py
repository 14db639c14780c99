"""largest_k_mask (radix select) against a stable sort of each row."""
import pytest
import torch

from mmdet_hpu.models.utils.radix_select import largest_k_mask


def reference_mask(keys, k):
    """The k largest candidates (keys >= 0) per row, lowest index first among ties."""
    mask = torch.zeros_like(keys, dtype=torch.bool)
    for row in range(keys.shape[0]):
        candidates = (keys[row] >= 0).nonzero().squeeze(1)
        # Stable sort of the negated keys: descending keys, ascending index among ties.
        order = (-keys[row, candidates].long()).sort(stable=True).indices
        mask[row, candidates[order[:int(k[row])]]] = True
    return mask


@pytest.mark.parametrize('high', [4, 1 << 12, 1 << 22, (1 << 31) - 1])
def test_equals_a_stable_sort_of_each_row(high):
    """Keys drawn from [0, high): many ties when ``high`` is small, every pass's digits used
    when it is large; non-candidates (-1) spread in; k from 0 to beyond the candidates."""
    gen = torch.Generator().manual_seed(high % 1000)
    keys = torch.randint(0, high, (7, 500), generator=gen, dtype=torch.int64).int()
    keys[torch.rand(7, 500, generator=gen) < 0.3] = -1
    keys[6] = -1  # a row without candidates
    num_candidates = (keys >= 0).sum(dim=1)
    k = torch.tensor([0, 1, 2, 150, int(num_candidates[4]), int(num_candidates[5]) + 9, 5])
    mask = largest_k_mask(keys, k)
    assert torch.equal(mask, reference_mask(keys, torch.minimum(k, num_candidates)))


def test_float_bits_select_the_largest_losses():
    """The use in HPUSSDHead: int32 bit patterns of non-negative float losses."""
    gen = torch.Generator().manual_seed(1)
    loss = torch.rand(3, 1000, generator=gen) * torch.logspace(-6, 3, 1000)
    keys = loss.view(torch.int32)
    k = torch.tensor([10, 333, 999])
    mask = largest_k_mask(keys, k)
    for row in range(3):
        expected = loss[row].topk(int(k[row])).values.sort().values
        assert torch.equal(loss[row][mask[row]].sort().values, expected)


def test_compiles_to_one_graph():
    keys = torch.randint(-1, 1000, (2, 64), dtype=torch.int32)
    k = torch.tensor([3, 70])
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(largest_k_mask)(keys, k)
    assert explanation.graph_count == 1 and explanation.graph_break_count == 0
