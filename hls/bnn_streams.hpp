/**
 * \file bnn_streams.hpp
 * \brief Stream width and padding converter between two layers
 *        (docs/ARTIFACT.md, "Streams").
 *
 * Layer i writes NF words of PE elements per vector (MH elements in all);
 * layer i+1 reads SF words of SIMD elements (MW_pad elements, the last
 * MW_pad - MH of them zero padding). The repacker turns one into the other,
 * element order unchanged.
 *
 * With BNNFLOW_LAYER_TAPS defined (C simulation only), `tap` records every
 * layer's output words for the testbench.
 */
#ifndef BNN_STREAMS_HPP
#define BNN_STREAMS_HPP

#include <ap_int.h>
#include <hls_stream.h>

#ifdef BNNFLOW_LAYER_TAPS
#include <vector>
#endif

namespace bnn {

/**
 * \brief Loop iterations the repacker needs per vector (compile time).
 *
 * Each iteration reads one input word while any is left, then writes the next
 * output word once all of its real elements have been read. The count is
 * about max(IN_WORDS, OUT_WORDS), never more than IN_WORDS + OUT_WORDS.
 *
 * \param in_per_word  elements per input word
 * \param in_elems     real elements per vector
 * \param out_per_word elements per output word
 * \param out_elems    padded elements per vector
 */
constexpr unsigned repack_iterations(unsigned in_per_word, unsigned in_elems, unsigned out_per_word,
                                     unsigned out_elems) {
  unsigned rd = 0, wr = 0, iterations = 0;
  const unsigned in_words = in_elems / in_per_word, out_words = out_elems / out_per_word;
  while (wr < out_words) {
    if (rd < in_words) rd++;
    const unsigned need = (wr + 1) * out_per_word < in_elems ? (wr + 1) * out_per_word : in_elems;
    if (rd * in_per_word >= need) wr++;
    iterations++;
  }
  return iterations;
}

/**
 * \brief Repack IN_ELEMS elements per vector from IN_PER_WORD-element words
 *        into OUT_PER_WORD-element words, appending zero elements up to
 *        OUT_ELEMS.
 *
 * Element `k` of input word `r` is vector element `r*IN_PER_WORD + k`;
 * element `j` of output word `w` is vector element `w*OUT_PER_WORD + j`
 * (zero when >= IN_ELEMS). Reads and writes overlap, so a vector takes about
 * max(IN_ELEMS/IN_PER_WORD, OUT_ELEMS/OUT_PER_WORD) cycles plus the pipeline
 * depth.
 *
 * \tparam IN_PER_WORD  elements per input word (PE of the producing layer)
 * \tparam IN_ELEMS     elements per vector (MH of the producing layer)
 * \tparam OUT_PER_WORD elements per output word (SIMD of the consuming layer)
 * \tparam OUT_ELEMS    padded elements per vector (MW_pad of the consuming layer)
 * \tparam BITS         bits per element
 *
 * \param in   input stream, IN_ELEMS/IN_PER_WORD words per vector
 * \param out  output stream, OUT_ELEMS/OUT_PER_WORD words per vector
 * \param reps number of vectors
 */
template<unsigned IN_PER_WORD, unsigned IN_ELEMS, unsigned OUT_PER_WORD, unsigned OUT_ELEMS, unsigned BITS>
void repack(hls::stream<ap_uint<IN_PER_WORD * BITS> > &in, hls::stream<ap_uint<OUT_PER_WORD * BITS> > &out,
            unsigned reps) {
  static_assert(IN_ELEMS % IN_PER_WORD == 0, "input words must tile the vector");
  static_assert(OUT_ELEMS % OUT_PER_WORD == 0, "output words must tile the padded vector");
  static_assert(IN_ELEMS <= OUT_ELEMS, "padding only adds elements");
  constexpr unsigned IN_WORDS = IN_ELEMS / IN_PER_WORD;
  constexpr unsigned OUT_WORDS = OUT_ELEMS / OUT_PER_WORD;
  constexpr unsigned ITERATIONS = repack_iterations(IN_PER_WORD, IN_ELEMS, OUT_PER_WORD, OUT_ELEMS);

  ap_uint<BITS> elems[OUT_ELEMS];  // one vector; elements >= IN_ELEMS stay 0 (padding)
#pragma HLS ARRAY_PARTITION variable=elems complete dim=1
  for (unsigned e = 0; e < OUT_ELEMS; e++) {
#pragma HLS UNROLL
    elems[e] = 0;
  }

  for (unsigned v = 0; v < reps; v++) {
    unsigned rd = 0, wr = 0;
    for (unsigned t = 0; t < ITERATIONS; t++) {
#pragma HLS PIPELINE II=1
      if (rd < IN_WORDS) {
        const ap_uint<IN_PER_WORD * BITS> word = in.read();
        for (unsigned k = 0; k < IN_PER_WORD; k++) {
#pragma HLS UNROLL
          elems[rd * IN_PER_WORD + k] = word((k + 1) * BITS - 1, k * BITS);
        }
        rd++;
      }
      const unsigned need = (wr + 1) * OUT_PER_WORD < IN_ELEMS ? (wr + 1) * OUT_PER_WORD : IN_ELEMS;
      if (wr < OUT_WORDS && rd * IN_PER_WORD >= need) {
        ap_uint<OUT_PER_WORD * BITS> word;
        for (unsigned j = 0; j < OUT_PER_WORD; j++) {
#pragma HLS UNROLL
          word((j + 1) * BITS - 1, j * BITS) = elems[wr * OUT_PER_WORD + j];
        }
        out.write(word);
        wr++;
      }
    }
  }
}

#ifdef BNNFLOW_LAYER_TAPS
/**
 * \brief C simulation only: the words every layer wrote in the last infer
 *        run, per layer, as little-endian bytes (ceil(BITS/8) per word).
 *
 * Why: a threshold layer can hide an arithmetic error of the layer before
 * it (an accumulator off by a few rarely crosses a threshold), so comparing
 * only the network's scores with the golden model misses what comparing
 * every layer's output words catches. Defined only when
 * BNNFLOW_LAYER_TAPS is (bnnflow.hlsflow's g++ C simulation), never in
 * synthesis. One instance for all translation units (an inline function's
 * static).
 */
inline std::vector<std::vector<unsigned char> > &layer_taps() {
  static std::vector<std::vector<unsigned char> > taps;
  return taps;
}

/**
 * \brief C simulation only: record the WORDS words of \p s in layer_taps()[LAYER]
 *        and leave the stream as it was.
 *
 * In C simulation the processes of a DATAFLOW region run one after the
 * other, so when the call that follows a layer runs, the layer has written
 * all its words: reading each one and writing it back rotates the FIFO once,
 * leaving the same words in the same order for the next process.
 *
 * \tparam BITS  bits per word (PE x output bits of the layer)
 * \tparam LAYER the layer's index
 *
 * \param s     the layer's output stream
 * \param words words in it (NF per vector)
 */
template<unsigned BITS, unsigned LAYER>
void tap(hls::stream<ap_uint<BITS> > &s, unsigned words) {
  std::vector<std::vector<unsigned char> > &taps = layer_taps();
  if (taps.size() <= LAYER) taps.resize(LAYER + 1);
  for (unsigned i = 0; i < words; i++) {
    const ap_uint<BITS> word = s.read();
    for (unsigned lo = 0; lo < BITS; lo += 8) {
      const unsigned hi = lo + 7 < BITS ? lo + 7 : BITS - 1;
      taps[LAYER].push_back((unsigned char)word(hi, lo).to_uint());
    }
    s.write(word);
  }
}
#endif  // BNNFLOW_LAYER_TAPS

}  // namespace bnn

#endif  // BNN_STREAMS_HPP
