"""The result-port protocol as a pure function: the reads of a finished sample
(hw.network.result_plan) and their decoding (decode_words), checked on words
written by hand from the documented address map."""
import numpy as np
import pytest

from hw.network import (CORE_STATUS, STATUS_BASE, LayerSpec, NetworkSpec, ResultWords, decode_words, result_plan,
                        result_reads)
from types import SimpleNamespace


def spec():
    return NetworkSpec((LayerSpec(3, 4, (0, 2), 20), LayerSpec(4, 2, (0,), 8)), "scdq", T_max=5, max_spikes=6)


def test_plan_reads_status_first_then_as_many_records_as_counted():
    s = spec()
    plan = result_plan(s, T=3, n_classes=2)
    assert (plan[0].sel, plan[0].start, plan[0].n, plan[0].count_word) == (s.sel_status, 0, STATUS_BASE + 16, None)
    status = [0] * plan[0].n
    status[s.status_addr(0, "records")] = 9  # more than max_spikes: capped
    reads = result_reads(plan[1:], status)
    assert reads[:6] == [(0, a) for a in range(6)]
    assert reads[6:12] == [(s.sel_readout, a) for a in range(6)]
    assert reads[12:] == [(s.sel_step_cycles, t) for t in range(3)]


def test_decode_words_from_the_address_map():
    s = spec()
    T, nc = 3, 2
    status = [0] * (STATUS_BASE + 16)
    status[0], status[2] = 777, T - 1  # cycles, exit step (no early exit)
    counters = {"busy": 50, "sops": 40, "stalls": 1, "spikes": 3, "records": 3, "peak": 2, "overflow": 0, "dropped": 0}
    for n, v in counters.items():
        status[s.status_addr(0, n)] = v
    status[s.status_addr(1, "sops")] = 7
    records = [(0, 1), (1, 3), (2, 0)]  # (t, j) in emission order
    ib = s.idx_bits(0)
    rec_words = [t << ib | j for t, j in records]
    R = np.array([[5, -3], [-(1 << 31), 12], [0, (1 << 31) - 1]])
    readout = [int(v) & ((1 << 32) - 1) for v in R.reshape(-1)]
    steps = [100, 300, 777]
    words = status + rec_words + readout + steps
    h = decode_words(s, SimpleNamespace(T=T, n_classes=nc), words)
    assert h.cycles == 777 and h.exit_step == T - 1 and not h.early_exit and not h.record_overflow
    assert h.counters[0] == counters and h.counters[1]["sops"] == 7
    assert h.emissions[0][0].tolist() == [0, 1, 2] and h.emissions[0][1].tolist() == [1, 3, 0]
    assert h.readout.tolist() == R.tolist()
    assert h.step_cycles.tolist() == steps
    with pytest.raises(ValueError, match="plan reads"):
        ResultWords(result_plan(s, T, nc), words[:-1])
