// Verilator harness for spikeline's Network: no Python per cycle, binary I/O.
//
// argv:   the result plan of hw.network.result_plan, four numbers per run:
//         sel start n count_word   (count_word -1: read n words; else read
//         min(n, status[count_word]) words; the first run is the status block)
// stdin:  a stream of commands, little-endian:
//         'W' u32 n, then n records {u32 sel, u32 addr, u64 data}: configuration-port writes
//         'R': run one sample (pulse start, wait for done, read the plan)
// stdout: per 'R': u32 n, then n u64 result words in plan order.
// stderr: at exit "ticks N" (clock cycles simulated, including writes and reads).
#include "Vnetwork.h"
#include "verilated.h"
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

static Vnetwork* top;
static uint64_t ticks = 0;

static inline void tick() {
    top->clk = 0; top->eval();
    top->clk = 1; top->eval();
    ++ticks;
}

struct Run { uint64_t sel, start, n; int64_t count_word; };
struct Write { uint32_t sel, addr; uint64_t data; };
static_assert(sizeof(Write) == 16, "packed write record");

static bool read_exact(void* p, size_t n) { return fread(p, 1, n, stdin) == n; }

int main(int argc, char** argv) {
    if (argc < 5 || (argc - 1) % 4 != 0) {
        fprintf(stderr, "harness: usage: (sel start n count_word)...\n");
        return 2;
    }
    std::vector<Run> plan;
    for (int a = 1; a + 3 < argc; a += 4)
        plan.push_back({strtoull(argv[a], 0, 10), strtoull(argv[a + 1], 0, 10), strtoull(argv[a + 2], 0, 10),
                        strtoll(argv[a + 3], 0, 10)});
    VerilatedContext ctx;
    top = new Vnetwork{&ctx};
    top->rst = 1; tick(); tick(); top->rst = 0; tick();  // the top registers rst: one more clock
    top->cfg_we = 0; top->start = 0;
    std::vector<uint64_t> out;
    std::vector<Write> writes;
    static char obuf[1 << 16];
    setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
    int c;
    while ((c = getchar_unlocked()) != EOF) {
        if (c == 'W') {
            uint32_t n;
            if (!read_exact(&n, 4)) { fprintf(stderr, "harness: truncated W header\n"); return 2; }
            writes.resize(n);
            if (n && !read_exact(writes.data(), sizeof(Write) * n)) { fprintf(stderr, "harness: truncated W records\n"); return 2; }
            top->cfg_we = 1;
            for (const Write& w : writes) {
                top->cfg_sel = w.sel; top->cfg_addr = w.addr; top->cfg_data = w.data; tick();
            }
            top->cfg_we = 0;
        } else if (c == 'R') {
            top->start = 1; tick(); top->start = 0;
            uint64_t guard = 0;
            while (!top->done) { tick(); if (++guard > 2000000000ULL) { fprintf(stderr, "harness: no done\n"); return 3; } }
            out.clear();
            // pipelined reads: the data of an address comes one clock edge after it is presented
            for (const Run& r : plan) {
                uint64_t n = r.n;
                if (r.count_word >= 0) {
                    uint64_t have = out[(size_t)r.count_word];
                    if (have < n) n = have;
                }
                top->res_sel = r.sel;
                for (uint64_t a = 0; a < n; ++a) {
                    top->res_addr = r.start + a; tick();
                    out.push_back(top->res_data);
                }
            }
            uint32_t n = (uint32_t)out.size();
            fwrite(&n, 4, 1, stdout);
            fwrite(out.data(), 8, out.size(), stdout);
            fflush(stdout);
        } else {
            fprintf(stderr, "harness: unknown command byte %d\n", c);
            return 2;
        }
    }
    fprintf(stderr, "ticks %llu\n", (unsigned long long)ticks);
    top->final();
    delete top;
    return 0;
}
