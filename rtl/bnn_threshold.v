// bnn_threshold: one neuron's multi-threshold compare bank (combinational).
//
// y = #{t : acc >= thr_t}, t = 0..N_THRESHOLDS-1, an unsigned count of
// OUT_BITS = bit_length(N_THRESHOLDS) bits (N = 1: y = (acc >= thr), 1 bit).
// acc is ACC_W bits, each thr_t THRESHOLD_BITS bits at thr[t*THRESHOLD_BITS
// +: THRESHOLD_BITS], all two's complement; they are sign-extended to a common
// width first, so any widths work. The N compares run in parallel and their
// results are counted, so the result is the golden model's count whatever the
// order of the thresholds (an artifact's are non-decreasing). This is the
// folded BatchNorm + (multi-level) quantizer of docs/ARTIFACT.md (every
// compare is ">=": negative-gamma neurons were negated at export).

module bnn_threshold #(
    parameter ACC_W          = 8,  // accumulator width (two's complement)
    parameter THRESHOLD_BITS = 8,  // threshold width (two's complement)
    parameter N_THRESHOLDS   = 1,  // thresholds per neuron, 1..255
    parameter OUT_BITS       = 1   // output width: bit_length(N_THRESHOLDS) (the count's range 0..N)
) (
    input  wire [ACC_W-1:0]                       acc,
    input  wire [N_THRESHOLDS*THRESHOLD_BITS-1:0] thr,
    output wire [OUT_BITS-1:0]                    y
);

    localparam CMP_W = (ACC_W > THRESHOLD_BITS ? ACC_W : THRESHOLD_BITS) + 1;

    wire signed [CMP_W-1:0] acc_x = {{(CMP_W-ACC_W){acc[ACC_W-1]}}, acc};
    wire [N_THRESHOLDS-1:0] ge;   // ge[t] = (acc >= thr_t)

    genvar t;
    generate
        for (t = 0; t < N_THRESHOLDS; t = t + 1) begin : g_cmp
            wire [THRESHOLD_BITS-1:0] thr_t = thr[t*THRESHOLD_BITS +: THRESHOLD_BITS];
            wire signed [CMP_W-1:0]   thr_x = {{(CMP_W-THRESHOLD_BITS){thr_t[THRESHOLD_BITS-1]}}, thr_t};
            assign ge[t] = (acc_x >= thr_x);
        end
    endgenerate

    generate
        if (N_THRESHOLDS == 1) begin : g_one
            assign y = ge;
        end else begin : g_count
            integer i;
            reg [OUT_BITS-1:0] count;
            always @* begin
                count = {OUT_BITS{1'b0}};
                for (i = 0; i < N_THRESHOLDS; i = i + 1)
                    count = count + {{(OUT_BITS-1){1'b0}}, ge[i]};
            end
            assign y = count;
        end
    endgenerate

endmodule
