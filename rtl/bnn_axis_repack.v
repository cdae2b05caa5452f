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
//
// Structure: each bank is IN_WORDS registers of one input word, each with its
// own write enable (write index == its word number), and the output word is
// read from an array of the bank's output words. Why not an indexed
// part-select write (bank[widx*IN_W +: IN_W] <= ...): yosys builds it as a
// shifter and mask across the whole bank (and a multiplier for widths that are
// not powers of two) instead of one clock enable per word -- 4,702 instead of
// 853 LUT for a 32 -> 64 element, 1,024-bit repacker (yosys 0.23
// synth_xilinx -family xc7), same behaviour.

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

    // data banks (not reset): word i of a bank is written when the write index is i
    wire [VEC_W-1:0] bank0, bank1;
    genvar i;
    generate
    for (i = 0; i < IN_WORDS; i = i + 1) begin : g_word
        localparam integer I_INT = i;
        localparam [IW_CW-1:0] IDX = I_INT[IW_CW-1:0];
        reg  [IN_W-1:0] word0_q, word1_q;
        wire            wr = s_fire & (widx_q == IDX);
        always @(posedge clk) begin
            if (wr & ~wsel_q)
                word0_q <= s_axis_tdata;
            if (wr & wsel_q)
                word1_q <= s_axis_tdata;
        end
        assign bank0[i*IN_W +: IN_W] = word0_q;
        assign bank1[i*IN_W +: IN_W] = word1_q;
    end
    endgenerate

    always @(posedge clk) begin
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

    // each bank zero-padded to ELEMS_PAD elements and cut into output words;
    // the output word is picked from both banks' arrays by ridx, then by bank
    wire [PAD_W-1:0] rpad0, rpad1;
    generate
    if (PAD_W > VEC_W) begin : g_pad
        assign rpad0 = {{(PAD_W-VEC_W){1'b0}}, bank0};
        assign rpad1 = {{(PAD_W-VEC_W){1'b0}}, bank1};
    end else begin : g_nopad
        assign rpad0 = bank0;
        assign rpad1 = bank1;
    end
    endgenerate

    reg [OUT_W-1:0] rword0 [0:OUT_WORDS-1];
    reg [OUT_W-1:0] rword1 [0:OUT_WORDS-1];
    integer k;
    always @* begin
        for (k = 0; k < OUT_WORDS; k = k + 1) begin
            rword0[k] = rpad0[k*OUT_W +: OUT_W];
            rword1[k] = rpad1[k*OUT_W +: OUT_W];
        end
    end

    assign s_axis_tready = ~w_full;
    assign m_axis_tvalid = r_full;
    assign m_axis_tdata  = rsel_q ? rword1[ridx_q] : rword0[ridx_q];
    assign m_axis_tlast  = (rsel_q ? last1_q : last0_q) & (ridx_q == OW_LAST);

endmodule
