/**
 * \file bnn_conv.hpp
 * \brief The two convolution units around the matrix-vector unit
 *        (docs/ARTIFACT.md, "Convolutions"; docs/HLS.md, "Convolution units"):
 *        bnn::sliding_window (the convolution input generator) and
 *        bnn::max_pool.
 *
 * Both read and write feature maps as pixel streams: pixels row-major (y,
 * then x), one pixel = CH/P words of P channels (P = SIMD or PE), word `w` of
 * a pixel holding channels `w*P + j`, element `j` at bits
 * `[j*ELEM_BITS, (j+1)*ELEM_BITS)` (unsigned codes). There is no TLAST on
 * these internal streams: like bnn::mvtu and bnn::repack, a unit counts its
 * images (`images` argument). The geometry and the element order are those
 * of bnnflow/conv.py (`im2col`, `max_pool`), which the C-simulation tests
 * (tests/test_hls_conv_units.py) compare every output word with.
 *
 * With BNNFLOW_UNIT_ITERATIONS defined (C simulation only), each unit
 * records the trip count of its pipelined loop in unit_iterations(): at
 * II=1 that is the unit's cycle count without the pipeline depth.
 */
#ifndef BNN_CONV_HPP
#define BNN_CONV_HPP

#include <ap_int.h>
#include <hls_stream.h>

namespace bnn {

#ifdef BNNFLOW_UNIT_ITERATIONS
/**
 * \brief C simulation only: the trip count of the last unit's pipelined loop.
 *
 * Why: the tests measure a unit's cycles per image (one iteration = one
 * cycle at II=1) without a cycle-accurate simulator. Never defined in
 * synthesis.
 */
inline unsigned long long &unit_iterations() {
  static unsigned long long iterations = 0;
  return iterations;
}
#endif

/**
 * \brief A word of N elements of BITS bits, every element \p code.
 * \tparam N    elements per word
 * \tparam BITS bits per element
 * \param code  the element code (only its low BITS bits are used)
 */
template<unsigned N, unsigned BITS>
ap_uint<N * BITS> splat(unsigned code) {
#pragma HLS INLINE
  ap_uint<N * BITS> word = 0;
  for (unsigned j = 0; j < N; j++) {
#pragma HLS UNROLL
    word((j + 1) * BITS - 1, j * BITS) = ap_uint<BITS>(code);
  }
  return word;
}

/**
 * \brief Compile-time geometry of bnn::sliding_window (bnnflow.conv.ConvGeometry
 *        in words of SIMD elements).
 *
 * Buffer depth, in words: DEPTH = CF * max((K-1)*IFM_W + K,
 * 2*(K-1-PAD)*IFM_W + 2*(K-PAD)), CF = CH/SIMD.
 *  - (K-1)*IFM_W + K pixels hold one whole window from its oldest pixel to
 *    its newest with one pixel of read-ahead: without it the unit could not
 *    finish a window (a pixel's window spans K rows).
 *  - 2*(K-1-PAD)*IFM_W + 2*(K-PAD) pixels let the next image's first window
 *    (its first K-1-PAD rows and K-PAD pixels) arrive while the current
 *    image's last window (its last K-1-PAD rows and K-PAD pixels) is still
 *    held: with it, back-to-back images need no fill between them.
 * For the usual "same" convolution (odd K, PAD = K/2) that is K-1 rows and
 * K+1 pixels; for PAD = 0, 2(K-1) rows and 2K pixels.
 *
 * \tparam IFM_H input map height
 * \tparam IFM_W input map width
 * \tparam CH    channels
 * \tparam K     kernel size (K x K window, stride 1)
 * \tparam PAD   padding on every side, 0..K-1
 * \tparam SIMD  channels per word
 */
template<unsigned IFM_H, unsigned IFM_W, unsigned CH, unsigned K, unsigned PAD, unsigned SIMD>
struct WindowGeometry {
  static_assert(SIMD >= 1 && K >= 1 && IFM_H >= 1 && IFM_W >= 1 && CH >= 1,
                "sliding_window: IFM_H, IFM_W, CH, KERNEL and SIMD must be positive");
  static_assert(CH % SIMD == 0, "sliding_window: CH must be a multiple of SIMD (a pixel is CH/SIMD whole words)");
  static_assert(PAD < K, "sliding_window: PAD must be smaller than KERNEL (PAD >= KERNEL gives all-padding windows)");
  static_assert(IFM_H + 2 * PAD >= K && IFM_W + 2 * PAD >= K,
                "sliding_window: the padded input map is smaller than the KERNEL x KERNEL window");
  /// Channel folds: words per pixel.
  static constexpr unsigned CF = CH / SIMD;
  static constexpr unsigned OFM_H = IFM_H + 2 * PAD - K + 1;
  static constexpr unsigned OFM_W = IFM_W + 2 * PAD - K + 1;
  /// Words per input image.
  static constexpr unsigned IN_WORDS = IFM_H * IFM_W * CF;
  /// Words per output image: one im2col vector (K*K*CF words) per output pixel.
  static constexpr unsigned OUT_WORDS = OFM_H * OFM_W * K * K * CF;
  static constexpr unsigned WINDOW_PIXELS = (K - 1) * IFM_W + K;
  static constexpr unsigned OVERLAP_PIXELS = 2 * (K - 1 - PAD) * IFM_W + 2 * (K - PAD);
  /// Line buffer depth in words (see above).
  static constexpr unsigned DEPTH = CF * (WINDOW_PIXELS > OVERLAP_PIXELS ? WINDOW_PIXELS : OVERLAP_PIXELS);
  /// Fill latency: `images` images take at most images * OUT_WORDS + FILL iterations. FILL is the
  /// words the first window needs read before its last word can go out (its first K-1-PAD rows and
  /// K-PAD pixels), plus one (a word goes out at the earliest in the iteration after it was read).
  static constexpr unsigned FILL = ((K - 1 - PAD) * IFM_W + (K - PAD)) * CF + 1;
};

/**
 * \brief Sliding-window unit (convolution input generator): the input map
 *        as one im2col vector per output pixel, for bnn::mvtu with
 *        MW = K*K*CH and the same SIMD.
 *
 * Output, per image: for each output pixel (oy, ox) row-major, for each
 * window position (ky, kx) row-major, for each channel fold w: word w of
 * input pixel (oy+ky-PAD, ox+kx-PAD), or a word of PAD_CODE elements when
 * that pixel is outside the map (bnnflow.conv.im2col's order). Stride 1,
 * OFM_H = IFM_H + 2*PAD - K + 1 (likewise OFM_W).
 *
 * Memory: a circular line buffer of WindowGeometry::DEPTH words (about
 * K - 1 rows; 2(K - 1) rows for PAD = 0), never a whole image. Input word
 * `r` of the stream (counted over all images) lives in slot `r % DEPTH`
 * until no later output needs it.
 *
 * Schedule: one pipelined loop (II=1) over all images. Every iteration
 * writes the next output word when it is padding or its input word has been
 * read in an earlier iteration, and reads the next input word (of this or
 * the next image) while the buffer has a free slot. A slot is free once its
 * word is older than the current output pixel's oldest in-map window pixel
 * (for output rows above PAD: the first pixel of the map, which the next
 * rows' windows read again). Output words outnumber input words for every
 * geometry, so after the first image's fill of at most WindowGeometry::FILL
 * iterations the unit writes one word per iteration while its consumer
 * accepts: `images` images take at most images * OUT_WORDS + FILL
 * iterations, images back to back without a gap (the next image's first
 * rows arrive during the current image's last rows).
 *
 * \tparam IFM_H     input map height
 * \tparam IFM_W     input map width
 * \tparam CH        channels (a multiple of SIMD)
 * \tparam K         kernel size: K x K windows, stride 1
 * \tparam PAD       padding on every side, 0..K-1
 * \tparam SIMD      channels per word (the consuming mvtu's SIMD)
 * \tparam ELEM_BITS bits per element (unsigned code)
 * \tparam PAD_CODE  the code of every element of an out-of-map window position
 *                   (conv.py's `pad_code`), < 2^ELEM_BITS
 *
 * \param in     input stream: IFM_H*IFM_W*CH/SIMD words per image
 * \param out    output stream: OFM_H*OFM_W*K*K*CH/SIMD words per image
 * \param images number of images
 */
template<unsigned IFM_H, unsigned IFM_W, unsigned CH, unsigned K, unsigned PAD, unsigned SIMD, unsigned ELEM_BITS,
         unsigned PAD_CODE>
void sliding_window(hls::stream<ap_uint<SIMD * ELEM_BITS> > &in, hls::stream<ap_uint<SIMD * ELEM_BITS> > &out,
                    unsigned images) {
  typedef WindowGeometry<IFM_H, IFM_W, CH, K, PAD, SIMD> G;
  static_assert(ELEM_BITS >= 1, "sliding_window: ELEM_BITS must be positive");
  static_assert(ELEM_BITS >= 32 || PAD_CODE < (1ull << ELEM_BITS), "sliding_window: PAD_CODE must fit ELEM_BITS");
  typedef ap_uint<SIMD * ELEM_BITS> word_t;
  constexpr unsigned CF = G::CF;
  constexpr unsigned DEPTH = G::DEPTH;

  word_t buffer[DEPTH];
  // One word written (the newest input) and one read (an output) per cycle, at different slots.
#pragma HLS BIND_STORAGE variable=buffer type=ram_s2p
  // A slot is read only in an iteration after the one that wrote it (need < ahead below) and
  // rewritten only after its last read (ahead - oldest < DEPTH): no dependence through the buffer
  // that the schedule does not already order.
#pragma HLS DEPENDENCE variable=buffer inter false
  const word_t pad_word = splat<SIMD, ELEM_BITS>(PAD_CODE);

  // Read side.
  unsigned rd_image = 0;    // image of the next input word
  unsigned rd_pos = 0;      // its position in that image
  unsigned rd_slot = 0;     // its slot: (words read so far) % DEPTH
  unsigned ahead = 0;       // words read, counted from the first word of the output side's image
  // Output side.
  unsigned wr_image = 0;    // image of the next output word
  unsigned oy = 0, ox = 0, ky = 0, kx = 0, w = 0;

  // Every iteration reads or writes (the buffer holds a whole window), so this bound is never reached
  // before all images are out; the loop ends when they are.
  const unsigned long long bound = (unsigned long long)images * (G::IN_WORDS + G::OUT_WORDS) + G::FILL;
  unsigned long long t = 0;
  for (; t < bound && wr_image < images; t++) {
#pragma HLS PIPELINE II=1
    // The output word (oy, ox, ky, kx, w): input pixel (iy, ix) = (oy + ky - PAD, ox + kx - PAD).
    const unsigned iy = oy + ky, ix = ox + kx;  // offset by PAD
    const bool inside = iy >= PAD && iy < IFM_H + PAD && ix >= PAD && ix < IFM_W + PAD;
    const unsigned need = ((iy - PAD) * IFM_W + (ix - PAD)) * CF + w;  // its word in the image (when inside)
    const bool can_write = !inside || need < ahead;
    // Oldest word any output from this pixel on reads: the window's top-left in-map pixel, or the map's
    // first pixel while the next output row's windows still start at row 0.
    const unsigned oldest = oy < PAD ? 0u : ((oy - PAD) * IFM_W + (ox < PAD ? 0u : ox - PAD)) * CF;
    const bool can_read = rd_image < images && ahead - oldest < DEPTH;

    if (can_write) {
      // Word `need` is `back` words before the slot the next input word goes to; oldest <= need < ahead
      // and ahead - oldest < DEPTH keep 1 <= back < DEPTH, so it is still in the buffer.
      const unsigned back = ahead - need;
      const unsigned slot = rd_slot >= back ? rd_slot - back : rd_slot + DEPTH - back;
      out.write(inside ? buffer[slot] : pad_word);
    }
    if (can_read) {
      buffer[rd_slot] = in.read();
      rd_slot = rd_slot + 1 == DEPTH ? 0u : rd_slot + 1;
      ahead++;
      if (++rd_pos == G::IN_WORDS) {
        rd_pos = 0;
        rd_image++;
      }
    }
    if (can_write) {
      if (++w == CF) {
        w = 0;
        if (++kx == K) {
          kx = 0;
          if (++ky == K) {
            ky = 0;
            if (++ox == G::OFM_W) {
              ox = 0;
              if (++oy == G::OFM_H) {  // image complete: count from the next image's first word
                oy = 0;
                wr_image++;
                ahead -= G::IN_WORDS;
              }
            }
          }
        }
      }
    }
  }
#ifdef BNNFLOW_UNIT_ITERATIONS
  unit_iterations() = t;
#endif
}

/**
 * \brief Lane-wise maximum of two words of N unsigned BITS-bit codes (an OR
 *        for 1-bit codes).
 * \tparam N    elements per word
 * \tparam BITS bits per element
 * \param a one word
 * \param b the other word
 */
template<unsigned N, unsigned BITS>
ap_uint<N * BITS> lane_max(const ap_uint<N * BITS> &a, const ap_uint<N * BITS> &b) {
#pragma HLS INLINE
  if (BITS == 1) return a | b;
  ap_uint<N * BITS> m;
  for (unsigned j = 0; j < N; j++) {
#pragma HLS UNROLL
    const ap_uint<BITS> x = a((j + 1) * BITS - 1, j * BITS), y = b((j + 1) * BITS - 1, j * BITS);
    m((j + 1) * BITS - 1, j * BITS) = x > y ? x : y;
  }
  return m;
}

/**
 * \brief Max-pool unit: POOL x POOL windows, stride POOL, over a pixel
 *        stream of PE channels per word (bnnflow.conv.max_pool).
 *
 * Output, per image: OFM_H = IFM_H/POOL rows of OFM_W = IFM_W/POOL pixels,
 * CH/PE words each; element j of word w of output pixel (oy, ox) is the
 * largest code of channel w*PE + j over input pixels (oy*POOL + dy,
 * ox*POOL + dx), dy, dx < POOL. Input rows and columns beyond OFM*POOL are
 * read and dropped (torch.nn.MaxPool2d).
 *
 * Memory: one row of OFM_W*CH/PE accumulator words. Schedule: one pipelined
 * loop (II=1), one input word per iteration, images*IFM_H*IFM_W*CH/PE
 * iterations in all; an output word leaves in the iteration that reads its
 * window's last word. It never stalls its producer.
 *
 * \tparam IFM_H     input map height
 * \tparam IFM_W     input map width
 * \tparam CH        channels (a multiple of PE)
 * \tparam POOL      window size and stride
 * \tparam PE        channels per word (the producing mvtu's PE)
 * \tparam ELEM_BITS bits per element (unsigned code; 1: the max is an OR)
 *
 * \param in     input stream: IFM_H*IFM_W*CH/PE words per image
 * \param out    output stream: (IFM_H/POOL)*(IFM_W/POOL)*CH/PE words per image
 * \param images number of images
 */
template<unsigned IFM_H, unsigned IFM_W, unsigned CH, unsigned POOL, unsigned PE, unsigned ELEM_BITS>
void max_pool(hls::stream<ap_uint<PE * ELEM_BITS> > &in, hls::stream<ap_uint<PE * ELEM_BITS> > &out,
              unsigned images) {
  static_assert(PE >= 1 && POOL >= 1 && IFM_H >= 1 && IFM_W >= 1 && CH >= 1 && ELEM_BITS >= 1,
                "max_pool: IFM_H, IFM_W, CH, POOL, PE and ELEM_BITS must be positive");
  static_assert(CH % PE == 0, "max_pool: CH must be a multiple of PE (a pixel is CH/PE whole words)");
  static_assert(POOL <= IFM_H && POOL <= IFM_W, "max_pool: the input map is smaller than the POOL x POOL window");
  typedef ap_uint<PE * ELEM_BITS> word_t;
  constexpr unsigned CF = CH / PE;
  constexpr unsigned OFM_H = IFM_H / POOL;
  constexpr unsigned OFM_W = IFM_W / POOL;
  constexpr unsigned IN_WORDS = IFM_H * IFM_W * CF;

  word_t acc[OFM_W * CF];  // running maxima of the current output row's windows
  // Read-modify-write of one word per cycle; with CF = 1 the same word again in the next cycle, which a
  // LUTRAM's asynchronous read keeps at II=1 (the row is small: OFM_W*CF words).
#pragma HLS BIND_STORAGE variable=acc type=ram_2p impl=lutram

  unsigned y = 0, x = 0, w = 0;  // input word (y, x, w)
  unsigned dy = 0, dx = 0;       // y % POOL, x % POOL
  unsigned slot = 0;             // (x / POOL) * CF + w
  unsigned x_slot = 0;           // (x / POOL) * CF
  const unsigned long long total = (unsigned long long)images * IN_WORDS;
  unsigned long long t = 0;
  for (; t < total; t++) {
#pragma HLS PIPELINE II=1
    const word_t word = in.read();
    if (y < OFM_H * POOL && x < OFM_W * POOL) {
      const word_t m = (dy == 0 && dx == 0) ? word : lane_max<PE, ELEM_BITS>(acc[slot], word);
      acc[slot] = m;
      if (dy == POOL - 1 && dx == POOL - 1) out.write(m);
    }
    if (++w == CF) {
      w = 0;
      if (++dx == POOL) {
        dx = 0;
        x_slot += CF;
      }
      if (++x == IFM_W) {
        x = 0;
        dx = 0;
        x_slot = 0;
        if (++dy == POOL) dy = 0;
        if (++y == IFM_H) {
          y = 0;
          dy = 0;
        }
      }
    }
    slot = x_slot + w;
  }
#ifdef BNNFLOW_UNIT_ITERATIONS
  unit_iterations() = t;
#endif
}

}  // namespace bnn

#endif  // BNN_CONV_HPP
