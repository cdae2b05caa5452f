/**
 * \file bnn_mvtu.hpp
 * \brief Matrix-vector-threshold unit (MVTU): the one compute engine of a
 *        bnnflow network, in three variants (docs/ARTIFACT.md, "Values and
 *        arithmetic"; docs/HLS.md).
 *
 * A layer with MW (padded) inputs and MH outputs runs on PE processing
 * elements with SIMD lanes each. It takes NF = MH/PE neuron folds and
 * SF = MW/SIMD synapse folds, so one vector costs NF*SF cycles at II=1.
 *
 * Weight memory: `weights[p][nf*SF + sf]` is the SIMD-bit word of neuron
 * `nf*PE + p` at synapse fold `sf`, lane `j` (synapse `sf*SIMD + j`) in bit
 * `j` -- exactly the layout of `Lk_weights.bin`. Threshold memory:
 * `m_thresholds[p][nf]` is the threshold of neuron `nf*PE + p`.
 *
 * Input stream: one word per synapse fold, SIMD elements of IN_BITS, element
 * `j` at bits `[j*IN_BITS, (j+1)*IN_BITS)`. Output stream: one word per neuron
 * fold, PE elements of OUT_BITS, element `p` = neuron `nf*PE + p`.
 *
 * Variants (one public function each):
 *  - mvtu_int_threshold:  unsigned IN_BITS inputs x {-1,+1} weights -> signed
 *                         accumulator -> `acc >= T` (first layer);
 *  - mvtu_xnor_threshold: popcount(XNOR(a, w)) -> `acc >= T`;
 *  - mvtu_xnor_score:     popcount(XNOR(a, w)) -> `2*acc - REAL_MW` (last layer).
 */
#ifndef BNN_MVTU_HPP
#define BNN_MVTU_HPP

#include <ap_int.h>
#include <hls_stream.h>

namespace bnn {

/**
 * \brief Number of bits needed to hold the unsigned value \p x (0 -> 0).
 * \param x value
 */
constexpr unsigned bits_for(unsigned x) { return x == 0 ? 0 : 1 + bits_for(x >> 1); }

/**
 * \brief ceil(log2(x)) for x >= 1.
 * \param x value
 */
constexpr unsigned clog2(unsigned x) { return x <= 1 ? 0 : bits_for(x - 1); }

/**
 * \brief One SIMD-wide slice of an integer dot product: unsigned inputs
 *        times binary weights (bit 1 = +1, bit 0 = -1).
 *
 * \tparam SIMD    lanes per slice
 * \tparam IN_BITS bits per unsigned input element
 */
template<unsigned SIMD, unsigned IN_BITS>
struct IntDot {
  /// Signed sum of SIMD values in [-(2^IN_BITS - 1), 2^IN_BITS - 1].
  typedef ap_int<IN_BITS + clog2(SIMD) + 1> result_t;

  /**
   * \brief Sum over lanes of `w[j] ? x[j] : -x[j]`.
   * \param w SIMD weight bits
   * \param x SIMD input elements of IN_BITS, element j in bits [j*IN_BITS, (j+1)*IN_BITS)
   */
  static result_t compute(const ap_uint<SIMD> &w, const ap_uint<SIMD * IN_BITS> &x) {
#pragma HLS INLINE
    result_t sum = 0;
    for (unsigned j = 0; j < SIMD; j++) {
#pragma HLS UNROLL
      const ap_int<IN_BITS + 1> xj = ap_uint<IN_BITS>(x((j + 1) * IN_BITS - 1, j * IN_BITS));
      sum += w[j] ? xj : ap_int<IN_BITS + 1>(-xj);
    }
    return sum;
  }
};

/**
 * \brief One SIMD-wide slice of a binary dot product: popcount(XNOR(w, x)).
 *        A padded lane (input bit 0, weight bit 1) counts 0.
 *
 * \tparam SIMD lanes per slice
 */
template<unsigned SIMD>
struct XnorDot {
  /// Unsigned count in [0, SIMD].
  typedef ap_uint<bits_for(SIMD)> result_t;

  /**
   * \brief Number of lanes where weight and input bits agree.
   * \param w SIMD weight bits
   * \param x SIMD activation bits
   */
  static result_t compute(const ap_uint<SIMD> &w, const ap_uint<SIMD> &x) {
#pragma HLS INLINE
    const ap_uint<SIMD> agree = ~(w ^ x);
    result_t count = 0;
    for (unsigned j = 0; j < SIMD; j++) {
#pragma HLS UNROLL
      count += agree[j];
    }
    return count;
  }
};

/**
 * \brief Threshold activation: output bit `acc >= T[pe][nf]` (one compare
 *        direction; negative-gamma neurons were negated at export).
 *
 * Aggregate so that a generated header can initialise it with a braced
 * `[PE][NF]` list (finn-hlslib's ThresholdsActivation, reduced to one
 * threshold per neuron).
 *
 * \tparam PE     processing elements (first array dimension)
 * \tparam NF     neuron folds (second array dimension)
 * \tparam T_BITS two's-complement width of a threshold
 */
template<unsigned PE, unsigned NF, unsigned T_BITS>
struct ThresholdActivation {
  static constexpr unsigned OUT_BITS = 1;
  /// Threshold of neuron `nf*PE + pe` at `[pe][nf]`.
  ap_int<T_BITS> m_thresholds[PE][NF];

  /**
   * \brief Output bit of neuron `nf*PE + pe`.
   * \tparam ACC_BITS width of the accumulator
   * \tparam ACC_SIGNED signedness of the accumulator
   * \param nf  neuron fold
   * \param pe  processing element
   * \param acc accumulated dot product
   */
  template<int ACC_BITS, bool ACC_SIGNED>
  ap_uint<1> activate(unsigned nf, unsigned pe, const ap_int_base<ACC_BITS, ACC_SIGNED> &acc) const {
#pragma HLS INLINE
    // Compare as signed numbers whatever the accumulator's signedness.
    const ap_int<ACC_BITS + 1> a = acc;
    return a >= m_thresholds[pe][nf] ? 1 : 0;
  }
};

/**
 * \brief Score output of the last layer: `2*popcount - REAL_MW`, the +-1 dot
 *        product over the real (unpadded) inputs, as OUT_BITS two's complement.
 *
 * \tparam REAL_MW  inputs before padding
 * \tparam OUT_BITS score width (holds [-REAL_MW, REAL_MW])
 */
template<unsigned REAL_MW, unsigned OUT_BITS>
struct ScoreActivation {
  /**
   * \brief Score of neuron `nf*PE + pe` (the indices are unused).
   * \tparam ACC_BITS width of the popcount
   * \tparam ACC_SIGNED signedness of the popcount (false)
   * \param nf  neuron fold
   * \param pe  processing element
   * \param acc popcount over the padded width (padding counts 0)
   */
  template<int ACC_BITS, bool ACC_SIGNED>
  ap_uint<OUT_BITS> activate(unsigned nf, unsigned pe, const ap_int_base<ACC_BITS, ACC_SIGNED> &acc) const {
#pragma HLS INLINE
    (void)nf;
    (void)pe;
    typedef ap_int<ACC_BITS + 2> wide_t;
    const wide_t score = (wide_t(acc) << 1) - wide_t(REAL_MW);
    return score(OUT_BITS - 1, 0);
  }
};

/**
 * \brief The folded matrix-vector engine shared by all variants.
 *
 * Reads one input vector (SF words) during neuron fold 0 and keeps it in a
 * buffer for the other NF-1 folds; every cycle each PE adds one SIMD-wide
 * slice to its accumulator; after SF cycles the PE outputs go out as one word.
 *
 * \tparam MW       inputs per vector, padded to a multiple of SIMD
 * \tparam MH       outputs per vector (a multiple of PE)
 * \tparam PE       processing elements (output parallelism)
 * \tparam SIMD     lanes per PE (input parallelism)
 * \tparam IN_BITS  bits per input element
 * \tparam OUT_BITS bits per output element
 * \tparam Dot      slice dot product (IntDot or XnorDot)
 * \tparam Acc      accumulator type
 * \tparam Act      activation (ThresholdActivation or ScoreActivation)
 *
 * \param in         input stream, SF words per vector
 * \param out        output stream, NF words per vector
 * \param weights    weight memory `[PE][NF*SF]`
 * \param activation activation applied to each finished accumulator
 * \param reps       number of vectors to process
 */
template<unsigned MW, unsigned MH, unsigned PE, unsigned SIMD, unsigned IN_BITS, unsigned OUT_BITS,
         typename Dot, typename Acc, typename Act>
void mvtu(hls::stream<ap_uint<SIMD * IN_BITS> > &in, hls::stream<ap_uint<PE * OUT_BITS> > &out,
          const ap_uint<SIMD> weights[PE][(MH / PE) * (MW / SIMD)], const Act &activation, unsigned reps) {
  static_assert(MW % SIMD == 0, "MW must be padded to a multiple of SIMD");
  static_assert(MH % PE == 0, "PE must divide MH");
  constexpr unsigned NF = MH / PE;
  constexpr unsigned SF = MW / SIMD;

  ap_uint<SIMD * IN_BITS> inbuf[SF];  // the current vector, kept for neuron folds 1..NF-1
  Acc acc[PE];
#pragma HLS ARRAY_PARTITION variable=acc complete dim=1

  unsigned nf = 0;    // neuron fold
  unsigned sf = 0;    // synapse fold
  unsigned tile = 0;  // weight address nf*SF + sf
  const unsigned total = reps * NF * SF;
  for (unsigned i = 0; i < total; i++) {
#pragma HLS PIPELINE II=1
    ap_uint<SIMD * IN_BITS> x;
    if (nf == 0) {
      x = in.read();
      inbuf[sf] = x;
    } else {
      x = inbuf[sf];
    }
    ap_uint<PE * OUT_BITS> word = 0;
    for (unsigned pe = 0; pe < PE; pe++) {
#pragma HLS UNROLL
      Acc a = (sf == 0) ? Acc(0) : acc[pe];
      a += Dot::compute(weights[pe][tile], x);
      acc[pe] = a;
      word((pe + 1) * OUT_BITS - 1, pe * OUT_BITS) = activation.activate(nf, pe, a);
    }
    tile++;
    if (++sf == SF) {
      out.write(word);
      sf = 0;
      if (++nf == NF) {
        nf = 0;
        tile = 0;
      }
    }
  }
}

/**
 * \brief First layer: unsigned IN_BITS inputs times binary weights, signed
 *        accumulator, output bit `acc >= T`.
 *
 * \tparam MW       inputs, padded to a multiple of SIMD (padding pixels are 0)
 * \tparam MH       neurons
 * \tparam PE       processing elements
 * \tparam SIMD     lanes per PE
 * \tparam IN_BITS  bits per unsigned input element
 * \tparam ACC_BITS signed accumulator width (manifest `acc_bits`)
 * \tparam T_BITS   threshold width (manifest `threshold_bits`)
 *
 * \param in         input stream of SIMD*IN_BITS-bit words
 * \param out        output stream of PE-bit words
 * \param weights    weight memory `[PE][NF*SF]`
 * \param thresholds thresholds `[PE][NF]`
 * \param reps       number of vectors
 */
template<unsigned MW, unsigned MH, unsigned PE, unsigned SIMD, unsigned IN_BITS, unsigned ACC_BITS, unsigned T_BITS>
void mvtu_int_threshold(hls::stream<ap_uint<SIMD * IN_BITS> > &in, hls::stream<ap_uint<PE> > &out,
                        const ap_uint<SIMD> weights[PE][(MH / PE) * (MW / SIMD)],
                        const ThresholdActivation<PE, MH / PE, T_BITS> &thresholds, unsigned reps) {
#pragma HLS INLINE
  mvtu<MW, MH, PE, SIMD, IN_BITS, 1, IntDot<SIMD, IN_BITS>, ap_int<ACC_BITS> >(in, out, weights, thresholds, reps);
}

/**
 * \brief Hidden layer: binary inputs, popcount(XNOR) accumulator, output bit
 *        `acc >= T`.
 *
 * \tparam MW       inputs, padded to a multiple of SIMD (padding bits are 0)
 * \tparam MH       neurons
 * \tparam PE       processing elements
 * \tparam SIMD     lanes per PE
 * \tparam ACC_BITS popcount width (manifest `acc_bits`)
 * \tparam T_BITS   threshold width (manifest `threshold_bits`)
 *
 * \param in         input stream of SIMD-bit words
 * \param out        output stream of PE-bit words
 * \param weights    weight memory `[PE][NF*SF]`
 * \param thresholds thresholds `[PE][NF]`
 * \param reps       number of vectors
 */
template<unsigned MW, unsigned MH, unsigned PE, unsigned SIMD, unsigned ACC_BITS, unsigned T_BITS>
void mvtu_xnor_threshold(hls::stream<ap_uint<SIMD> > &in, hls::stream<ap_uint<PE> > &out,
                         const ap_uint<SIMD> weights[PE][(MH / PE) * (MW / SIMD)],
                         const ThresholdActivation<PE, MH / PE, T_BITS> &thresholds, unsigned reps) {
#pragma HLS INLINE
  mvtu<MW, MH, PE, SIMD, 1, 1, XnorDot<SIMD>, ap_uint<ACC_BITS> >(in, out, weights, thresholds, reps);
}

/**
 * \brief Score layer: binary inputs, popcount(XNOR), output the signed score
 *        `2*popcount - REAL_MW` (no threshold).
 *
 * \tparam MW       inputs, padded to a multiple of SIMD (padding bits are 0)
 * \tparam MH       classes
 * \tparam PE       processing elements
 * \tparam SIMD     lanes per PE
 * \tparam REAL_MW  inputs before padding
 * \tparam ACC_BITS popcount width (manifest `acc_bits`)
 * \tparam OUT_BITS score width (manifest `output_bits`)
 *
 * \param in      input stream of SIMD-bit words
 * \param out     output stream of PE*OUT_BITS-bit words (two's complement fields)
 * \param weights weight memory `[PE][NF*SF]`
 * \param reps    number of vectors
 */
template<unsigned MW, unsigned MH, unsigned PE, unsigned SIMD, unsigned REAL_MW, unsigned ACC_BITS, unsigned OUT_BITS>
void mvtu_xnor_score(hls::stream<ap_uint<SIMD> > &in, hls::stream<ap_uint<PE * OUT_BITS> > &out,
                     const ap_uint<SIMD> weights[PE][(MH / PE) * (MW / SIMD)], unsigned reps) {
#pragma HLS INLINE
  static_assert(REAL_MW <= MW, "REAL_MW is the unpadded input count");
  const ScoreActivation<REAL_MW, OUT_BITS> score;
  mvtu<MW, MH, PE, SIMD, 1, OUT_BITS, XnorDot<SIMD>, ap_uint<ACC_BITS> >(in, out, weights, score, reps);
}

}  // namespace bnn

#endif  // BNN_MVTU_HPP
