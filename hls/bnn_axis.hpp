/**
 * \file bnn_axis.hpp
 * \brief AXI4-Stream words at the network's ports and the TLAST rule of
 *        docs/ARTIFACT.md: the last word of an output vector carries TLAST
 *        exactly when the last word of the input vector that produced it did.
 *
 * With Vitis (ap_axi_sdata.h found) a port word is `ap_axiu<W,0,0,0>`, so the
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
 * \brief Strip the AXI side channels from the input: forward TDATA and keep,
 *        per vector, the TLAST of its last word.
 *
 * \tparam W     TDATA width (SIMD*IN_BITS of the first layer)
 * \tparam WORDS words per vector (SF of the first layer)
 *
 * \param in   AXI4-Stream input
 * \param out  data words for the first layer
 * \param last one flag per vector: TLAST of the vector's last word
 * \param reps number of vectors
 */
template<unsigned W, unsigned WORDS>
void axis_to_stream(hls::stream<AxisWord<W> > &in, hls::stream<ap_uint<W> > &out, hls::stream<ap_uint<1> > &last,
                    unsigned reps) {
  unsigned w = 0;
  const unsigned total = reps * WORDS;
  for (unsigned i = 0; i < total; i++) {
#pragma HLS PIPELINE II=1
    const AxisWord<W> beat = in.read();
    out.write(beat.data);
    if (++w == WORDS) {
      last.write(beat.last);
      w = 0;
    }
  }
}

/**
 * \brief Add the AXI side channels to the output: all bytes valid, TLAST on
 *        a vector's last word when its input vector ended with TLAST.
 *
 * \tparam W     TDATA width (PE*OUT_BITS of the last layer)
 * \tparam WORDS words per vector (NF of the last layer)
 *
 * \param in   data words from the last layer
 * \param last one flag per vector, from axis_to_stream
 * \param out  AXI4-Stream output
 * \param reps number of vectors
 */
template<unsigned W, unsigned WORDS>
void stream_to_axis(hls::stream<ap_uint<W> > &in, hls::stream<ap_uint<1> > &last, hls::stream<AxisWord<W> > &out,
                    unsigned reps) {
  unsigned w = 0;
  const unsigned total = reps * WORDS;
  for (unsigned i = 0; i < total; i++) {
#pragma HLS PIPELINE II=1
    AxisWord<W> beat;
    beat.data = in.read();
    beat.keep = -1;
    beat.strb = -1;
    if (++w == WORDS) {
      beat.last = last.read();
      w = 0;
    } else {
      beat.last = 0;
    }
    out.write(beat);
  }
}

}  // namespace bnn

#endif  // BNN_AXIS_HPP
