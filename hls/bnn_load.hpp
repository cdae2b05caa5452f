/**
 * \file bnn_load.hpp
 * \brief Load mode: write the parameter stream into the weight and neuron
 *        parameter memories (docs/ACCEL.md, "The parameter stream").
 *
 * The stream carries every memory word of every layer, in the order
 * bnnflow.accel.param_segments gives (per layer: the weights, then the
 * neuron parameter memory if the layer has one); the generated
 * load_parameters() calls load_memory (weights) or load_grouped_memory
 * (neuron parameters) once per segment in that order. A memory word holds
 * PE groups of GROUP fields of FIELD_BITS, field g of PE p at bits
 * [(p*GROUP + g)*FIELD_BITS, (p*GROUP + g + 1)*FIELD_BITS)
 * (docs/ARTIFACT.md, "RTL memories"):
 *
 *  - weights: GROUP 1, FIELD_BITS = SIMD*W_BITS (a PE's SIMD weight codes);
 *  - thresholds: GROUP N, FIELD_BITS = T_BITS (a PE's N thresholds);
 *  - affine: GROUP 2, FIELD_BITS = A_BITS (a PE's mul, then add).
 *
 * The HLS memories are organised per PE (`mem[p][address]` or
 * `mem[p][address][g]`, partitioned by p), so each field goes to its own
 * PE's memory.
 */
#ifndef BNN_LOAD_HPP
#define BNN_LOAD_HPP

#include <ap_int.h>
#include <hls_stream.h>

#include "bnn_axis.hpp"

namespace bnn {

/**
 * \brief Read the beats of one memory word, checking TKEEP, padding and TLAST.
 *
 * \tparam BEAT_BITS TDATA width of the input stream
 * \tparam WORD_BITS bits of the memory word
 * \tparam BEATS     beats of the word, beats_for(WORD_BITS, BEAT_BITS)
 *
 * \param in           the input stream (load mode)
 * \param chunk        the word's beats, lowest bits first
 * \param stream_final true for the stream's last word: its last beat must carry TLAST
 * \param format_error set to 1 when a beat has a TKEEP bit clear or a padding bit set
 * \param length_error set to 1 when a beat's TLAST is not exactly on the stream's last beat
 */
template<unsigned BEAT_BITS, unsigned WORD_BITS, unsigned BEATS>
void read_word_beats(hls::stream<AxisWord<BEAT_BITS> > &in, ap_uint<BEAT_BITS> chunk[BEATS], bool stream_final,
                     ap_uint<1> &format_error, ap_uint<1> &length_error) {
#pragma HLS INLINE
  for (unsigned b = 0; b < BEATS; b++) {
#pragma HLS UNROLL
    const AxisWord<BEAT_BITS> beat = in.read();
    const bool word_final = b == BEATS - 1;
    if (!beat_well_formed<BEAT_BITS, WORD_BITS>(beat, word_final)) format_error = 1;
    if (bool(beat.last) != (stream_final && word_final)) length_error = 1;
    chunk[b] = beat.data;
  }
}

/**
 * \brief Field \p f (bits [f*FIELD_BITS, (f+1)*FIELD_BITS)) of a word held as beats.
 *
 * Cut from the (at most FIELD_BITS/BEAT_BITS + 2) beats it overlaps, so no
 * intermediate is wider than a beat or a field -- a memory word itself
 * (PE*SIMD*W_BITS bits) may be far wider than ap_int allows.
 *
 * \tparam BEAT_BITS  TDATA width of the input stream
 * \tparam BEATS      beats of the word
 * \tparam FIELD_BITS bits per field
 *
 * \param chunk the word's beats, lowest bits first
 * \param f     field index within the word
 */
template<unsigned BEAT_BITS, unsigned BEATS, unsigned FIELD_BITS>
ap_uint<FIELD_BITS> cut_field(const ap_uint<BEAT_BITS> chunk[BEATS], unsigned f) {
#pragma HLS INLINE
  constexpr unsigned SPAN = FIELD_BITS / BEAT_BITS + 2;  // beats one field can overlap
  ap_uint<FIELD_BITS> field = 0;
  const unsigned f_lo = f * FIELD_BITS, f_hi = f_lo + FIELD_BITS;  // the field's bits in the word
  for (unsigned j = 0; j < SPAN; j++) {
#pragma HLS UNROLL
    const unsigned b = f_lo / BEAT_BITS + j;
    const unsigned b_lo = b * BEAT_BITS, b_hi = b_lo + BEAT_BITS;  // the beat's bits in the word
    const unsigned lo = f_lo > b_lo ? f_lo : b_lo, hi = f_hi < b_hi ? f_hi : b_hi;
    if (b < BEATS && lo < hi) field(hi - 1 - f_lo, lo - f_lo) = chunk[b](hi - 1 - b_lo, lo - b_lo);
  }
  return field;
}

/**
 * \brief Read one memory's segment of the parameter stream into a
 *        `mem[PE][DEPTH][GROUP]` memory (thresholds, affine parameters).
 *
 * Each memory word arrives as beats_for(PE*GROUP*FIELD_BITS, BEAT_BITS)
 * beats, lowest bits first, padding zero. One word per pipelined iteration
 * (II = its beat count, i.e. one beat per cycle).
 *
 * \tparam BEAT_BITS  TDATA width of the input stream
 * \tparam PE         processing elements (groups per word)
 * \tparam GROUP      fields per PE (N thresholds, or 2 for mul and add)
 * \tparam FIELD_BITS bits per field (T_BITS, A_BITS)
 * \tparam DEPTH      words of the memory (NF)
 * \tparam T          element type of the memory (ap_int<FIELD_BITS>)
 *
 * \param in           the input stream (load mode)
 * \param mem          the memory, `mem[p][address][g]`
 * \param ends_stream  true for the stream's last segment: its last beat must carry TLAST
 * \param format_error set to 1 when a beat has a TKEEP bit clear or a padding bit set
 * \param length_error set to 1 when a beat's TLAST is not exactly on the stream's last beat
 */
template<unsigned BEAT_BITS, unsigned PE, unsigned GROUP, unsigned FIELD_BITS, unsigned DEPTH, typename T>
void load_grouped_memory(hls::stream<AxisWord<BEAT_BITS> > &in, T mem[PE][DEPTH][GROUP], bool ends_stream,
                 ap_uint<1> &format_error, ap_uint<1> &length_error) {
  constexpr unsigned WORD_BITS = PE * GROUP * FIELD_BITS;
  constexpr unsigned BEATS = beats_for(WORD_BITS, BEAT_BITS);
  for (unsigned a = 0; a < DEPTH; a++) {
#pragma HLS PIPELINE II=BEATS
    ap_uint<BEAT_BITS> chunk[BEATS];
#pragma HLS ARRAY_PARTITION variable=chunk complete dim=1
    read_word_beats<BEAT_BITS, WORD_BITS, BEATS>(in, chunk, ends_stream && a == DEPTH - 1, format_error,
                                                 length_error);
    for (unsigned p = 0; p < PE; p++) {
#pragma HLS UNROLL
      for (unsigned g = 0; g < GROUP; g++) {
#pragma HLS UNROLL
        // same width: an ap_int field keeps its two's-complement bits
        mem[p][a][g] = T(cut_field<BEAT_BITS, BEATS, FIELD_BITS>(chunk, p * GROUP + g));
      }
    }
  }
}

/**
 * \brief Read one memory's segment of the parameter stream into a
 *        `mem[PE][DEPTH]` memory (the weights: one SIMD*W_BITS field per PE).
 *
 * \tparam BEAT_BITS  TDATA width of the input stream
 * \tparam PE         processing elements (fields per word)
 * \tparam FIELD_BITS bits per field (SIMD*W_BITS)
 * \tparam DEPTH      words of the memory (NF*SF)
 * \tparam T          element type of the memory (ap_uint<SIMD*W_BITS>)
 *
 * \param in           the input stream (load mode)
 * \param mem          the memory, `mem[p][address]`
 * \param ends_stream  true for the stream's last segment: its last beat must carry TLAST
 * \param format_error set to 1 when a beat has a TKEEP bit clear or a padding bit set
 * \param length_error set to 1 when a beat's TLAST is not exactly on the stream's last beat
 */
template<unsigned BEAT_BITS, unsigned PE, unsigned FIELD_BITS, unsigned DEPTH, typename T>
void load_memory(hls::stream<AxisWord<BEAT_BITS> > &in, T mem[PE][DEPTH], bool ends_stream,
                 ap_uint<1> &format_error, ap_uint<1> &length_error) {
  constexpr unsigned WORD_BITS = PE * FIELD_BITS;
  constexpr unsigned BEATS = beats_for(WORD_BITS, BEAT_BITS);
  for (unsigned a = 0; a < DEPTH; a++) {
#pragma HLS PIPELINE II=BEATS
    ap_uint<BEAT_BITS> chunk[BEATS];
#pragma HLS ARRAY_PARTITION variable=chunk complete dim=1
    read_word_beats<BEAT_BITS, WORD_BITS, BEATS>(in, chunk, ends_stream && a == DEPTH - 1, format_error,
                                                 length_error);
    for (unsigned p = 0; p < PE; p++) {
#pragma HLS UNROLL
      mem[p][a] = T(cut_field<BEAT_BITS, BEATS, FIELD_BITS>(chunk, p));
    }
  }
}

}  // namespace bnn

#endif  // BNN_LOAD_HPP
