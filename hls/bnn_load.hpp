/**
 * \file bnn_load.hpp
 * \brief Load mode: write the parameter stream into the weight and threshold
 *        memories (docs/ACCEL.md, "The parameter stream").
 *
 * The stream carries every memory word of every layer, in the order
 * bnnflow.accel.param_segments gives; the generated load_parameters() calls
 * load_memory once per segment in that order. A memory word holds FIELDS
 * fields of FIELD_BITS, field p at bits [p*FIELD_BITS, (p+1)*FIELD_BITS)
 * (docs/ARTIFACT.md, "RTL memory files": PE p of a weight word, SIMD bits;
 * PE p of a threshold word, T_BITS two's complement). The HLS memories are
 * organised per PE (`mem[p][address]`, partitioned by p), so each field goes
 * to its own PE's memory.
 */
#ifndef BNN_LOAD_HPP
#define BNN_LOAD_HPP

#include <ap_int.h>
#include <hls_stream.h>

#include "bnn_axis.hpp"

namespace bnn {

/**
 * \brief Read one memory's segment of the parameter stream into `mem`.
 *
 * Each memory word arrives as beats_for(FIELDS*FIELD_BITS, BEAT_BITS) beats,
 * lowest bits first, padding zero. One word per pipelined iteration (II =
 * its beat count, i.e. one beat per cycle): the beats are kept whole, and
 * each field is cut from the (at most FIELD_BITS/BEAT_BITS + 2) beats it
 * overlaps, so no intermediate is wider than a beat or a field -- a memory
 * word itself (PE*SIMD bits) may be far wider than ap_int allows.
 *
 * \tparam BEAT_BITS  TDATA width of the input stream
 * \tparam FIELDS     fields per memory word (PE)
 * \tparam FIELD_BITS bits per field (SIMD for weights, T_BITS for thresholds)
 * \tparam DEPTH      words of the memory (NF*SF for weights, NF for thresholds)
 * \tparam T          element type of the memory (ap_uint<SIMD>, ap_int<T_BITS>)
 *
 * \param in           the input stream (load mode)
 * \param mem          the memory, `mem[p][address]`
 * \param ends_stream  true for the stream's last segment: its last beat must carry TLAST
 * \param format_error set to 1 when a beat has a TKEEP bit clear or a padding bit set
 * \param length_error set to 1 when a beat's TLAST is not exactly on the stream's last beat
 */
template<unsigned BEAT_BITS, unsigned FIELDS, unsigned FIELD_BITS, unsigned DEPTH, typename T>
void load_memory(hls::stream<AxisWord<BEAT_BITS> > &in, T mem[FIELDS][DEPTH], bool ends_stream,
                 ap_uint<1> &format_error, ap_uint<1> &length_error) {
  constexpr unsigned WORD_BITS = FIELDS * FIELD_BITS;
  constexpr unsigned BEATS = beats_for(WORD_BITS, BEAT_BITS);
  constexpr unsigned SPAN = FIELD_BITS / BEAT_BITS + 2;  // beats one field can overlap
  for (unsigned a = 0; a < DEPTH; a++) {
#pragma HLS PIPELINE II=BEATS
    ap_uint<BEAT_BITS> chunk[BEATS];
#pragma HLS ARRAY_PARTITION variable=chunk complete dim=1
    for (unsigned b = 0; b < BEATS; b++) {
#pragma HLS UNROLL
      const AxisWord<BEAT_BITS> beat = in.read();
      const bool word_final = b == BEATS - 1;
      if (!beat_well_formed<BEAT_BITS, WORD_BITS>(beat, word_final)) format_error = 1;
      const bool stream_final = ends_stream && a == DEPTH - 1 && word_final;
      if (bool(beat.last) != stream_final) length_error = 1;
      chunk[b] = beat.data;
    }
    for (unsigned p = 0; p < FIELDS; p++) {
#pragma HLS UNROLL
      ap_uint<FIELD_BITS> field = 0;
      const unsigned f_lo = p * FIELD_BITS, f_hi = f_lo + FIELD_BITS;  // the field's bits in the word
      for (unsigned j = 0; j < SPAN; j++) {
#pragma HLS UNROLL
        const unsigned b = f_lo / BEAT_BITS + j;
        const unsigned b_lo = b * BEAT_BITS, b_hi = b_lo + BEAT_BITS;  // the beat's bits in the word
        const unsigned lo = f_lo > b_lo ? f_lo : b_lo, hi = f_hi < b_hi ? f_hi : b_hi;
        if (b < BEATS && lo < hi) field(hi - 1 - f_lo, lo - f_lo) = chunk[b](hi - 1 - b_lo, lo - b_lo);
      }
      mem[p][a] = T(field);  // same width: an ap_int field keeps its two's-complement bits
    }
  }
}

}  // namespace bnn

#endif  // BNN_LOAD_HPP
