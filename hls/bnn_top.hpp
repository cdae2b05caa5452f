/**
 * \file bnn_top.hpp
 * \brief Declaration of the network top, shared by bnn_top.cpp and the
 *        testbench. The network itself (configuration, weights, thresholds,
 *        the chain of engines) comes from the header bnnflow generates for an
 *        artifact, `<export>/hls/bnnflow_params.h`: put `<export>/hls` on the
 *        include path (docs/HLS.md).
 */
#ifndef BNN_TOP_HPP
#define BNN_TOP_HPP

#include "bnnflow_params.h"

/**
 * \brief The whole network as one AXI4-Stream IP.
 *
 * \param in   input images: SF words of the first layer per image, SIMD
 *             elements of input_bits per word (docs/ARTIFACT.md, "Streams")
 * \param out  scores: NF words of the last layer per image, PE two's-complement
 *             scores per word; TLAST follows the input's TLAST per vector
 * \param reps number of images to process
 */
void bnnflow_top(hls::stream<bnnflow::InBeat> &in, hls::stream<bnnflow::OutBeat> &out, unsigned reps);

#endif  // BNN_TOP_HPP
