/**
 * \file bnn_top.hpp
 * \brief Declaration of the accelerator top, shared by bnn_top.cpp and the
 *        testbench. The network itself (configuration, memories, the chain of
 *        engines, the load path) comes from the header bnnflow generates for
 *        an artifact, `<export>/hls/bnnflow_params.h`: put `<export>/hls` on
 *        the include path (docs/HLS.md). The interface is docs/ACCEL.md.
 */
#ifndef BNN_TOP_HPP
#define BNN_TOP_HPP

#include "bnnflow_params.h"

/**
 * \brief The whole network as one IP: two AXI4-Streams and an AXI4-Lite slave.
 *
 * \param in        input beats: images (infer mode, kInWords words of the first layer per image: SF,
 *                  or a convolution's input map pixel by pixel) or the parameter stream (load mode);
 *                  kInBeatBits of TDATA (docs/ACCEL.md, "Streams")
 * \param out       score beats (infer mode): kOutWords words of the last layer per image, kOutBeatBits
 *                  of TDATA; TLAST follows the input's TLAST per image
 * \param reps      images of an infer run (0: consume nothing, only report)
 * \param mode      kModeInfer or kModeLoad; anything else sets kStatusBadMode and does nothing
 * \param signature written with kSignature by every run (the build's hardware signature)
 * \param status    written with the kStatus* bits of this run by every run
 */
void bnnflow_top(hls::stream<bnnflow::InBeat> &in, hls::stream<bnnflow::OutBeat> &out, unsigned reps, unsigned mode,
                 unsigned *signature, unsigned *status);

#endif  // BNN_TOP_HPP
