/**
 * \file bnn_conv_tb.cpp
 * \brief C-simulation testbench of the convolution units (bnn_conv.hpp):
 *        runs one unit on a file of input words and writes the words it
 *        produced.
 *
 * The units of a build come from the generated header bnn_conv_units.h
 * (bnnflow.hls_units writes it), which defines the X-macro
 * `BNNFLOW_CONV_UNITS(X)` as one `X(INDEX, UNIT)` per setting, UNIT being
 * `SlidingWindowUnit<...>` or `MaxPoolUnit<...>` below: several settings
 * compile into one binary (g++ time is the cost of a test, not the runs).
 *
 * Usage: bnn_conv_tb RUN...   with RUN = INDEX IMAGES IN OUT
 *   runs unit INDEX on IMAGES images whose input words are the file IN and
 *   writes its output words to OUT. Words are ceil(BITS/8) little-endian
 *   bytes each (bit b of the word at bit b % 8 of byte b / 8), written and
 *   read by bnnflow.packing (this file does not pack anything).
 *
 * Per run it prints one line
 *   `bnn_conv_tb: unit INDEX NAME: images=N in_words=I out_words=O iterations=T
 *    buffer_words=B leftover_in=L -> PASS|FAIL`
 * (on one line): T is the unit's loop trip count (its cycles at II=1, without
 * the pipeline depth), B the words of its buffer (line buffer, resp.
 * accumulator row). A run fails when the unit leaves input words unread
 * (L > 0) or writes another number of words than IMAGES * OUT_WORDS (a
 * unit that reads more than it was given makes hls::stream print "read while
 * empty", which bnnflow.hls_units also treats as a failure). Exit status: 0 all runs
 * passed, 1 a run failed, 2 unusable arguments or files.
 */
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#define BNNFLOW_UNIT_ITERATIONS
#include "bnn_conv.hpp"

namespace {

typedef std::vector<unsigned char> Bytes;

/// bnn::sliding_window of one setting (template parameters as there).
template<unsigned IFM_H, unsigned IFM_W, unsigned CH, unsigned K, unsigned PAD, unsigned SIMD, unsigned ELEM_BITS,
         unsigned PAD_CODE>
struct SlidingWindowUnit {
  typedef bnn::WindowGeometry<IFM_H, IFM_W, CH, K, PAD, SIMD> G;
  static constexpr unsigned IN_BITS = SIMD * ELEM_BITS;
  static constexpr unsigned OUT_BITS = SIMD * ELEM_BITS;
  static constexpr unsigned IN_WORDS = G::IN_WORDS;
  static constexpr unsigned OUT_WORDS = G::OUT_WORDS;
  static constexpr unsigned BUFFER_WORDS = G::DEPTH;
  static const char *name() { return "sliding_window"; }
  static void run(hls::stream<ap_uint<IN_BITS> > &in, hls::stream<ap_uint<OUT_BITS> > &out, unsigned images) {
    bnn::sliding_window<IFM_H, IFM_W, CH, K, PAD, SIMD, ELEM_BITS, PAD_CODE>(in, out, images);
  }
};

/// bnn::max_pool of one setting (template parameters as there).
template<unsigned IFM_H, unsigned IFM_W, unsigned CH, unsigned POOL, unsigned PE, unsigned ELEM_BITS>
struct MaxPoolUnit {
  static constexpr unsigned IN_BITS = PE * ELEM_BITS;
  static constexpr unsigned OUT_BITS = PE * ELEM_BITS;
  static constexpr unsigned IN_WORDS = IFM_H * IFM_W * (CH / PE);
  static constexpr unsigned OUT_WORDS = (IFM_H / POOL) * (IFM_W / POOL) * (CH / PE);
  static constexpr unsigned BUFFER_WORDS = (IFM_W / POOL) * (CH / PE);  // the accumulator row
  static const char *name() { return "max_pool"; }
  static void run(hls::stream<ap_uint<IN_BITS> > &in, hls::stream<ap_uint<OUT_BITS> > &out, unsigned images) {
    bnn::max_pool<IFM_H, IFM_W, CH, POOL, PE, ELEM_BITS>(in, out, images);
  }
};

bool read_file(const std::string &path, Bytes &bytes) {
  std::ifstream f(path.c_str(), std::ios::binary);
  if (!f) return false;
  bytes.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  return true;
}

/// Run unit U once; 0 passed, 1 failed, 2 unusable files.
template<typename U>
int run_unit(unsigned index, unsigned images, const std::string &in_path, const std::string &out_path) {
  constexpr unsigned IN_BYTES = (U::IN_BITS + 7) / 8;
  constexpr unsigned OUT_BYTES = (U::OUT_BITS + 7) / 8;
  Bytes data;
  if (!read_file(in_path, data)) {
    std::cerr << "bnn_conv_tb: cannot read " << in_path << "\n";
    return 2;
  }
  const unsigned long long in_words = (unsigned long long)images * U::IN_WORDS;
  if (data.size() != in_words * IN_BYTES) {
    std::cerr << "bnn_conv_tb: " << in_path << " has " << data.size() << " bytes, unit " << index << " ("
              << U::name() << ") takes " << images << " images x " << U::IN_WORDS << " words x " << IN_BYTES
              << " bytes = " << in_words * IN_BYTES << "\n";
    return 2;
  }
  hls::stream<ap_uint<U::IN_BITS> > in("in");
  hls::stream<ap_uint<U::OUT_BITS> > out("out");
  for (unsigned long long i = 0; i < in_words; i++) {
    ap_uint<U::IN_BITS> word = 0;
    for (unsigned b = 0; b < IN_BYTES; b++) {
      const unsigned lo = 8 * b, hi = lo + 7 < U::IN_BITS ? lo + 7 : U::IN_BITS - 1;
      word(hi, lo) = data[i * IN_BYTES + b];
    }
    in.write(word);
  }
  bnn::unit_iterations() = 0;
  U::run(in, out, images);
  const unsigned long long leftover = in.size(), produced = out.size();
  std::ofstream f(out_path.c_str(), std::ios::binary);
  while (!out.empty()) {
    const ap_uint<U::OUT_BITS> word = out.read();
    for (unsigned b = 0; b < OUT_BYTES; b++) {
      const unsigned lo = 8 * b, hi = lo + 7 < U::OUT_BITS ? lo + 7 : U::OUT_BITS - 1;
      f.put(char(word(hi, lo).to_uint()));
    }
  }
  if (!f) {
    std::cerr << "bnn_conv_tb: cannot write " << out_path << "\n";
    return 2;
  }
  const bool pass = leftover == 0 && produced == (unsigned long long)images * U::OUT_WORDS;
  std::cout << "bnn_conv_tb: unit " << index << " " << U::name() << ": images=" << images << " in_words=" << in_words
            << " out_words=" << produced << " iterations=" << bnn::unit_iterations()
            << " buffer_words=" << U::BUFFER_WORDS << " leftover_in=" << leftover
            << " -> " << (pass ? "PASS" : "FAIL") << std::endl;
  return pass ? 0 : 1;
}

}  // namespace

#include "bnn_conv_units.h"  // generated: BNNFLOW_CONV_UNITS(X)

int main(int argc, char **argv) {
  if (argc < 2 || (argc - 1) % 4 != 0) {
    std::cerr << "usage: " << argv[0] << " INDEX IMAGES IN OUT [INDEX IMAGES IN OUT ...]\n";
    return 2;
  }
  int status = 0;
  for (int a = 1; a < argc; a += 4) {
    char *end = 0;
    const unsigned long index = std::strtoul(argv[a], &end, 10);
    const bool index_ok = *argv[a] && !*end;
    const unsigned long images = std::strtoul(argv[a + 1], &end, 10);
    if (!index_ok || !*argv[a + 1] || *end) {
      std::cerr << "bnn_conv_tb: INDEX and IMAGES must be unsigned integers, got '" << argv[a] << "' '"
                << argv[a + 1] << "'\n";
      return 2;
    }
    int rc = -1;
    switch (index) {
#define BNNFLOW_CONV_CASE(INDEX, ...) \
  case INDEX: rc = run_unit<__VA_ARGS__>(INDEX, unsigned(images), argv[a + 2], argv[a + 3]); break;
      BNNFLOW_CONV_UNITS(BNNFLOW_CONV_CASE)
#undef BNNFLOW_CONV_CASE
      default:
        std::cerr << "bnn_conv_tb: no unit " << index << " in this build\n";
        return 2;
    }
    if (rc == 2) return 2;
    if (rc != 0) status = 1;
  }
  return status;
}
