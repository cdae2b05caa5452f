/**
 * \file bnn_top.cpp
 * \brief Synthesis top of a bnnflow network (docs/ACCEL.md): AXI4-Stream in
 *        and out, and on one AXI4-Lite slave (bundle `control`, ap_ctrl_hs)
 *        the image count, the mode, the hardware signature and the status.
 *        Nothing here is specific to a network: the generated
 *        bnnflow_params.h supplies the memories, infer() and load_parameters().
 *
 * The mode switch sits outside the dataflow region: infer() is its own
 * function holding the DATAFLOW chain (adapter, layers -- a convolution with its
 * sliding window and max-pool -- repackers, adapter),
 * load_parameters() a plain sequential loop over the parameter stream. Both
 * use the same memories, which live at namespace scope in the generated
 * header (initialized with the exported parameters: the power-on default).
 */
#include "bnn_top.hpp"

void bnnflow_top(hls::stream<bnnflow::InBeat> &in, hls::stream<bnnflow::OutBeat> &out, unsigned reps, unsigned mode,
                 unsigned *signature, unsigned *status) {
// Register offsets (Vitis HLS, arguments in this order): 0x10 reps, 0x18 mode,
// 0x20 signature (0x24 its ap_vld), 0x28 status (0x2C its ap_vld). docs/HLS.md.
#pragma HLS INTERFACE axis port=in
#pragma HLS INTERFACE axis port=out
#pragma HLS INTERFACE s_axilite port=reps bundle=control
#pragma HLS INTERFACE s_axilite port=mode bundle=control
#pragma HLS INTERFACE s_axilite port=signature bundle=control
#pragma HLS INTERFACE s_axilite port=status bundle=control
#pragma HLS INTERFACE s_axilite port=return bundle=control
  ap_uint<1> format_error = 0, length_error = 0, bad_mode = 0;
  if (mode == bnnflow::kModeInfer) {
    if (reps != 0) bnnflow::infer(in, out, reps, format_error);
  } else if (mode == bnnflow::kModeLoad) {
    bnnflow::load_parameters(in, format_error, length_error);
  } else {
    bad_mode = 1;
  }
  // Output-only pointers (written, never read) become registers with an ap_vld bit.
  *signature = bnnflow::kSignature;
  *status = (format_error ? bnnflow::kStatusFormatError : 0u) | (length_error ? bnnflow::kStatusLoadLengthError : 0u) |
            (bad_mode ? bnnflow::kStatusBadMode : 0u);
}
