/**
 * \file bnn_tb.cpp
 * \brief C-simulation / co-simulation testbench of bnnflow_top against the
 *        golden vectors of an artifact.
 *
 * Usage: bnn_tb [images.bin [scores.bin [computed_scores.bin]]]
 *   images.bin           uint8 (N, kInputFeatures) test images
 *   scores.bin           int32 little-endian (N, kNumClasses) golden scores
 *   computed_scores.bin  where to write the scores bnnflow_top computed
 *                        (int32 little-endian, same shape); optional
 * Defaults are the artifact's vector files relative to the working directory
 * (kImagesFile, kScoresFile in bnnflow_params.h). N = size of images.bin /
 * kInputFeatures.
 *
 * Images are packed into stream words exactly as docs/ARTIFACT.md says
 * (element j of word sf at bits [j*kInputBits, (j+1)*kInputBits), zero
 * padding); TLAST is set on the last word of every fifth image and of the
 * last image, and must come back on exactly those images' last score words.
 * Every score is compared; main() returns 0 only when all match.
 */
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "bnn_top.hpp"

namespace {

/// Whole file as bytes; false when it cannot be read.
bool read_file(const std::string &path, std::vector<unsigned char> &bytes) {
  std::ifstream f(path.c_str(), std::ios::binary);
  if (!f) return false;
  bytes.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  return true;
}

int32_t le_int32(const unsigned char *p) {
  return int32_t(uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24));
}

/// TLAST pattern of the input: every fifth image, and the last one.
bool ends_with_tlast(unsigned v, unsigned n) { return v % 5 == 4 || v + 1 == n; }

}  // namespace

int main(int argc, char **argv) {
  using namespace bnnflow;
  const std::string images_path = argc > 1 ? argv[1] : kImagesFile;
  const std::string scores_path = argc > 2 ? argv[2] : kScoresFile;
  const std::string computed_path = argc > 3 ? argv[3] : "";

  std::vector<unsigned char> images, golden_raw;
  if (!read_file(images_path, images)) {
    std::cerr << "bnn_tb: cannot read images " << images_path << "\n";
    return 2;
  }
  if (!read_file(scores_path, golden_raw)) {
    std::cerr << "bnn_tb: cannot read golden scores " << scores_path << "\n";
    return 2;
  }
  if (images.size() % kInputFeatures != 0) {
    std::cerr << "bnn_tb: " << images_path << " has " << images.size() << " bytes, not a multiple of "
              << kInputFeatures << " features\n";
    return 2;
  }
  const unsigned n = images.size() / kInputFeatures;
  if (golden_raw.size() != size_t(n) * kNumClasses * 4) {
    std::cerr << "bnn_tb: " << scores_path << " has " << golden_raw.size() << " bytes, expected " << n << " x "
              << kNumClasses << " int32\n";
    return 2;
  }

  // Pack: element i of an image is field i % kInSimd of word i / kInSimd.
  hls::stream<InBeat> in("tb_in");
  hls::stream<OutBeat> out("tb_out");
  for (unsigned v = 0; v < n; v++) {
    for (unsigned w = 0; w < kInWords; w++) {
      InBeat beat;
      beat.data = 0;
      for (unsigned j = 0; j < kInSimd; j++) {
        const unsigned i = w * kInSimd + j;
        const unsigned value = i < kInputFeatures ? images[size_t(v) * kInputFeatures + i] : 0;
        if (value >> kInputBits) {
          std::cerr << "bnn_tb: image " << v << " element " << i << " = " << value << " does not fit in "
                    << kInputBits << " bits\n";
          return 2;
        }
        beat.data((j + 1) * kInputBits - 1, j * kInputBits) = value;
      }
      beat.keep = -1;
      beat.strb = -1;
      beat.last = (w + 1 == kInWords && ends_with_tlast(v, n)) ? 1 : 0;
      in.write(beat);
    }
  }

  bnnflow_top(in, out, n);

  // Unpack: field p of word nf is class nf*kOutPe + p, kOutBits wide: two's complement for a
  // score layer, unsigned for a threshold layer (a one-layer network ends in one).
  std::vector<int32_t> computed(size_t(n) * kNumClasses, 0);
  unsigned mismatches = 0, tlast_errors = 0, shown = 0;
  const unsigned show_max = 20;
  bool short_output = false;
  for (unsigned v = 0; v < n && !short_output; v++) {
    for (unsigned w = 0; w < kOutWords; w++) {
      if (out.empty()) {
        std::cerr << "bnn_tb: output stream ended at image " << v << " word " << w << "\n";
        short_output = true;
        break;
      }
      const OutBeat beat = out.read();
      const bool want_last = w + 1 == kOutWords && ends_with_tlast(v, n);
      if (bool(beat.last) != want_last) {
        tlast_errors++;
        if (shown++ < show_max)
          std::cout << "TLAST image " << v << " word " << w << ": got " << beat.last << ", expected " << want_last
                    << "\n";
      }
      for (unsigned p = 0; p < kOutPe; p++) {
        const ap_uint<kOutBits> field = beat.data((p + 1) * kOutBits - 1, p * kOutBits);
        computed[size_t(v) * kNumClasses + w * kOutPe + p] =
            kOutSigned ? ap_int<kOutBits>(field).to_int() : int(field.to_uint());
      }
    }
  }
  unsigned extra_words = 0;
  while (!in.empty()) {
    in.read();
    extra_words++;
  }
  if (extra_words) std::cerr << "bnn_tb: " << extra_words << " input words were left unread\n";
  extra_words = 0;
  while (!out.empty()) {
    out.read();
    extra_words++;
  }
  if (extra_words) {
    std::cerr << "bnn_tb: " << extra_words << " extra output words\n";
    tlast_errors += extra_words;
  }

  for (unsigned v = 0; v < n; v++) {
    for (unsigned c = 0; c < kNumClasses; c++) {
      const size_t k = size_t(v) * kNumClasses + c;
      const int32_t want = le_int32(&golden_raw[4 * k]);
      if (computed[k] != want) {
        mismatches++;
        if (shown++ < show_max)
          std::cout << "MISMATCH image " << v << " class " << c << ": hls " << computed[k] << ", golden " << want
                    << "\n";
      }
    }
  }
  if (short_output && mismatches == 0) mismatches = 1;  // missing words read as zeros

  if (!computed_path.empty()) {
    std::ofstream f(computed_path.c_str(), std::ios::binary);
    for (size_t k = 0; k < computed.size(); k++) {
      const uint32_t u = uint32_t(computed[k]);
      const unsigned char b[4] = {(unsigned char)(u), (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                                  (unsigned char)(u >> 24)};
      f.write(reinterpret_cast<const char *>(b), 4);
    }
    if (!f) {
      std::cerr << "bnn_tb: cannot write " << computed_path << "\n";
      return 2;
    }
  }

  const bool pass = mismatches == 0 && tlast_errors == 0;
  std::cout << "bnn_tb: network " << kNetworkName << ": " << n << " images x " << kNumClasses
            << " classes, mismatches=" << mismatches << " tlast_errors=" << tlast_errors << " -> "
            << (pass ? "PASS" : "FAIL") << std::endl;
  return pass ? 0 : 1;
}
