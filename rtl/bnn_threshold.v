// bnn_threshold: one neuron's threshold compare (combinational).
//
// y = (acc >= thr), both two's complement. acc is ACC_W bits, thr is
// THRESHOLD_BITS bits; both are sign-extended to a common width first, so any
// widths work. This is the folded BatchNorm + sign of docs/ARTIFACT.md (every
// compare is ">=": negative-gamma neurons were negated at export).

module bnn_threshold #(
    parameter ACC_W          = 8,  // accumulator width (two's complement)
    parameter THRESHOLD_BITS = 8   // threshold width (two's complement)
) (
    input  wire [ACC_W-1:0]          acc,
    input  wire [THRESHOLD_BITS-1:0] thr,
    output wire                      y
);

    localparam CMP_W = (ACC_W > THRESHOLD_BITS ? ACC_W : THRESHOLD_BITS) + 1;

    wire signed [CMP_W-1:0] acc_x = {{(CMP_W-ACC_W){acc[ACC_W-1]}}, acc};
    wire signed [CMP_W-1:0] thr_x = {{(CMP_W-THRESHOLD_BITS){thr[THRESHOLD_BITS-1]}}, thr};

    assign y = (acc_x >= thr_x);

endmodule
