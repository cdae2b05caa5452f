// bnn_axis_repack: AXI-Stream width converter and zero padder between layers.
//
// Input: vectors of ELEMS elements of ELEM_BITS, IN_ELEMS elements per word
// (a producing layer's output stream: element p of word k is element
// k*IN_ELEMS + p), ELEMS/IN_ELEMS words per vector.
// Output: the same vector padded with zero elements to ELEMS_PAD elements,
// OUT_ELEMS elements per word (a consuming layer's input stream: element j of
// word k is element k*OUT_ELEMS + j), ELEMS_PAD/OUT_ELEMS words per vector.
// TLAST: the last output word of a vector carries TLAST exactly when the last
// input word of that vector did (docs/ARTIFACT.md "Streams").
//
// Double-buffered: one bank fills while the other drains, so a vector costs
// max(ELEMS/IN_ELEMS, ELEMS_PAD/OUT_ELEMS) cycles in steady state and the
// repacker never limits a layer pipeline. It buffers even when the widths
// agree: a consumer with NF > 1 reads its input only during neuron fold 0, in
// a burst of SF words, while its producer emits one word per SF_prev cycles;
// without a whole vector in hand the consumer's fold 0 would stretch to the
// producer's pace (seen as 797 instead of 512 cycles/image on BNN-PYNQ's LFC).
// tready/tvalid are driven from registers only (no combinational path
// between the two sides).
//
// Reset: rst is synchronous and active-high; it clears the control state
// (bank flags, indices), not the data banks.

module bnn_axis_repack #(
    parameter IN_ELEMS  = 4,    // elements per input word (the producer's PE)
    parameter OUT_ELEMS = 8,    // elements per output word (the consumer's SIMD)
    parameter ELEM_BITS = 1,    // bits per element
    parameter ELEMS     = 64,   // elements per vector; a multiple of IN_ELEMS
    parameter ELEMS_PAD = 64    // padded elements per vector; >= ELEMS, a multiple of OUT_ELEMS
) (
    input  wire                           clk,
    input  wire                           rst,

    // input: producer words
    input  wire [IN_ELEMS*ELEM_BITS-1:0]  s_axis_tdata,
    input  wire                           s_axis_tvalid,
    output wire                           s_axis_tready,
    input  wire                           s_axis_tlast,

    // output: consumer words
    output wire [OUT_ELEMS*ELEM_BITS-1:0] m_axis_tdata,
    output wire                           m_axis_tvalid,
    input  wire                           m_axis_tready,
    output wire                           m_axis_tlast
);

    localparam IN_W      = IN_ELEMS * ELEM_BITS;
    localparam OUT_W     = OUT_ELEMS * ELEM_BITS;
    localparam VEC_W     = ELEMS * ELEM_BITS;
    localparam PAD_W     = ELEMS_PAD * ELEM_BITS;
    localparam IN_WORDS  = ELEMS / IN_ELEMS;
    localparam OUT_WORDS = ELEMS_PAD / OUT_ELEMS;

    localparam IW_CW = (IN_WORDS > 1) ? $clog2(IN_WORDS) : 1;
    localparam OW_CW = (OUT_WORDS > 1) ? $clog2(OUT_WORDS) : 1;
    localparam IW_LAST_I = IN_WORDS - 1;
    localparam OW_LAST_I = OUT_WORDS - 1;
    localparam [IW_CW-1:0] IW_LAST = IW_LAST_I[IW_CW-1:0];
    localparam [OW_CW-1:0] OW_LAST = OW_LAST_I[OW_CW-1:0];
    localparam [IW_CW-1:0] IW_ONE  = 1;
    localparam [OW_CW-1:0] OW_ONE  = 1;

    reg  [VEC_W-1:0] bank0_q, bank1_q;   // data banks (not reset)
    reg              last0_q, last1_q;   // TLAST of each bank's vector
    reg              full0_q, full1_q;   // bank holds a complete vector
    reg              wsel_q, rsel_q;     // bank being filled / drained
    reg  [IW_CW-1:0] widx_q;             // next input word of the vector
    reg  [OW_CW-1:0] ridx_q;             // next output word of the vector

    wire w_full = wsel_q ? full1_q : full0_q;
    wire r_full = rsel_q ? full1_q : full0_q;
    wire s_fire = s_axis_tvalid & ~w_full;
    wire m_fire = m_axis_tready & r_full;
    wire w_done = s_fire & (widx_q == IW_LAST);
    wire r_done = m_fire & (ridx_q == OW_LAST);

    always @(posedge clk) begin
        if (s_fire & ~wsel_q)
            bank0_q[widx_q*IN_W +: IN_W] <= s_axis_tdata;
        if (s_fire & wsel_q)
            bank1_q[widx_q*IN_W +: IN_W] <= s_axis_tdata;
        if (w_done & ~wsel_q)
            last0_q <= s_axis_tlast;
        if (w_done & wsel_q)
            last1_q <= s_axis_tlast;
    end

    always @(posedge clk) begin
        if (rst) begin
            full0_q <= 1'b0;
            full1_q <= 1'b0;
            wsel_q  <= 1'b0;
            rsel_q  <= 1'b0;
            widx_q  <= {IW_CW{1'b0}};
            ridx_q  <= {OW_CW{1'b0}};
        end else begin
            if (s_fire)
                widx_q <= (widx_q == IW_LAST) ? {IW_CW{1'b0}} : widx_q + IW_ONE;
            if (m_fire)
                ridx_q <= (ridx_q == OW_LAST) ? {OW_CW{1'b0}} : ridx_q + OW_ONE;
            if (w_done)
                wsel_q <= ~wsel_q;
            if (r_done)
                rsel_q <= ~rsel_q;
            // a bank is never filled and drained in the same cycle
            if ((w_done & ~wsel_q) | (r_done & ~rsel_q))
                full0_q <= w_done & ~wsel_q;
            if ((w_done & wsel_q) | (r_done & rsel_q))
                full1_q <= w_done & wsel_q;
        end
    end

    wire [VEC_W-1:0] rvec = rsel_q ? bank1_q : bank0_q;
    wire [PAD_W-1:0] rpad;
    generate
    if (PAD_W > VEC_W) begin : g_pad
        assign rpad = {{(PAD_W-VEC_W){1'b0}}, rvec};
    end else begin : g_nopad
        assign rpad = rvec;
    end
    endgenerate

    assign s_axis_tready = ~w_full;
    assign m_axis_tvalid = r_full;
    assign m_axis_tdata  = rpad[ridx_q*OUT_W +: OUT_W];
    assign m_axis_tlast  = (rsel_q ? last1_q : last0_q) & (ridx_q == OW_LAST);

endmodule
