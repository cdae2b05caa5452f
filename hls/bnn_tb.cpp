/**
 * \file bnn_tb.cpp
 * \brief C-simulation / co-simulation testbench of bnnflow_top: the
 *        interface of docs/ACCEL.md, driven the way the host drives it.
 *
 * Usage: bnn_tb STEP...
 *   load PARAMS          a load-mode run on the parameter stream in PARAMS
 *   infer IN GOLDEN OUT  an infer-mode run on the images in IN; every output beat is
 *                        compared with GOLDEN; the beats computed go to OUT ('-': nowhere)
 *                        and, when built with BNNFLOW_LAYER_TAPS (bnnflow.hlsflow's C
 *                        simulation), layer k's output words to OUT.layer<k>
 *                        (ceil(PE*OUT_BITS/8) little-endian bytes per word)
 * The steps run in order on one instance, so `infer A load B infer B load A infer A`
 * checks a runtime reload and the way back.
 *
 * The files are DMA buffers, written by bnnflow.hlsflow from bnnflow.accel and
 * bnnflow.packing (this file does not pack anything): beats back to back,
 * kInBeatBits/8 bytes each (IN, PARAMS) or kOutBeatBits/8 (GOLDEN, OUT),
 * little-endian. IN holds kInWords * kInBeatsPerWord beats per image; PARAMS
 * exactly kParamBeats beats. The testbench adds the side channels the AXI DMA
 * adds: TKEEP all ones; TLAST on the last beat of every fifth image and of the
 * last image of an infer run, on the last beat of a load. Output TLAST must
 * come back on exactly those images' last beats, TKEEP/TSTRB all ones.
 *
 * Before and around the steps it checks the interface itself (lines "CHECK
 * ..."): every run reports kSignature; reps = 0 and an unknown mode consume
 * and produce nothing (status 0, resp. kStatusBadMode); the first infer
 * step's first image with a TKEEP bit clear, and with a padding bit set,
 * reports kStatusFormatError and still scores right; the first load step's
 * stream one beat too long, with TLAST a beat early, and with a TKEEP bit
 * clear reports kStatusLoadLengthError, resp. kStatusFormatError.
 *
 * Prints each mismatching score (the first 20) and one summary line
 * `bnn_tb: network NAME: ... mismatches=M tlast_errors=T format_errors=F check_errors=E -> PASS|FAIL`;
 * exits 0 when everything matched, 1 otherwise, 2 on unusable arguments or files.
 */
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

// Only the constants and types: the memories and the engines belong to bnn_top.cpp.
#define BNNFLOW_INTERFACE_ONLY
#include "bnn_top.hpp"

namespace {

using namespace bnnflow;
typedef std::vector<unsigned char> Bytes;

constexpr unsigned kInBeatBytes = kInBeatBits / 8;
constexpr unsigned kOutBeatBytes = kOutBeatBits / 8;
constexpr unsigned kInBeatsPerImage = kInWords * kInBeatsPerWord;
constexpr unsigned kOutBeatsPerImage = kOutWords * kOutBeatsPerWord;
constexpr unsigned kOutWordBeatBits = kOutBeatsPerWord * kOutBeatBits;  // an output word with its padding
constexpr unsigned kShowMax = 20;

struct Tally {
  unsigned mismatches = 0, tlast_errors = 0, format_errors = 0, check_errors = 0, shown = 0;
  unsigned images = 0, steps = 0;
};
Tally tally;

/// Whole file as bytes; false when it cannot be read.
bool read_file(const std::string &path, Bytes &bytes) {
  std::ifstream f(path.c_str(), std::ios::binary);
  if (!f) return false;
  bytes.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  return true;
}

std::string hex(unsigned value) {
  std::ostringstream s;
  s << "0x" << std::hex << value;
  return s.str();
}

/// W bits from W/8 little-endian bytes.
template<int W>
ap_uint<W> from_bytes(const unsigned char *p) {
  ap_uint<W> value = 0;
  for (int k = 0; k < W / 8; k++) value(8 * k + 7, 8 * k) = p[k];
  return value;
}

template<int W>
void to_bytes(const ap_uint<W> &value, unsigned char *p) {
  for (int k = 0; k < W / 8; k++) p[k] = (unsigned char)value(8 * k + 7, 8 * k).to_uint();
}

/// Input beats as the AXI DMA sends them: TKEEP/TSTRB all ones, TLAST clear.
std::vector<InBeat> in_beats(const unsigned char *bytes, size_t count) {
  std::vector<InBeat> beats(count);
  for (size_t i = 0; i < count; i++) {
    beats[i].data = from_bytes<kInBeatBits>(bytes + i * kInBeatBytes);
    beats[i].keep = -1;
    beats[i].strb = -1;
    beats[i].last = 0;
  }
  return beats;
}

void push(hls::stream<InBeat> &in, const std::vector<InBeat> &beats) {
  for (size_t i = 0; i < beats.size(); i++) in.write(beats[i]);
}

template<typename T>
size_t drain(hls::stream<T> &s) {
  size_t count = 0;
  while (!s.empty()) {
    s.read();
    count++;
  }
  return count;
}

void check(bool ok, const std::string &what) {
  std::cout << "CHECK " << what << (ok ? ": ok" : ": FAIL") << "\n";
  if (!ok) tally.check_errors++;
}

/// One call of the top; every call must report the build's signature.
unsigned run(hls::stream<InBeat> &in, hls::stream<OutBeat> &out, unsigned reps, unsigned mode) {
  unsigned signature = ~kSignature, status = ~0u;
  bnnflow_top(in, out, reps, mode, &signature, &status);
  if (signature != kSignature) check(false, "signature " + hex(signature) + ", the header says " + hex(kSignature));
  return status;
}

/// TLAST pattern of an infer run of n images: every fifth image, and the last one.
bool ends_with_tlast(unsigned v, unsigned n) { return v % 5 == 4 || v + 1 == n; }

/// Read the output beats of n images into bytes, counting side-channel errors.
Bytes collect(hls::stream<OutBeat> &out, unsigned n, bool &short_output) {
  Bytes computed(size_t(n) * kOutBeatsPerImage * kOutBeatBytes, 0);
  short_output = false;
  for (unsigned v = 0; v < n && !short_output; v++) {
    for (unsigned b = 0; b < kOutBeatsPerImage; b++) {
      if (out.empty()) {
        std::cout << "bnn_tb: output stream ended at image " << v << " beat " << b << "\n";
        short_output = true;
        break;
      }
      const OutBeat beat = out.read();
      const bool want_last = b + 1 == kOutBeatsPerImage && ends_with_tlast(v, n);
      if (bool(beat.last) != want_last) {
        tally.tlast_errors++;
        if (tally.shown++ < kShowMax)
          std::cout << "TLAST image " << v << " beat " << b << ": got " << beat.last << ", expected " << want_last
                    << "\n";
      }
      if (!beat.keep.and_reduce() || !beat.strb.and_reduce()) {
        tally.format_errors++;
        if (tally.shown++ < kShowMax)
          std::cout << "TKEEP/TSTRB image " << v << " beat " << b << ": not all ones\n";
      }
      to_bytes<kOutBeatBits>(beat.data, &computed[(size_t(v) * kOutBeatsPerImage + b) * kOutBeatBytes]);
    }
  }
  return computed;
}

/// Compare n images of output beats word by word and score by score; returns the differing scores.
unsigned compare(const Bytes &computed, const unsigned char *golden, unsigned n, bool report) {
  constexpr unsigned word_bytes = kOutWordBeatBits / 8;
  unsigned differing = 0;
  for (unsigned v = 0; v < n; v++) {
    for (unsigned w = 0; w < kOutWords; w++) {
      const size_t at = (size_t(v) * kOutWords + w) * word_bytes;
      const ap_uint<kOutWordBeatBits> got = from_bytes<kOutWordBeatBits>(&computed[at]);
      const ap_uint<kOutWordBeatBits> want = from_bytes<kOutWordBeatBits>(golden + at);
      if (kOutWordBeatBits > kOutWordBits && got(kOutWordBeatBits - 1, kOutWordBits) != 0 && report) {
        tally.format_errors++;
        if (tally.shown++ < kShowMax) std::cout << "PADDING image " << v << " word " << w << ": not zero\n";
      }
      for (unsigned p = 0; p < kOutPe; p++) {
        const ap_uint<kOutBits> g = got((p + 1) * kOutBits - 1, p * kOutBits);
        const ap_uint<kOutBits> e = want((p + 1) * kOutBits - 1, p * kOutBits);
        if (g == e) continue;
        differing++;
        if (report && tally.shown++ < kShowMax) {
          const int gv = kOutSigned ? ap_int<kOutBits>(g).to_int() : int(g.to_uint());
          const int ev = kOutSigned ? ap_int<kOutBits>(e).to_int() : int(e.to_uint());
          std::cout << "MISMATCH image " << v << " class " << w * kOutPe + p << ": hls " << gv << ", golden " << ev
                    << "\n";
        }
      }
    }
  }
  return differing;
}

/// The interface checks that need no data: signature, reps = 0, unknown modes.
void interface_checks(hls::stream<InBeat> &in, hls::stream<OutBeat> &out) {
  const Bytes zero(kInBeatBytes, 0);
  std::vector<InBeat> sentinel = in_beats(&zero[0], 1);
  sentinel[0].last = 1;

  push(in, sentinel);
  unsigned status = run(in, out, 0, kModeInfer);
  check(status == 0 && in.size() == 1 && out.empty(),
        "signature " + hex(kSignature) + " and reps = 0: status " + hex(status) + ", nothing consumed or produced");
  drain(in);

  const unsigned bad_modes[] = {kModeLoad + 1, 0xffffffffu};
  for (unsigned mode : bad_modes) {
    push(in, sentinel);
    status = run(in, out, 1, mode);
    check(status == kStatusBadMode && in.size() == 1 && out.empty(),
          "mode " + hex(mode) + ": status " + hex(status) + " (kStatusBadMode " + hex(kStatusBadMode) +
              "), nothing consumed or produced");
    drain(in);
  }
}

/// Image 0 of an infer step with one malformed beat: kStatusFormatError, scores unchanged.
void format_checks(hls::stream<InBeat> &in, hls::stream<OutBeat> &out, const unsigned char *image,
                   const unsigned char *golden) {
  for (int variant = 0; variant < 2; variant++) {
    std::vector<InBeat> beats = in_beats(image, kInBeatsPerImage);
    beats.back().last = 1;
    std::string what;
    if (variant == 0) {
      beats[0].keep[0] = 0;
      what = "input TKEEP bit 0 of beat 0 clear";
    } else if (kInBeatsPerWord * kInBeatBits > kInWordBits) {
      beats[kInBeatsPerWord - 1].data[kInBeatBits - 1] = 1;  // the top bit of word 0's last beat: padding
      what = "input padding bit set (top bit of word 0's last beat)";
    } else {
      std::cout << "bnn_tb: the input word fills its beats: no padding bits to check\n";
      continue;
    }
    push(in, beats);
    const unsigned status = run(in, out, 1, kModeInfer);
    bool short_output = false;
    const Bytes computed = collect(out, 1, short_output);
    const unsigned differing = short_output ? 1 : compare(computed, golden, 1, false);
    check(status == kStatusFormatError && differing == 0 && in.empty() && out.empty(),
          what + ": status " + hex(status) + " (kStatusFormatError " + hex(kStatusFormatError) + "), " +
              std::to_string(differing) + " score(s) differ");
    drain(in);
    drain(out);
  }
}

/// The first load step's stream, malformed three ways: the length and format bits.
void load_checks(hls::stream<InBeat> &in, hls::stream<OutBeat> &out, const Bytes &params) {
  std::vector<InBeat> beats = in_beats(params.data(), kParamBeats);
  {
    std::vector<InBeat> longer = beats;
    longer.push_back(beats[0]);
    longer.back().last = 1;
    push(in, longer);
    const unsigned status = run(in, out, 0, kModeLoad);
    const size_t left = in.size();
    check(status == kStatusLoadLengthError && left == 1 && out.empty(),
          "parameter stream one beat too long: status " + hex(status) + " (kStatusLoadLengthError " +
              hex(kStatusLoadLengthError) + "), " + std::to_string(left) + " beat left");
    drain(in);
  }
  if (kParamBeats >= 2) {
    std::vector<InBeat> early = beats;
    early[kParamBeats - 2].last = 1;
    push(in, early);
    const unsigned status = run(in, out, 0, kModeLoad);
    check(status == kStatusLoadLengthError && in.empty() && out.empty(),
          "parameter stream with TLAST one beat early: status " + hex(status));
    drain(in);
  }
  {
    std::vector<InBeat> unkept = beats;
    unkept.back().last = 1;
    unkept[0].keep[0] = 0;
    push(in, unkept);
    const unsigned status = run(in, out, 0, kModeLoad);
    check(status == kStatusFormatError && in.empty() && out.empty(),
          "parameter stream with TKEEP bit 0 of beat 0 clear: status " + hex(status) + " (kStatusFormatError " +
              hex(kStatusFormatError) + ")");
    drain(in);
  }
}

/// `load PARAMS`. Returns false when the file is unusable.
bool load_step(hls::stream<InBeat> &in, hls::stream<OutBeat> &out, const std::string &path, bool first) {
  Bytes params;
  if (!read_file(path, params)) {
    std::cerr << "bnn_tb: cannot read parameter stream " << path << "\n";
    return false;
  }
  if (params.size() != size_t(kParamBeats) * kInBeatBytes) {
    std::cerr << "bnn_tb: " << path << " has " << params.size() << " bytes, the parameter stream of this build is "
              << kParamBeats << " beats of " << kInBeatBytes << " bytes (" << size_t(kParamBeats) * kInBeatBytes
              << "); was it written for another hardware signature?\n";
    return false;
  }
  if (first) load_checks(in, out, params);
  std::vector<InBeat> beats = in_beats(params.data(), kParamBeats);
  beats.back().last = 1;
  push(in, beats);
  const unsigned status = run(in, out, 0, kModeLoad);
  const size_t left = drain(in), extra = drain(out);
  std::cout << "bnn_tb: load " << path << ": " << kParamBeats << " beats, status " << hex(status) << "\n";
  check(status == 0 && left == 0 && extra == 0, "load " + path + ": status " + hex(status) + ", " +
                                                    std::to_string(left) + " beat(s) left, " +
                                                    std::to_string(extra) + " output beat(s)");
  tally.steps++;
  return true;
}

/// `infer IN GOLDEN OUT`. Returns false when a file is unusable.
bool infer_step(hls::stream<InBeat> &in, hls::stream<OutBeat> &out, const std::string &in_path,
                const std::string &golden_path, const std::string &out_path, bool first) {
  Bytes images, golden;
  if (!read_file(in_path, images)) {
    std::cerr << "bnn_tb: cannot read input beats " << in_path << "\n";
    return false;
  }
  if (!read_file(golden_path, golden)) {
    std::cerr << "bnn_tb: cannot read golden output beats " << golden_path << "\n";
    return false;
  }
  const size_t image_bytes = size_t(kInBeatsPerImage) * kInBeatBytes;
  const size_t score_bytes = size_t(kOutBeatsPerImage) * kOutBeatBytes;
  if (images.size() % image_bytes != 0) {
    std::cerr << "bnn_tb: " << in_path << " has " << images.size() << " bytes, not a multiple of one image's "
              << kInBeatsPerImage << " beats of " << kInBeatBytes << " bytes\n";
    return false;
  }
  const unsigned n = images.size() / image_bytes;
  if (golden.size() != n * score_bytes) {
    std::cerr << "bnn_tb: " << golden_path << " has " << golden.size() << " bytes, expected " << n << " images x "
              << kOutBeatsPerImage << " beats of " << kOutBeatBytes << " bytes\n";
    return false;
  }
  if (first && n > 0) format_checks(in, out, images.data(), golden.data());

  std::vector<InBeat> beats = in_beats(images.data(), size_t(n) * kInBeatsPerImage);
  for (unsigned v = 0; v < n; v++)
    if (ends_with_tlast(v, n)) beats[size_t(v + 1) * kInBeatsPerImage - 1].last = 1;
  push(in, beats);
  const unsigned before = tally.mismatches + tally.tlast_errors + tally.format_errors;
#ifdef BNNFLOW_LAYER_TAPS
  bnn::layer_taps().clear();  // only this run's words (the format checks above ran the network too)
#endif
  const unsigned status = run(in, out, n, kModeInfer);
  bool short_output = false;
  const Bytes computed = collect(out, n, short_output);
  tally.mismatches += compare(computed, golden.data(), n, true);
  if (short_output && tally.mismatches + tally.tlast_errors + tally.format_errors == before) tally.mismatches++;
  const size_t left = drain(in), extra = drain(out);
  if (left) std::cout << "bnn_tb: " << left << " input beats were left unread\n";
  if (extra) {
    std::cout << "bnn_tb: " << extra << " extra output beats\n";
    tally.tlast_errors += extra;
  }
  check(status == 0 && left == 0, "infer " + in_path + ": status " + hex(status));
  const unsigned errors = tally.mismatches + tally.tlast_errors + tally.format_errors - before;
  std::cout << "bnn_tb: infer " << in_path << ": " << n << " images, " << errors << " error(s), status " << hex(status)
            << "\n";

  if (out_path != "-") {
    std::ofstream f(out_path.c_str(), std::ios::binary);
    f.write(reinterpret_cast<const char *>(computed.data()), computed.size());
    if (!f) {
      std::cerr << "bnn_tb: cannot write " << out_path << "\n";
      return false;
    }
#ifdef BNNFLOW_LAYER_TAPS
    const std::vector<std::vector<unsigned char> > &taps = bnn::layer_taps();
    for (size_t k = 0; k < taps.size(); k++) {
      const std::string path = out_path + ".layer" + std::to_string(k);
      std::ofstream t(path.c_str(), std::ios::binary);
      t.write(reinterpret_cast<const char *>(taps[k].data()), taps[k].size());
      if (!t) {
        std::cerr << "bnn_tb: cannot write " << path << "\n";
        return false;
      }
    }
#endif
  }
  tally.images += n;
  tally.steps++;
  return true;
}

int usage() {
  std::cerr << "usage: bnn_tb STEP...\n"
               "  load PARAMS          load-mode run on a parameter stream (" << kParamBeats << " beats of "
            << kInBeatBytes << " bytes)\n"
               "  infer IN GOLDEN OUT  infer-mode run on input beats IN (" << kInBeatsPerImage << " beats of "
            << kInBeatBytes << " bytes per image), compared with the output beats GOLDEN ("
            << kOutBeatsPerImage << " beats of " << kOutBeatBytes << " bytes per image); OUT gets the computed\n"
               "                       beats ('-': not written)\n"
               "Files are DMA buffers; `python -m bnnflow.hlsflow EXPORT_DIR` writes them (docs/HLS.md).\n";
  return 2;
}

}  // namespace

int main(int argc, char **argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return usage();
  hls::stream<InBeat> in("tb_in");
  hls::stream<OutBeat> out("tb_out");
  interface_checks(in, out);

  bool first_load = true, first_infer = true;
  for (size_t i = 0; i < args.size();) {
    if (args[i] == "load" && i + 1 < args.size()) {
      if (!load_step(in, out, args[i + 1], first_load)) return 2;
      first_load = false;
      i += 2;
    } else if (args[i] == "infer" && i + 3 < args.size()) {
      if (!infer_step(in, out, args[i + 1], args[i + 2], args[i + 3], first_infer)) return 2;
      first_infer = false;
      i += 4;
    } else {
      std::cerr << "bnn_tb: cannot parse step '" << args[i] << "' (argument " << i + 1 << ")\n";
      return usage();
    }
  }

  const bool pass =
      tally.mismatches == 0 && tally.tlast_errors == 0 && tally.format_errors == 0 && tally.check_errors == 0;
  std::cout << "bnn_tb: network " << kNetworkName << ": " << tally.steps << " steps, " << tally.images
            << " images x " << kNumClasses << " classes, mismatches=" << tally.mismatches
            << " tlast_errors=" << tally.tlast_errors << " format_errors=" << tally.format_errors
            << " check_errors=" << tally.check_errors << " -> " << (pass ? "PASS" : "FAIL") << std::endl;
  return pass ? 0 : 1;
}
