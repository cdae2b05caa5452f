// bnn_simd_dot: the SIMD-lane dot product of one processing element.
//
// Combinational. Lane j of the input word is element x[j*INPUT_BITS +: INPUT_BITS],
// lane j of the weight word is w[j] (+1 = bit 1, -1 = bit 0), as in
// docs/ARTIFACT.md.
//   XNOR = 1: dot = popcount(XNOR(x, w)) over the SIMD lanes (INPUT_BITS must be 1).
//   XNOR = 0: dot = sum_j (w[j] ? +x_j : -x_j) with x_j unsigned (signed result).
// The result is a two's-complement number of DOT_BITS bits (always >= 0 for XNOR).
// No clock, no reset: the caller registers the result.

module bnn_simd_dot #(
    parameter SIMD       = 8,   // lanes
    parameter INPUT_BITS = 1,   // bits per unsigned input element
    parameter XNOR       = 1,   // 1: XNOR-popcount, 0: unsigned integer times +-1
    parameter DOT_BITS   = 5    // signed result width; must hold +-SIMD*(2^INPUT_BITS-1)
) (
    input  wire [SIMD*INPUT_BITS-1:0] x,
    input  wire [SIMD-1:0]            w,
    output reg  [DOT_BITS-1:0]        dot
);

    integer j;

    generate
        if (XNOR != 0) begin : g_xnor
            wire [SIMD-1:0] match = ~(x ^ w);
            always @* begin
                dot = {DOT_BITS{1'b0}};
                for (j = 0; j < SIMD; j = j + 1)
                    dot = dot + {{(DOT_BITS-1){1'b0}}, match[j]};
            end
        end else begin : g_int
            reg [DOT_BITS-1:0] lane;
            always @* begin
                dot = {DOT_BITS{1'b0}};
                for (j = 0; j < SIMD; j = j + 1) begin
                    lane = {{(DOT_BITS-INPUT_BITS){1'b0}}, x[j*INPUT_BITS +: INPUT_BITS]};
                    dot = w[j] ? dot + lane : dot - lane;
                end
            end
        end
    endgenerate

endmodule
