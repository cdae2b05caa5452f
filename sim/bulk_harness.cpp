// bulk_harness.cpp: drive a Verilated bnnflow network top with many images, no Python per cycle.
//
// Built by bnnflow.sim.bulk with `verilator --cc --exe --build --prefix Vtop`
// together with the design's Verilog and a generated header, bulk_config.h:
//
//   BULK_IN_BITS     s_axis_tdata width (layer 0's SIMD * input_bits)
//   BULK_OUT_BITS    m_axis_tdata width (last layer's PE * output_bits)
//   BULK_IN_WORDS    input words per image (layer 0's in_stream_words: SF, or a conv's map words)
//   BULK_OUT_WORDS   output words per image (the last layer's out_stream_words: NF)
//
// so one source serves every generated top: ports of up to 64 bits are plain
// integers in Verilator's C++ model, wider ones VlWide<N> arrays of 32-bit
// words; the overloads below handle both.
//
// Files (the streams of docs/ARTIFACT.md "Streams", laid out as in
// bnnflow.host.dma_layout: every word ceil(bits/8) little-endian bytes, words
// back to back, image after image):
//
//   --in FILE       input words, BULK_IN_WORDS per image; defines the image count
//   --tlast FILE    one byte per image: 1 = the image's last input word carries
//                   TLAST (it ends a frame), 0 = it does not
//   --out FILE      written: the output words, BULK_OUT_WORDS per image
//   --cycles FILE   written: per image, the cycle (little-endian uint64, counted
//                   from the end of reset) at which its last output word was taken
//   --summary FILE  written: a one-line JSON object with totals
//
// Stream control: --random-images K applies the random pauses to the first K
// images only (source side: while sending them; sink side: while receiving
// them); later images run back to back, which is where cycles per image are
// measured. --idle P: with probability P per cycle a burst of 1..4 cycles
// without TVALID starts (only between words: a presented word is held until
// taken, as AXI-Stream requires). --backpressure P: the same bursts of TREADY
// low on the sink. --seed S seeds the generators (splitmix64).
//
// A parameter write bus (cfg_we, or a bare bnn_mvtu's cfg_weight_we and
// cfg_threshold_we) is held idle when the top has one.
//
// Checks (exit status 3, one message on stderr naming image, word and cycle):
// output TLAST on any word other than the last word of a frame's last image,
// or missing there; an output word changing or withdrawn while stalled;
// output words beyond the expected count; no transfer on either stream for
// --stall-cycles cycles, or more than --max-cycles cycles in all (a hang: the
// message says how many images and words went in and came out). Usage and
// file errors exit with status 2.

#include <cerrno>
#include <cstdarg>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "Vtop.h"
#include "bulk_config.h"
#include "verilated.h"

namespace {

constexpr std::size_t bytes_of(std::size_t bits) { return (bits + 7) / 8; }
constexpr std::size_t IN_BYTES = bytes_of(BULK_IN_BITS);
constexpr std::size_t OUT_BYTES = bytes_of(BULK_OUT_BITS);

[[noreturn]] void fail(int status, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void fail(int status, const char* fmt, ...) {
    std::va_list args;
    va_start(args, fmt);
    std::fputs("bulk_harness: error: ", stderr);
    std::vfprintf(stderr, fmt, args);
    std::fputc('\n', stderr);
    va_end(args);
    std::exit(status);
}

// ---- port access: integral ports (<= 64 bits) and VlWide ports (> 64 bits)

template <typename T>
constexpr std::size_t port_bytes(const T&) { return sizeof(T); }
template <std::size_t N>
constexpr std::size_t port_bytes(const VlWide<N>&) { return 4 * N; }

template <typename T>
void put_word(T& port, const uint8_t* src) {
    uint64_t value = 0;
    for (std::size_t i = 0; i < IN_BYTES; ++i) value |= uint64_t(src[i]) << (8 * i);
    port = static_cast<T>(value);
}
template <std::size_t N>
void put_word(VlWide<N>& port, const uint8_t* src) {
    for (std::size_t w = 0; w < N; ++w) {
        uint32_t value = 0;
        for (std::size_t b = 0; b < 4 && 4 * w + b < IN_BYTES; ++b) value |= uint32_t(src[4 * w + b]) << (8 * b);
        port[w] = value;
    }
}

template <typename T>
void get_word(const T& port, uint8_t* dst) {
    const uint64_t value = port;
    for (std::size_t i = 0; i < OUT_BYTES; ++i) dst[i] = uint8_t(value >> (8 * i));
}
template <std::size_t N>
void get_word(const VlWide<N>& port, uint8_t* dst) {
    for (std::size_t i = 0; i < OUT_BYTES; ++i) dst[i] = uint8_t(port[i / 4] >> (8 * (i % 4)));
}

// ---- parameter write bus: hold its write enables low when the top has one (as tb_network.tie_off_config)

#define BULK_TIE_LOW(port)                                                                         \
    template <typename T, typename = void>                                                         \
    struct Has_##port : std::false_type {};                                                        \
    template <typename T>                                                                          \
    struct Has_##port<T, std::void_t<decltype(std::declval<T&>().port)>> : std::true_type {};     \
    template <typename T>                                                                          \
    void tie_low_##port(T& top) {                                                                  \
        if constexpr (Has_##port<T>::value) top.port = 0;                                          \
    }
BULK_TIE_LOW(cfg_we)
BULK_TIE_LOW(cfg_weight_we)
BULK_TIE_LOW(cfg_threshold_we)
#undef BULK_TIE_LOW

template <typename T>
void tie_off_config(T& top) {
    tie_low_cfg_we(top);
    tie_low_cfg_weight_we(top);
    tie_low_cfg_threshold_we(top);
}

// ---- seeded pauses

struct SplitMix64 {
    uint64_t state;
    uint64_t next() {
        uint64_t z = (state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    double uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
};

// True (pause this cycle) with probability p, in bursts of 1..4 cycles.
struct Pauses {
    SplitMix64 rng;
    double probability;
    int left = 0;
    bool step() {
        if (left > 0) {
            --left;
            return true;
        }
        if (probability > 0 && rng.uniform() < probability) {
            left = int(rng.next() % 4);  // this cycle plus 0..3 more
            return true;
        }
        return false;
    }
};

// ---- command line and files

struct Options {
    std::string in, tlast, out, cycles, summary;
    uint64_t random_images = 0, seed = 0, max_cycles = 0, stall_cycles = 0;
    double idle = 0, backpressure = 0;
};

double parse_probability(const char* name, const char* text) {
    char* end = nullptr;
    errno = 0;
    const double value = std::strtod(text, &end);
    if (errno || end == text || *end || !(value >= 0 && value < 1))
        fail(2, "%s %s: expected a number in [0, 1)", name, text);
    return value;
}

uint64_t parse_count(const char* name, const char* text) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long value = std::strtoull(text, &end, 10);
    if (errno || end == text || *end || text[0] == '-') fail(2, "%s %s: expected a non-negative integer", name, text);
    return value;
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg.rfind("+verilator", 0) == 0) continue;  // Verilator's own runtime options
        if (i + 1 >= argc) fail(2, "%s needs a value (see the header of bulk_harness.cpp)", arg.c_str());
        const char* value = argv[++i];
        if (arg == "--in") o.in = value;
        else if (arg == "--tlast") o.tlast = value;
        else if (arg == "--out") o.out = value;
        else if (arg == "--cycles") o.cycles = value;
        else if (arg == "--summary") o.summary = value;
        else if (arg == "--random-images") o.random_images = parse_count("--random-images", value);
        else if (arg == "--seed") o.seed = parse_count("--seed", value);
        else if (arg == "--max-cycles") o.max_cycles = parse_count("--max-cycles", value);
        else if (arg == "--stall-cycles") o.stall_cycles = parse_count("--stall-cycles", value);
        else if (arg == "--idle") o.idle = parse_probability("--idle", value);
        else if (arg == "--backpressure") o.backpressure = parse_probability("--backpressure", value);
        else fail(2, "unknown option %s (see the header of bulk_harness.cpp)", arg.c_str());
    }
    const std::pair<const char*, const std::string*> required[] = {
        {"--in", &o.in}, {"--tlast", &o.tlast}, {"--out", &o.out}, {"--cycles", &o.cycles}, {"--summary", &o.summary}};
    for (const auto& r : required)
        if (r.second->empty()) fail(2, "missing %s FILE", r.first);
    if (o.max_cycles == 0 || o.stall_cycles == 0) fail(2, "--max-cycles and --stall-cycles must be given and > 0");
    return o;
}

std::vector<uint8_t> read_file(const std::string& path) {
    FILE* fh = std::fopen(path.c_str(), "rb");
    if (!fh) fail(2, "cannot open %s: %s", path.c_str(), std::strerror(errno));
    std::vector<uint8_t> data;
    uint8_t chunk[1 << 16];
    std::size_t got;
    while ((got = std::fread(chunk, 1, sizeof chunk, fh)) > 0) data.insert(data.end(), chunk, chunk + got);
    const bool bad = std::ferror(fh);
    std::fclose(fh);
    if (bad) fail(2, "cannot read %s", path.c_str());
    return data;
}

void write_file(const std::string& path, const void* data, std::size_t size) {
    FILE* fh = std::fopen(path.c_str(), "wb");
    if (!fh) fail(2, "cannot write %s: %s", path.c_str(), std::strerror(errno));
    const bool ok = std::fwrite(data, 1, size, fh) == size;
    if (std::fclose(fh) != 0 || !ok) fail(2, "cannot write %s", path.c_str());
}

}  // namespace

int main(int argc, char** argv) {
    const Options opt = parse(argc, argv);

    // ---- inputs
    const std::vector<uint8_t> words_in = read_file(opt.in);
    const std::size_t image_bytes = BULK_IN_WORDS * IN_BYTES;
    if (words_in.size() % image_bytes)
        fail(2, "%s: %zu bytes is not a whole number of images (%d words of %zu bytes = %zu bytes each)",
             opt.in.c_str(), words_in.size(), BULK_IN_WORDS, IN_BYTES, image_bytes);
    const uint64_t images = words_in.size() / image_bytes;
    const std::vector<uint8_t> frame_end = read_file(opt.tlast);
    if (frame_end.size() != images)
        fail(2, "%s: %zu bytes, expected one per image (%" PRIu64 ")", opt.tlast.c_str(), frame_end.size(), images);
    if (BULK_IN_BITS % 8) {  // the bits above the port width must be zero (docs: "zero on the way in")
        const uint8_t mask = uint8_t(0xFFu << (BULK_IN_BITS % 8));
        for (std::size_t w = 0; w < words_in.size() / IN_BYTES; ++w)
            if (words_in[w * IN_BYTES + IN_BYTES - 1] & mask)
                fail(2, "%s: input word %zu (image %zu) has bits set above its %d-bit width", opt.in.c_str(), w,
                     w / BULK_IN_WORDS, BULK_IN_BITS);
    }

    auto context = std::make_unique<VerilatedContext>();
    context->commandArgs(argc, argv);
    auto top = std::make_unique<Vtop>(context.get(), "bnnflow_top");
    static_assert(BULK_IN_WORDS > 0 && BULK_OUT_WORDS > 0, "words per image must be positive");
    if (port_bytes(top->s_axis_tdata) < IN_BYTES || port_bytes(top->m_axis_tdata) < OUT_BYTES)
        fail(2, "bulk_config.h (%d-bit input, %d-bit output words) does not match the model's ports (%zu, %zu bytes)",
             BULK_IN_BITS, BULK_OUT_BITS, port_bytes(top->s_axis_tdata), port_bytes(top->m_axis_tdata));

    const uint64_t in_total = images * BULK_IN_WORDS;
    const uint64_t out_total = images * BULK_OUT_WORDS;
    std::vector<uint8_t> words_out(out_total * OUT_BYTES);
    std::vector<uint64_t> done(images, 0);
    Pauses source{{opt.seed * 2 + 1}, opt.idle};
    Pauses sink{{opt.seed * 2 + 2}, opt.backpressure};

    // ---- reset: 4 cycles, like the cocotb testbenches
    top->clk = 0;
    top->rst = 1;
    top->s_axis_tvalid = 0;
    top->s_axis_tlast = 0;
    top->m_axis_tready = 0;
    tie_off_config(*top);
    top->eval();
    for (int i = 0; i < 4; ++i) {
        top->clk = 1;
        top->eval();
        top->clk = 0;
        top->eval();
    }
    top->rst = 0;

    const auto started = std::chrono::steady_clock::now();
    uint64_t cycle = 0, sent = 0, received = 0, last_transfer = 0;
    uint64_t source_pauses = 0, sink_pauses = 0;
    bool presenting = false;
    bool held = false;  // last cycle's output word was valid but not taken: it must stay
    std::vector<uint8_t> held_word(OUT_BYTES), word(OUT_BYTES);
    int held_last = 0;
    uint64_t tail = 0;  // cycles run after the last expected output word (extra words must not appear)
    uint64_t finished = 0;  // cycles from the end of reset to (including) the one that took the last output word

    auto progress = [&]() {
        char text[256];
        std::snprintf(text, sizeof text,
                      "%" PRIu64 " of %" PRIu64 " images (%" PRIu64 " of %" PRIu64 " input words) sent, %" PRIu64
                      " of %" PRIu64 " images (%" PRIu64 " of %" PRIu64 " output words) received",
                      sent / BULK_IN_WORDS, images, sent, in_total, received / BULK_OUT_WORDS, images, received,
                      out_total);
        return std::string(text);
    };

    while (received < out_total || tail < 16) {
        // -- drive this cycle's inputs (the clock is low)
        if (!presenting && sent < in_total) {
            const bool random = sent / BULK_IN_WORDS < opt.random_images;
            if (random && source.step()) {
                ++source_pauses;
            } else {
                put_word(top->s_axis_tdata, &words_in[sent * IN_BYTES]);
                const uint64_t image = sent / BULK_IN_WORDS;
                top->s_axis_tlast = (sent % BULK_IN_WORDS == BULK_IN_WORDS - 1) && frame_end[image];
                presenting = true;
            }
        }
        top->s_axis_tvalid = presenting;
        bool ready = true;
        if (received < out_total && received / BULK_OUT_WORDS < opt.random_images && sink.step()) {
            ready = false;
            ++sink_pauses;
        }
        top->m_axis_tready = ready;
        top->eval();  // settle the combinational outputs on the new inputs

        // -- what the rising edge will transfer
        const bool in_fire = presenting && top->s_axis_tready;
        const bool out_valid = top->m_axis_tvalid;
        if (held) {
            get_word(top->m_axis_tdata, word.data());
            if (!out_valid || word != held_word || int(top->m_axis_tlast) != held_last)
                fail(3, "m_axis: output word %" PRIu64 " (image %" PRIu64 ") was %s while TREADY was low, at cycle %"
                     PRIu64 "; %s", received, received / BULK_OUT_WORDS, out_valid ? "changed" : "withdrawn",
                     cycle, progress().c_str());
        }
        if (out_valid && ready) {
            if (received >= out_total)
                fail(3, "m_axis: an output word beyond the expected %" PRIu64 " (%" PRIu64 " images x %d words) at "
                     "cycle %" PRIu64, out_total, images, BULK_OUT_WORDS, cycle);
            const uint64_t image = received / BULK_OUT_WORDS;
            const int k = int(received % BULK_OUT_WORDS);
            const int want_last = (k == BULK_OUT_WORDS - 1) && frame_end[image];
            const int got_last = top->m_axis_tlast;
            if (got_last != want_last)
                fail(3, "m_axis: TLAST=%d on output word %d of image %" PRIu64 " at cycle %" PRIu64 ", expected %d "
                     "(TLAST belongs on the last word of an image whose last input word had TLAST); %s",
                     got_last, k, image, cycle, want_last, progress().c_str());
            get_word(top->m_axis_tdata, &words_out[received * OUT_BYTES]);
            ++received;
            if (k == BULK_OUT_WORDS - 1) done[image] = cycle;
            if (received == out_total) finished = cycle + 1;
        }
        held = out_valid && !ready;
        if (held) {
            get_word(top->m_axis_tdata, held_word.data());
            held_last = top->m_axis_tlast;
        }

        // -- rising edge, then the clock goes low again
        top->clk = 1;
        top->eval();
        top->clk = 0;
        if (in_fire) {
            ++sent;
            presenting = false;
        }
        if (in_fire || (out_valid && ready)) last_transfer = cycle;
        ++cycle;
        if (received == out_total) {
            ++tail;
        } else {
            if (cycle - last_transfer > opt.stall_cycles)
                fail(3, "hang: no transfer on s_axis or m_axis for %" PRIu64 " cycles (cycle %" PRIu64 "); %s",
                     opt.stall_cycles, cycle, progress().c_str());
            if (cycle > opt.max_cycles)
                fail(3, "hang: the cycle limit %" PRIu64 " was reached; %s", opt.max_cycles, progress().c_str());
        }
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    top->final();

    write_file(opt.out, words_out.data(), words_out.size());
    std::vector<uint8_t> done_bytes(done.size() * 8);
    for (std::size_t i = 0; i < done_bytes.size(); ++i) done_bytes[i] = uint8_t(done[i / 8] >> (8 * (i % 8)));
    write_file(opt.cycles, done_bytes.data(), done_bytes.size());
    char summary[512];
    const int n = std::snprintf(summary, sizeof summary,
                                "{\"images\": %" PRIu64 ", \"total_cycles\": %" PRIu64 ", \"source_pause_cycles\": %"
                                PRIu64 ", \"sink_pause_cycles\": %" PRIu64 ", \"seconds\": %.6f, "
                                "\"in_bits\": %d, \"out_bits\": %d, \"in_words_per_image\": %d, "
                                "\"out_words_per_image\": %d}\n",
                                images, finished, source_pauses, sink_pauses, seconds, BULK_IN_BITS,
                                BULK_OUT_BITS, BULK_IN_WORDS, BULK_OUT_WORDS);
    write_file(opt.summary, summary, std::size_t(n));
    return 0;
}
