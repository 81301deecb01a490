"""The Network's generated Verilog lints clean in Icarus (-g2012) and Verilator (--lint-only -Wno-WIDTH)."""
import pytest

from hw.model_file import Layer, Model
from hw.network import LayerSpec, Network, NetworkSpec
from hw.verilog import lint, write_verilog


@pytest.mark.parametrize("unit,lanes", [("ring", 1), ("scdq", 1), ("ring", 2)])
def test_network_verilog_lints_clean(unit, lanes, tmp_path):
    spec = NetworkSpec((LayerSpec(6, 5, (0, 2, 5), 40), LayerSpec(5, 4, (0, 1), 30), LayerSpec(4, 3, (3,), 12)),
                       unit, T_max=32, max_events=64, max_spikes=64, ring_lanes=lanes)
    path = write_verilog(Network(spec), "network", tmp_path / f"network_{unit}{lanes}.v")
    text = path.read_text()
    for port in ("cfg_we", "cfg_sel", "start", "done", "res_data"):
        assert port in text
    lint(path, top="network")
