// Verilator harness for spikeline's Network: no Python per cycle.
// stdin:  lines "W sel addr data" (configuration-port write) and "R" (run one sample).
// argv:   n_status n_spiking_layers sel_status readout_sel n_readout max_spikes T records_addr_0 ...
//         (step cycle stamps are read from sel readout_sel + 2)
// stdout: per "R", one line: status words, per spiking layer its records, readout words, step cycles.
#include "Vnetwork.h"
#include "verilated.h"
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <vector>

static Vnetwork* top;
static uint64_t ticks = 0;

static inline void tick() {
    top->clk = 0; top->eval();
    top->clk = 1; top->eval();
    ++ticks;
}

static inline bool read_u64(uint64_t& v) {
    int c = getchar_unlocked();
    while (c == ' ' || c == '\n' || c == '\r') c = getchar_unlocked();
    if (c == EOF) return false;
    v = 0;
    while (c >= '0' && c <= '9') { v = v * 10 + (c - '0'); c = getchar_unlocked(); }
    return true;
}

static inline uint64_t result(uint64_t sel, uint64_t addr) {
    top->res_sel = sel; top->res_addr = addr; tick();
    return top->res_data;
}

int main(int argc, char** argv) {
    if (argc < 8) { fprintf(stderr, "harness: usage: n_status n_spiking sel_status readout_sel n_readout max_spikes T rec_addr...\n"); return 2; }
    VerilatedContext ctx;
    top = new Vnetwork{&ctx};
    const uint64_t n_status = strtoull(argv[1], 0, 10), n_spiking = strtoull(argv[2], 0, 10);
    const uint64_t sel_status = strtoull(argv[3], 0, 10), readout_sel = strtoull(argv[4], 0, 10);
    const uint64_t n_readout = strtoull(argv[5], 0, 10), max_spikes = strtoull(argv[6], 0, 10);
    const uint64_t n_steps = strtoull(argv[7], 0, 10);
    if ((uint64_t)argc < 8 + n_spiking) { fprintf(stderr, "harness: missing record addresses\n"); return 2; }
    top->rst = 1; tick(); tick(); top->rst = 0;
    top->cfg_we = 0; top->start = 0;
    std::vector<uint64_t> out;
    int c;
    while ((c = getchar_unlocked()) != EOF) {
        if (c == 'W') {
            uint64_t sel, addr, data;
            if (!read_u64(sel) || !read_u64(addr) || !read_u64(data)) { fprintf(stderr, "harness: bad W line\n"); return 2; }
            top->cfg_we = 1; top->cfg_sel = sel; top->cfg_addr = addr; top->cfg_data = data; tick();
            top->cfg_we = 0;
        } else if (c == 'R') {
            top->start = 1; tick(); top->start = 0;
            uint64_t guard = 0;
            while (!top->done) { tick(); if (++guard > 2000000000ULL) { fprintf(stderr, "harness: no done\n"); return 3; } }
            out.clear();
            for (uint64_t a = 0; a < n_status; ++a) out.push_back(result(sel_status, a));
            for (uint64_t l = 0; l < n_spiking; ++l) {
                uint64_t n = result(sel_status, strtoull(argv[8 + l], 0, 10));
                if (n > max_spikes) n = max_spikes;
                for (uint64_t a = 0; a < n; ++a) out.push_back(result(l, a));
            }
            for (uint64_t a = 0; a < n_readout; ++a) out.push_back(result(readout_sel, a));
            for (uint64_t a = 0; a < n_steps; ++a) out.push_back(result(readout_sel + 2, a));
            for (size_t i = 0; i < out.size(); ++i) printf(i ? " %llu" : "%llu", (unsigned long long)out[i]);
            printf("\n");
            fflush(stdout);
        }
    }
    fprintf(stderr, "ticks %llu\n", (unsigned long long)ticks);
    top->final();
    delete top;
    return 0;
}
