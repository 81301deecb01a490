"""Delay pruning and the tap budget honour every limit they promise."""
import numpy as np
import pytest
import torch

from sw.export import BudgetError
from sw.models.delay import DelayNet, NetConfig
from sw.prune import METHODS, budget_mask, enforce_budget, mask_stats, prune_mask, prune_net, schedule


def _case(seed):
    g = torch.Generator().manual_seed(seed)
    n_out, n_in, K = (int(x) for x in torch.randint(2, 12, (3,), generator=g))
    w = torch.randn(n_out, n_in, K + 3, generator=g)
    mask = torch.rand(w.shape, generator=g) < 0.8
    return w, mask


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", range(12))
def test_limits_are_honoured(method, seed):
    w, mask = _case(seed)
    K = w.shape[2]
    k = 1 + seed % 3
    levels = 1 + seed % K
    new = prune_mask(w, mask, method, k, levels)
    assert not (new & ~mask).any()  # pruning only removes taps
    used = new.any(0).any(0)
    assert int(used.sum()) <= levels  # distinct delays of the layer
    if method == "synaptic":
        assert int(new.sum(2).max()) <= k  # taps per synapse (i, j)
    elif method == "axonal":
        assert int(new.any(0).sum(1).max()) <= k  # levels per input axon i
        # every target of an axon uses only that axon's levels
        assert not (new & ~new.any(0, keepdim=True)).any()
    else:
        assert int(used.sum()) <= min(k, levels)
    if method == "synaptic":
        # kept taps are the largest live taps of their synapse among the kept levels
        live = mask & used[None, None, :]
        mag = w.abs()
        for j in range(w.shape[0]):
            for i in range(w.shape[1]):
                kept = mag[j, i][new[j, i]]
                dropped = mag[j, i][live[j, i] & ~new[j, i]]
                if kept.numel() and dropped.numel():
                    assert kept.min() >= dropped.max()
                if live[j, i].any():
                    assert new[j, i].sum() == min(k, int(live[j, i].sum()))


def test_kept_levels_are_the_most_important():
    w = torch.ones(3, 4, 6) * torch.tensor([1.0, 5.0, 2.0, 4.0, 3.0, 0.5])
    new = prune_mask(w, torch.ones_like(w, dtype=torch.bool), "synaptic", 6, 3)
    assert new.any(0).any(0).tolist() == [False, True, False, True, True, False]


def test_budget_mask_keeps_the_largest_taps():
    w, mask = _case(5)
    cap = int(mask.sum()) // 3
    new = budget_mask(w, mask, cap)
    assert int(new.sum()) == cap and not (new & ~mask).any()
    assert w.abs()[new].min() >= w.abs()[mask & ~new].max()
    assert torch.equal(budget_mask(w, mask, 10**6), mask)


def test_schedule_is_monotone_and_reaches_the_targets():
    cfg = {"method": "synaptic", "k": 1, "max_levels": 15, "steps": 4, "start": 0.2, "end": 0.6}
    plan = schedule(cfg, 31, 30)
    epochs = sorted(plan)
    assert len(epochs) == 4 and epochs[0] == 6 and epochs[-1] == 18
    ks = [plan[e][0] for e in epochs]
    ls = [plan[e][1] for e in epochs]
    assert ks == sorted(ks, reverse=True) and ls == sorted(ls, reverse=True)
    assert plan[epochs[-1]] == (1, 15)
    assert schedule({"method": "none"}, 31, 30) == {}
    one = schedule({"method": "layer", "k": 2, "max_levels": 4, "steps": 1, "start": 0.5, "end": 0.5}, 31, 2)
    assert one == {1: (2, 4)}


def test_bad_prune_arguments_name_the_field():
    w, mask = _case(0)
    with pytest.raises(ValueError, match="method"):
        prune_mask(w, mask, "random", 1, 2)
    with pytest.raises(ValueError, match="'k'"):
        prune_mask(w, mask, "synaptic", 0, 2)
    with pytest.raises(ValueError, match="max_levels"):
        prune_mask(w, mask, "synaptic", 1, 0)
    with pytest.raises(ValueError, match="steps"):
        schedule({"method": "synaptic", "steps": 0}, 31, 10)


def test_pruned_net_exports_within_limits_and_budget_is_enforced():
    from sw.export import to_model_file

    torch.manual_seed(0)
    net = DelayNet(NetConfig(n_inputs=20, hidden=[10], n_classes=4, T=30, max_delay=20, delay_stride=2, init_gain=2.0))
    prune_net(net, "axonal", 2, 5)
    m = to_model_file(net)
    for L in m.layers:
        assert len(L.delays) <= 5
        assert ((L.weights != 0).any(axis=2).sum(axis=0) <= 2).all()  # levels per axon in the file
    for s in net.synapses:
        st = mask_stats(s.mask, s.delays)
        assert st["levels"] <= 5 and st["max_levels_per_axon"] <= 2
    with pytest.raises(BudgetError, match=r"max_taps\[1\]"):
        enforce_budget(net, [None, 3], "error")
    enforce_budget(net, [50, 3], "prune")
    assert [int(s.mask.sum()) for s in net.synapses][1] <= 3 and int(net.synapses[0].mask.sum()) <= 50
    with pytest.raises(ValueError, match="on_exceed"):
        enforce_budget(net, 5, "ignore")
