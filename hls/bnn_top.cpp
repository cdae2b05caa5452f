/**
 * \file bnn_top.cpp
 * \brief Synthesis top of a bnnflow network: AXI4-Stream in and out, the
 *        image count and ap_ctrl_hs on an AXI4-Lite slave, all layers in one
 *        DATAFLOW region. Nothing here is specific to a network: the
 *        generated bnnflow_params.h supplies the layers.
 */
#include "bnn_top.hpp"

void bnnflow_top(hls::stream<bnnflow::InBeat> &in, hls::stream<bnnflow::OutBeat> &out, unsigned reps) {
#pragma HLS INTERFACE axis port=in
#pragma HLS INTERFACE axis port=out
#pragma HLS INTERFACE s_axilite port=reps bundle=control
#pragma HLS INTERFACE s_axilite port=return bundle=control
#pragma HLS DATAFLOW
  bnnflow::network(in, out, reps);
}
