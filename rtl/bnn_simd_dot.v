// bnn_simd_dot: the SIMD-lane dot product of one processing element.
//
// Combinational. Lane j of the input word is element x[j*INPUT_BITS +: INPUT_BITS]
// (unsigned), lane j of the weight word is the K = WEIGHT_BITS-bit code
// w[j*K +: K], as in docs/ARTIFACT.md:
//   WEIGHT_SIGNED = 0 ("sym"): value = 2q - (2^K - 1) (K = 1: bit 1 = +1, bit 0 = -1);
//   WEIGHT_SIGNED = 1 ("int"): value = q as K-bit two's complement (K >= 2; the
//                              code -2^(K-1) never occurs, the artifact refuses it).
//   XNOR = 1:                dot = popcount(XNOR(x, w)) over the SIMD lanes
//                            (INPUT_BITS = 1, K = 1 sym).
//   XNOR = 0, K = 1 (sym):   dot = sum_j (w[j] ? +x_j : -x_j)   (add/subtract lanes)
//   XNOR = 0, K > 1:         dot = sum_j x_j * value_j           (one product per lane)
// The result is a two's-complement number of DOT_BITS bits (always >= 0 for
// XNOR); the caller sizes DOT_BITS from the bound
//   |dot| <= SIMD * (2^INPUT_BITS - 1) * wmax,  wmax = 2^K - 1 (sym), 2^(K-1) - 1 (int),
// and the sums below are exact modulo 2^DOT_BITS, so any DOT_BITS that holds
// that bound gives the exact dot product.
// No clock, no reset: the caller registers the result.

module bnn_simd_dot #(
    parameter SIMD          = 8,   // lanes
    parameter INPUT_BITS    = 1,   // bits per unsigned input element
    parameter XNOR          = 1,   // 1: XNOR-popcount, 0: unsigned integer times weight value
    parameter WEIGHT_BITS   = 1,   // K: bits per weight code (1 for XNOR)
    parameter WEIGHT_SIGNED = 0,   // 0: sym code (2q - (2^K-1)), 1: narrow two's complement (K >= 2)
    parameter DOT_BITS      = 5    // signed result width; must hold +-SIMD*(2^INPUT_BITS-1)*wmax
) (
    input  wire [SIMD*INPUT_BITS-1:0]  x,
    input  wire [SIMD*WEIGHT_BITS-1:0] w,
    output reg  [DOT_BITS-1:0]         dot
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
        end else if (WEIGHT_BITS == 1) begin : g_int
            // K = 1 sym: +x or -x per lane, no multiplier
            reg [DOT_BITS-1:0] lane;
            always @* begin
                dot = {DOT_BITS{1'b0}};
                for (j = 0; j < SIMD; j = j + 1) begin
                    lane = {{(DOT_BITS-INPUT_BITS){1'b0}}, x[j*INPUT_BITS +: INPUT_BITS]};
                    dot = w[j] ? dot + lane : dot - lane;
                end
            end
        end else begin : g_mul
            // decoded weight value: sym needs K+1 bits (|value| <= 2^K - 1), int K bits (|value| <= 2^(K-1) - 1)
            localparam WV_BITS   = (WEIGHT_SIGNED != 0) ? WEIGHT_BITS : WEIGHT_BITS + 1;
            // one lane product: |x * value| <= (2^INPUT_BITS - 1) * (2^(WV_BITS-1) - 1) < 2^(INPUT_BITS+WV_BITS-1)
            localparam PROD_BITS = INPUT_BITS + WV_BITS;
            // products are formed at the wider of the two widths, then summed modulo 2^DOT_BITS
            localparam MUL_BITS  = (PROD_BITS > DOT_BITS) ? PROD_BITS : DOT_BITS;
            wire [SIMD*DOT_BITS-1:0] prods;   // lane j's product, low DOT_BITS bits, at [j*DOT_BITS +: DOT_BITS]
            genvar g;
            for (g = 0; g < SIMD; g = g + 1) begin : g_lane
                wire        [WEIGHT_BITS-1:0] q  = w[g*WEIGHT_BITS +: WEIGHT_BITS];
                wire signed [INPUT_BITS:0]    xs = {1'b0, x[g*INPUT_BITS +: INPUT_BITS]};
                wire signed [WV_BITS-1:0]     wv;
                if (WEIGHT_SIGNED != 0) begin : g_int_code
                    assign wv = q;
                end else begin : g_sym_code
                    // 2q + 1 - 2^K as a (K+1)-bit number: {q, 1} with its top bit flipped
                    assign wv = {~q[WEIGHT_BITS-1], q[WEIGHT_BITS-2:0], 1'b1};
                end
                /* verilator lint_off UNUSEDSIGNAL */
                wire signed [MUL_BITS-1:0]    prod = xs * wv;   // bits above DOT_BITS carry no information
                /* verilator lint_on UNUSEDSIGNAL */
                assign prods[g*DOT_BITS +: DOT_BITS] = prod[DOT_BITS-1:0];
            end
            always @* begin
                dot = {DOT_BITS{1'b0}};
                for (j = 0; j < SIMD; j = j + 1)
                    dot = dot + prods[j*DOT_BITS +: DOT_BITS];
            end
        end
    endgenerate

endmodule
