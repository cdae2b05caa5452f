/**
 * \file bnn_axis.hpp
 * \brief The accelerator's AXI4-Stream ports (docs/ACCEL.md, "Streams"):
 *        DMA-ready beats around the engine's words, the TLAST rule of
 *        docs/ARTIFACT.md, and the input format check.
 *
 * A beat is BEAT_BITS of TDATA (a power of two in 32..1024, chosen by
 * bnnflow.accel and stated in the generated header). An engine word of
 * WORD_BITS takes beats_for(WORD_BITS, BEAT_BITS) consecutive beats, lowest
 * bits in the first; the bits above the word in its last beat are padding:
 * zero on output, checked on input (together with TKEEP).
 *
 * With Vitis (ap_axi_sdata.h found) a beat is `ap_axiu<W,0,0,0>`, so the
 * synthesized ports have TDATA, TKEEP, TSTRB and TLAST. Without it (C
 * simulation against the ap_types headers of the hls4ml wheel) a struct with
 * the same member names stands in; define BNN_PLAIN_AXIS to force it.
 */
#ifndef BNN_AXIS_HPP
#define BNN_AXIS_HPP

#include <ap_int.h>
#include <hls_stream.h>

#if !defined(BNN_PLAIN_AXIS) && defined(__has_include)
#if __has_include(<ap_axi_sdata.h>)
#include <ap_axi_sdata.h>
#define BNN_HAVE_AP_AXI_SDATA 1
#endif
#endif

namespace bnn {

#ifdef BNN_HAVE_AP_AXI_SDATA
/// One AXI4-Stream beat of W data bits (Vitis side-channel type).
template<int W>
using AxisWord = ap_axiu<W, 0, 0, 0>;
#else
/**
 * \brief One AXI4-Stream beat of W data bits (stand-in for ap_axiu<W,0,0,0>).
 * \tparam W TDATA width
 */
template<int W>
struct AxisWord {
  ap_uint<W> data;
  ap_uint<(W + 7) / 8> keep;
  ap_uint<(W + 7) / 8> strb;
  ap_uint<1> last;
};
#endif

/**
 * \brief Beats one WORD_BITS-bit word takes on a BEAT_BITS-bit stream.
 * \param word_bits bits of the word
 * \param beat_bits TDATA bits of a beat
 */
constexpr unsigned beats_for(unsigned word_bits, unsigned beat_bits) { return (word_bits + beat_bits - 1) / beat_bits; }

/**
 * \brief Whether a beat of a WORD_BITS-bit word is well formed: every TKEEP
 *        bit set and, in the word's last beat, every padding bit zero.
 *
 * \tparam BEAT_BITS TDATA width
 * \tparam WORD_BITS bits of the word the beat belongs to
 *
 * \param beat       the beat
 * \param word_final true for the word's last beat (the one that may hold padding)
 */
template<unsigned BEAT_BITS, unsigned WORD_BITS>
bool beat_well_formed(const AxisWord<BEAT_BITS> &beat, bool word_final) {
#pragma HLS INLINE
  constexpr unsigned BEATS = beats_for(WORD_BITS, BEAT_BITS);
  constexpr unsigned USED = WORD_BITS - (BEATS - 1) * BEAT_BITS;  // bits of the word in its last beat
  bool ok = beat.keep.and_reduce();
  if (USED < BEAT_BITS && word_final && beat.data(BEAT_BITS - 1, USED) != 0) ok = false;
  return ok;
}

/**
 * \brief Input adapter: assemble engine words from beats, check their format
 *        and keep, per vector, the TLAST of its last beat.
 *
 * One beat per iteration (II=1): a shift register collects the BEATS beats of
 * a word, lowest first, and the word leaves with its last beat. A word with a
 * clear TKEEP bit or a nonzero padding bit still reaches the engine (padding
 * dropped); `format_error` reports it once the run is over.
 *
 * \tparam BEAT_BITS    TDATA width
 * \tparam WORD_BITS    engine word (SIMD*IN_BITS of the first layer)
 * \tparam WORDS        words per image (the first layer's in_stream_words: SF, or a conv's pixels x channel folds)
 *
 * \param in           AXI4-Stream input, WORDS * beats_for(WORD_BITS, BEAT_BITS) beats per vector
 * \param out          words for the first layer
 * \param last         one flag per vector: TLAST of the vector's last beat
 * \param format_error 1 when any beat of the run was malformed (written at the end)
 * \param reps         number of vectors
 */
template<unsigned BEAT_BITS, unsigned WORD_BITS, unsigned WORDS>
void beats_to_words(hls::stream<AxisWord<BEAT_BITS> > &in, hls::stream<ap_uint<WORD_BITS> > &out,
                    hls::stream<ap_uint<1> > &last, ap_uint<1> &format_error, unsigned reps) {
  constexpr unsigned BEATS = beats_for(WORD_BITS, BEAT_BITS);
  ap_uint<BEATS * BEAT_BITS> buffer = 0;
  ap_uint<1> error = 0;
  unsigned b = 0, w = 0;
  const unsigned total = reps * WORDS * BEATS;
  for (unsigned i = 0; i < total; i++) {
#pragma HLS PIPELINE II=1
    const AxisWord<BEAT_BITS> beat = in.read();
    const bool word_final = b == BEATS - 1;
    if (!beat_well_formed<BEAT_BITS, WORD_BITS>(beat, word_final)) error = 1;
    if (BEATS > 1) buffer >>= BEAT_BITS;  // the newest beat goes on top, so beat 0 ends at the bottom
    buffer(BEATS * BEAT_BITS - 1, (BEATS - 1) * BEAT_BITS) = beat.data;
    if (word_final) {
      out.write(buffer(WORD_BITS - 1, 0));
      b = 0;
      if (++w == WORDS) {
        last.write(beat.last);
        w = 0;
      }
    } else {
      b++;
    }
  }
  format_error = error;
}

/**
 * \brief Output adapter: split engine words into beats, padding zero, all
 *        TKEEP/TSTRB bits set, TLAST on a vector's last beat when its input
 *        vector ended with TLAST.
 *
 * \tparam BEAT_BITS TDATA width
 * \tparam WORD_BITS engine word (PE*OUT_BITS of the last layer)
 * \tparam WORDS     words per image (the last layer's out_stream_words: NF)
 *
 * \param in   words from the last layer
 * \param last one flag per vector, from beats_to_words
 * \param out  AXI4-Stream output, WORDS * beats_for(WORD_BITS, BEAT_BITS) beats per vector
 * \param reps number of vectors
 */
template<unsigned BEAT_BITS, unsigned WORD_BITS, unsigned WORDS>
void words_to_beats(hls::stream<ap_uint<WORD_BITS> > &in, hls::stream<ap_uint<1> > &last,
                    hls::stream<AxisWord<BEAT_BITS> > &out, unsigned reps) {
  constexpr unsigned BEATS = beats_for(WORD_BITS, BEAT_BITS);
  ap_uint<BEATS * BEAT_BITS> buffer = 0;
  ap_uint<1> vector_last = 0;
  unsigned b = 0, w = 0;
  const unsigned total = reps * WORDS * BEATS;
  for (unsigned i = 0; i < total; i++) {
#pragma HLS PIPELINE II=1
    if (b == 0) {
      buffer = in.read();  // zero-extended: the padding above the word is 0
      if (w == WORDS - 1) vector_last = last.read();
    }
    AxisWord<BEAT_BITS> beat;
    beat.data = buffer(BEAT_BITS - 1, 0);
    beat.keep = -1;
    beat.strb = -1;
    beat.last = (b == BEATS - 1 && w == WORDS - 1) ? vector_last : ap_uint<1>(0);
    out.write(beat);
    if (BEATS > 1) buffer >>= BEAT_BITS;
    if (++b == BEATS) {
      b = 0;
      if (++w == WORDS) w = 0;
    }
  }
}

}  // namespace bnn

#endif  // BNN_AXIS_HPP
