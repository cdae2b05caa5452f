/**
 * \file bnn_mvtu.hpp
 * \brief Matrix-vector-activation unit (MVTU): the one compute engine of a
 *        bnnflow network (docs/ARTIFACT.md, "Values and arithmetic";
 *        docs/HLS.md, "The engine").
 *
 * One template, bnn::mvtu, serves every layer kind; its template parameters
 * choose the arithmetic, in the way finn-hlslib's MVAU chooses it from its
 * types:
 *
 *  - the multiply-accumulate (`Mac`): MAC_XNOR (1-bit bipolar inputs, 1-bit
 *    weights: popcount(XNOR(a, w)), no multiplier) or MAC_INT (unsigned
 *    IN_BITS inputs times signed weight values: add/subtract for 1-bit `sym`
 *    weights, a lane multiply for wider ones);
 *  - the weights: W_BITS-bit codes, `WeightEncoding` ENC_SYM (code q is the
 *    value 2q - (2^W_BITS - 1)) or ENC_INT (narrow two's complement);
 *  - the activation (a type): MultiThreshold (N thresholds per neuron,
 *    out = #{t : acc >= T_t}), Score (the signed dot product) or
 *    AffineScore (mul * dot + add per neuron).
 *
 * A layer with MW (padded) inputs and MH outputs runs on PE processing
 * elements with SIMD lanes each: NF = MH/PE neuron folds, SF = MW/SIMD
 * synapse folds, NF*SF cycles per vector at II=1.
 *
 * Weight memory: `weights[p][nf*SF + sf]` is the SIMD*W_BITS-bit word of
 * neuron `nf*PE + p` at synapse fold `sf`; lane `j` (synapse `sf*SIMD + j`)
 * holds its code at bits `[j*W_BITS, (j+1)*W_BITS)` -- exactly the layout of
 * `Lk_weights.bin`. Input stream: one word per synapse fold, SIMD elements of
 * IN_BITS, element `j` at bits `[j*IN_BITS, (j+1)*IN_BITS)`. Output stream:
 * one word per neuron fold, PE elements of Act::OUT_BITS, element `p` =
 * neuron `nf*PE + p`.
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
constexpr unsigned bits_for(unsigned long long x) { return x == 0 ? 0 : 1 + bits_for(x >> 1); }

/**
 * \brief Bits of a two's-complement field that holds every integer in
 *        [-m, m] (the manifest's `bits_signed(-m, m)`).
 * \param m largest magnitude
 */
constexpr unsigned bits_signed(unsigned long long m) { return bits_for(m) + 1; }

/// The multiply-accumulate of a layer (manifest: the `xnor_` / `int_` half of `kind`).
enum Mac {
  MAC_XNOR = 0,  ///< 1-bit bipolar inputs and weights: acc = popcount(XNOR(a, w)) in [0, MW]
  MAC_INT = 1    ///< unsigned inputs times signed weight values: acc = sum x_i * w_i
};

/// How a weight code reads as a value (manifest `weight_encoding`).
enum WeightEncoding {
  ENC_SYM = 0,  ///< code q in [0, 2^K - 1] is the value 2q - (2^K - 1); K = 1: bit 1 = +1, bit 0 = -1
  ENC_INT = 1   ///< narrow K-bit two's complement, values in [-(2^(K-1) - 1), 2^(K-1) - 1]
};

/**
 * \brief Decoding of one K-bit weight code (primary template: ENC_SYM).
 *
 * \tparam K   bits per weight code
 * \tparam ENC the encoding
 */
template<unsigned K, WeightEncoding ENC>
struct WeightCode {
  static_assert(K >= 1 && K <= 8, "weight codes have 1..8 bits");
  /// Largest weight magnitude, 2^K - 1.
  static constexpr unsigned long long WMAX = (1ull << K) - 1;
  /// A value in [-(2^K - 1), 2^K - 1]: K+1 bits.
  typedef ap_int<K + 1> value_t;

  /**
   * \brief The value 2q - (2^K - 1) of code \p q.
   * \param q the code
   */
  static value_t value(const ap_uint<K> &q) {
#pragma HLS INLINE
    const ap_int<K + 2> twice = ap_int<K + 2>(q) << 1;  // 2q <= 2^(K+1) - 2
    return value_t(twice - ap_int<K + 2>(WMAX));
  }
};

/**
 * \brief Decoding of one K-bit weight code, narrow two's complement (the code
 *        for -2^(K-1) is refused when the artifact is loaded).
 *
 * \tparam K bits per weight code (2..8; K = 2 is ternary)
 */
template<unsigned K>
struct WeightCode<K, ENC_INT> {
  static_assert(K >= 2 && K <= 8, "int weight codes have 2..8 bits");
  /// Largest weight magnitude, 2^(K-1) - 1.
  static constexpr unsigned long long WMAX = (1ull << (K - 1)) - 1;
  /// The code itself, read as two's complement.
  typedef ap_int<K> value_t;

  /**
   * \brief The value of code \p q (same bits, signed).
   * \param q the code
   */
  static value_t value(const ap_uint<K> &q) {
#pragma HLS INLINE
    return value_t(q);
  }
};

/**
 * \brief One lane of an integer dot product: unsigned IN_BITS input x times
 *        the value of a K-bit weight code (a lane multiply).
 *
 * Bound: |x * w| <= (2^IN_BITS - 1) * WMAX = MAX.
 *
 * \tparam IN_BITS bits per unsigned input element
 * \tparam K       bits per weight code
 * \tparam ENC     weight encoding
 */
template<unsigned IN_BITS, unsigned K, WeightEncoding ENC>
struct IntLane {
  typedef WeightCode<K, ENC> Code;
  /// Largest |x * w|.
  static constexpr unsigned long long MAX = ((1ull << IN_BITS) - 1) * Code::WMAX;
  typedef ap_int<bits_signed(MAX)> product_t;

  /**
   * \brief x * value(q).
   * \param x the input element
   * \param q the weight code
   */
  static product_t product(const ap_uint<IN_BITS> &x, const ap_uint<K> &q) {
#pragma HLS INLINE
    return product_t(ap_int<IN_BITS + 1>(x) * Code::value(q));
  }
};

/**
 * \brief The 1-bit `sym` lane: w = +-1, so the product is x or -x (an
 *        add/subtract, no multiplier).
 *
 * Bound: |x * w| <= 2^IN_BITS - 1 = MAX.
 *
 * \tparam IN_BITS bits per unsigned input element
 */
template<unsigned IN_BITS>
struct IntLane<IN_BITS, 1, ENC_SYM> {
  static constexpr unsigned long long MAX = (1ull << IN_BITS) - 1;
  typedef ap_int<IN_BITS + 1> product_t;

  /**
   * \brief `q ? x : -x`.
   * \param x the input element
   * \param q the weight bit (1 = +1, 0 = -1)
   */
  static product_t product(const ap_uint<IN_BITS> &x, const ap_uint<1> &q) {
#pragma HLS INLINE
    const product_t xj = x;
    return q[0] ? xj : product_t(-xj);
  }
};

/**
 * \brief The arithmetic of a layer: slice (SIMD lanes of one cycle),
 *        accumulator and signed dot product, chosen by MAC (primary template:
 *        MAC_INT).
 *
 * Bounds (docs/ARTIFACT.md): a lane is within LANE_MAX = (2^IN_BITS - 1) *
 * WMAX (WMAX = 2^K - 1 for `sym`, 2^(K-1) - 1 for `int`); a slice within
 * SIMD * LANE_MAX; the accumulator within PEAK = MW * LANE_MAX, so it is
 * `ap_int<bits_signed(PEAK)>`, the manifest's `acc_bits`. Padded lanes (input
 * 0) add 0. The dot product is the accumulator itself.
 *
 * \tparam MAC     MAC_INT
 * \tparam MW      inputs, padded to a multiple of SIMD
 * \tparam REAL_MW inputs before padding (unused by MAC_INT)
 * \tparam SIMD    lanes per PE
 * \tparam IN_BITS bits per unsigned input element
 * \tparam K       bits per weight code
 * \tparam ENC     weight encoding
 */
template<Mac MAC, unsigned MW, unsigned REAL_MW, unsigned SIMD, unsigned IN_BITS, unsigned K, WeightEncoding ENC>
struct Arithmetic {
  static_assert(MAC == MAC_INT, "MAC_XNOR takes 1-bit inputs and 1-bit sym weights");
  static_assert(IN_BITS >= 1 && IN_BITS <= 8, "inputs have 1..8 bits");
  typedef IntLane<IN_BITS, K, ENC> Lane;
  static constexpr unsigned long long LANE_MAX = Lane::MAX;
  /// |acc| <= PEAK = MW * (2^IN_BITS - 1) * WMAX.
  static constexpr unsigned long long PEAK = MW * LANE_MAX;
  static constexpr unsigned ACC_BITS = bits_signed(PEAK);
  /// A slice's sum: |sum| <= SIMD * LANE_MAX.
  typedef ap_int<bits_signed(SIMD * LANE_MAX)> slice_t;
  typedef ap_int<ACC_BITS> acc_t;
  typedef acc_t dot_t;

  /**
   * \brief Sum over the SIMD lanes of x_j * value(w_j).
   * \param w SIMD weight codes, lane j at bits [j*K, (j+1)*K)
   * \param x SIMD input elements, element j at bits [j*IN_BITS, (j+1)*IN_BITS)
   */
  static slice_t slice(const ap_uint<SIMD * K> &w, const ap_uint<SIMD * IN_BITS> &x) {
#pragma HLS INLINE
    slice_t sum = 0;
    for (unsigned j = 0; j < SIMD; j++) {
#pragma HLS UNROLL
      const ap_uint<IN_BITS> xj = x((j + 1) * IN_BITS - 1, j * IN_BITS);
      const ap_uint<K> wj = w((j + 1) * K - 1, j * K);
      sum += Lane::product(xj, wj);
    }
    return sum;
  }

  /**
   * \brief The signed dot product: the accumulator itself.
   * \param acc the finished accumulator
   */
  static dot_t dot(const acc_t &acc) {
#pragma HLS INLINE
    return acc;
  }
};

/**
 * \brief The XNOR arithmetic: 1-bit bipolar inputs (bit b reads as 2b - 1)
 *        and 1-bit `sym` weights; the XNOR-popcount fast path, no multiplier.
 *
 * Bounds: a slice counts in [0, SIMD], the accumulator in [0, MW] (unsigned,
 * `ap_uint<bits_for(MW)>`, the manifest's `acc_bits`). A padded lane (input
 * 0 against weight 1) counts 0, so the +-1 dot product over the real inputs
 * is 2*acc - REAL_MW, in [-REAL_MW, REAL_MW].
 *
 * \tparam MW      inputs, padded to a multiple of SIMD
 * \tparam REAL_MW inputs before padding
 * \tparam SIMD    lanes per PE
 */
template<unsigned MW, unsigned REAL_MW, unsigned SIMD>
struct Arithmetic<MAC_XNOR, MW, REAL_MW, SIMD, 1, 1, ENC_SYM> {
  static_assert(REAL_MW <= MW, "REAL_MW is the unpadded input count");
  static constexpr unsigned long long LANE_MAX = 1;
  static constexpr unsigned long long PEAK = MW;
  /// acc in [0, MW].
  static constexpr unsigned ACC_BITS = bits_for(MW);
  typedef ap_uint<bits_for(SIMD)> slice_t;
  typedef ap_uint<ACC_BITS> acc_t;
  /// 2*acc - REAL_MW; two bits above acc so that even an acc of MW (padded lanes reloaded as 0) cannot wrap here.
  typedef ap_int<ACC_BITS + 2> dot_t;

  /**
   * \brief Number of lanes where weight and input bits agree.
   * \param w SIMD weight bits
   * \param x SIMD activation bits
   */
  static slice_t slice(const ap_uint<SIMD> &w, const ap_uint<SIMD> &x) {
#pragma HLS INLINE
    const ap_uint<SIMD> agree = ~(w ^ x);
    slice_t count = 0;
    for (unsigned j = 0; j < SIMD; j++) {
#pragma HLS UNROLL
      count += agree[j];
    }
    return count;
  }

  /**
   * \brief 2*acc - REAL_MW.
   * \param acc the finished popcount over the padded width
   */
  static dot_t dot(const acc_t &acc) {
#pragma HLS INLINE
    return (dot_t(acc) << 1) - dot_t(REAL_MW);
  }
};

/**
 * \brief Multi-threshold activation: out = #{t : acc >= T[pe][nf][t]}, an
 *        unsigned code of bits_for(N) bits (N = 1: one compare, one bit).
 *
 * The N compares of a neuron run in parallel (the generated header
 * partitions the third dimension completely). The artifact keeps a neuron's
 * thresholds non-decreasing, but the count does not rely on it. Aggregate,
 * so that the generated header
 * initialises it with a braced `[PE][NF][N]` list (finn-hlslib's
 * ThresholdsActivation).
 *
 * \tparam PE     processing elements (first dimension)
 * \tparam NF     neuron folds (second dimension)
 * \tparam N      thresholds per neuron (1..255; manifest `n_thresholds`)
 * \tparam T_BITS two's-complement width of a threshold (manifest `threshold_bits`)
 */
template<unsigned PE, unsigned NF, unsigned N, unsigned T_BITS>
struct MultiThreshold {
  static_assert(N >= 1 && N <= 255, "1..255 thresholds per neuron");
  static constexpr unsigned OUT_BITS = bits_for(N);
  /// Threshold t of neuron `nf*PE + pe` at `[pe][nf][t]` (the layout of `Lk_thresholds.bin`).
  ap_int<T_BITS> m_thresholds[PE][NF][N];

  /**
   * \brief Output code of neuron `nf*PE + pe`.
   * \tparam A  the layer's Arithmetic
   * \param nf  neuron fold
   * \param pe  processing element
   * \param acc the finished accumulator (thresholds compare with it, not with the dot product)
   */
  template<typename A>
  ap_uint<OUT_BITS> activate(unsigned nf, unsigned pe, const typename A::acc_t &acc) const {
#pragma HLS INLINE
    // Compare as signed numbers whatever the accumulator's signedness.
    const ap_int<A::ACC_BITS + 1> a = acc;
    ap_uint<OUT_BITS> count = 0;  // at most N: fits bits_for(N)
    for (unsigned t = 0; t < N; t++) {
#pragma HLS UNROLL
      count += (a >= m_thresholds[pe][nf][t]) ? 1 : 0;
    }
    return count;
  }
};

/**
 * \brief Score activation: the signed dot product (2*acc - REAL_MW for XNOR,
 *        acc for INT) as SCORE_BITS two's complement. No memory.
 *
 * \tparam SCORE_BITS score width (manifest `output_bits`, holds [-D, D])
 */
template<unsigned SCORE_BITS>
struct Score {
  static constexpr unsigned OUT_BITS = SCORE_BITS;

  /**
   * \brief Score of neuron `nf*PE + pe` (the indices are unused).
   * \tparam A  the layer's Arithmetic
   * \param nf  neuron fold
   * \param pe  processing element
   * \param acc the finished accumulator
   */
  template<typename A>
  ap_uint<OUT_BITS> activate(unsigned nf, unsigned pe, const typename A::acc_t &acc) const {
#pragma HLS INLINE
    (void)nf;
    (void)pe;
    const ap_int<OUT_BITS> score = A::dot(acc);  // sign-extends or keeps the low bits
    return ap_uint<OUT_BITS>(score);
  }
};

/**
 * \brief Affine score activation: mul[n] * dot + add[n] per neuron, as
 *        SCORE_BITS two's complement.
 *
 * Bound: |mul|, |add| <= 2^(A_BITS-1) = M and |dot| <= D give |score| <=
 * M*D + M, which the manifest's `output_bits` holds (at most 32). The
 * product is computed at full width (A_BITS + dot bits), so nothing wraps
 * before the output field.
 *
 * \tparam PE         processing elements (first dimension)
 * \tparam NF         neuron folds (second dimension)
 * \tparam A_BITS     two's-complement width of mul and add (manifest `affine_bits`)
 * \tparam SCORE_BITS score width (manifest `output_bits`)
 */
template<unsigned PE, unsigned NF, unsigned A_BITS, unsigned SCORE_BITS>
struct AffineScore {
  static_assert(A_BITS >= 2 && A_BITS <= 32, "affine_bits is 2..32");
  static constexpr unsigned OUT_BITS = SCORE_BITS;
  /// Neuron `nf*PE + pe`: `[pe][nf][0]` = mul, `[pe][nf][1]` = add (the layout of `Lk_affine.bin`).
  ap_int<A_BITS> m_affine[PE][NF][2];

  /**
   * \brief Score of neuron `nf*PE + pe`.
   * \tparam A  the layer's Arithmetic
   * \param nf  neuron fold
   * \param pe  processing element
   * \param acc the finished accumulator
   */
  template<typename A>
  ap_uint<OUT_BITS> activate(unsigned nf, unsigned pe, const typename A::acc_t &acc) const {
#pragma HLS INLINE
    typedef typename A::dot_t dot_t;
    typedef ap_int<A_BITS + dot_t::width + 1> wide_t;  // |mul*dot + add| <= M*D + M
    const dot_t d = A::dot(acc);
    const wide_t score = wide_t(m_affine[pe][nf][0] * d) + wide_t(m_affine[pe][nf][1]);
    return ap_uint<OUT_BITS>(ap_int<OUT_BITS>(score));
  }
};

/**
 * \brief The folded matrix-vector-activation unit: one template for every
 *        layer kind.
 *
 * Reads one input vector (SF words) during neuron fold 0 and keeps it in a
 * buffer for the other NF-1 folds; every cycle each PE adds one SIMD-wide
 * slice (Arithmetic::slice) to its accumulator; after SF cycles the PE
 * activations go out as one word. The accumulator type comes from the
 * bound (Arithmetic::acc_t, the manifest's `acc_bits`).
 *
 * \tparam MW      inputs per vector, padded to a multiple of SIMD (padding is 0)
 * \tparam REAL_MW inputs before padding (the XNOR score's offset)
 * \tparam MH      outputs per vector (a multiple of PE)
 * \tparam PE      processing elements (output parallelism)
 * \tparam SIMD    lanes per PE (input parallelism)
 * \tparam IN_BITS bits per input element (1 for MAC_XNOR)
 * \tparam W_BITS  bits per weight code (1 for MAC_XNOR)
 * \tparam ENC     weight encoding (ENC_SYM for MAC_XNOR)
 * \tparam MAC     MAC_XNOR or MAC_INT
 * \tparam Act     activation: MultiThreshold, Score or AffineScore (its OUT_BITS is the output field)
 *
 * \param in         input stream, SF words of SIMD*IN_BITS bits per vector
 * \param out        output stream, NF words of PE*Act::OUT_BITS bits per vector
 * \param weights    weight memory `[PE][NF*SF]` of SIMD*W_BITS-bit words
 * \param activation activation applied to each finished accumulator
 * \param reps       number of vectors to process
 */
template<unsigned MW, unsigned REAL_MW, unsigned MH, unsigned PE, unsigned SIMD, unsigned IN_BITS, unsigned W_BITS,
         WeightEncoding ENC, Mac MAC, typename Act>
void mvtu(hls::stream<ap_uint<SIMD * IN_BITS> > &in, hls::stream<ap_uint<PE * Act::OUT_BITS> > &out,
          const ap_uint<SIMD * W_BITS> weights[PE][(MH / PE) * (MW / SIMD)], const Act &activation, unsigned reps) {
  static_assert(MW % SIMD == 0, "MW must be padded to a multiple of SIMD");
  static_assert(MH % PE == 0, "PE must divide MH");
  static_assert(MAC == MAC_INT || (IN_BITS == 1 && W_BITS == 1 && ENC == ENC_SYM),
                "MAC_XNOR takes 1-bit inputs and 1-bit sym weights");
  typedef Arithmetic<MAC, MW, REAL_MW, SIMD, IN_BITS, W_BITS, ENC> A;
  typedef typename A::acc_t acc_t;
  constexpr unsigned NF = MH / PE;
  constexpr unsigned SF = MW / SIMD;
  constexpr unsigned OUT_BITS = Act::OUT_BITS;

  ap_uint<SIMD * IN_BITS> inbuf[SF];  // the current vector, kept for neuron folds 1..NF-1
  acc_t acc[PE];
#pragma HLS ARRAY_PARTITION variable=acc complete dim=1

  unsigned nf = 0;    // neuron fold
  unsigned sf = 0;    // synapse fold
  unsigned tile = 0;  // weight address nf*SF + sf
  // 64 bits: a convolution runs reps = images * output pixels vectors, and images * pixels * NF * SF
  // passes 2^32 within tens of thousands of images (32x32 pixels, NF*SF = 144: after 29,127).
  const unsigned long long total = (unsigned long long)reps * NF * SF;
  for (unsigned long long i = 0; i < total; i++) {
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
      acc_t a = (sf == 0) ? acc_t(0) : acc[pe];
      a += A::slice(weights[pe][tile], x);  // stays within the accumulator's bound
      acc[pe] = a;
      word((pe + 1) * OUT_BITS - 1, pe * OUT_BITS) = activation.template activate<A>(nf, pe, a);
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

}  // namespace bnn

#endif  // BNN_MVTU_HPP
