// bnn_words_to_beats: engine words in, DMA beats out (docs/ACCEL.md "Streams").
//
// A WORD_BITS-bit engine word leaves as BEATS_PER_WORD = ceil(WORD_BITS /
// BEAT_BITS) consecutive beats of BEAT_BITS, lowest bits in the first beat;
// the bits above the word in its last beat are zero, TKEEP is all ones on
// every beat, and TLAST is set on the last beat of a word that carried TLAST
// (on no other beat).
//
// No storage: beat b of the word on s_axis is driven combinationally, and the
// word is taken (s_axis_tready) with its last beat, so the producer's word
// must stay stable while it is valid (AXI-Stream requires it). m_axis_tvalid
// does not depend on m_axis_tready.
//
// Reset: rst is synchronous and active-high; it clears the beat index.

module bnn_words_to_beats #(
    parameter BEAT_BITS = 32,   // TDATA width of the DMA side, a multiple of 8
    parameter WORD_BITS = 20    // engine word width
) (
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire                   clk,        // unused with one beat per word
    input  wire                   rst,
    /* verilator lint_on UNUSEDSIGNAL */

    // words in (engine side)
    input  wire [WORD_BITS-1:0]   s_axis_tdata,
    input  wire                   s_axis_tvalid,
    output wire                   s_axis_tready,
    input  wire                   s_axis_tlast,

    // beats out (DMA side)
    output wire [BEAT_BITS-1:0]   m_axis_tdata,
    output wire [BEAT_BITS/8-1:0] m_axis_tkeep,
    output wire                   m_axis_tvalid,
    input  wire                   m_axis_tready,
    output wire                   m_axis_tlast
);

    localparam BEATS_PER_WORD = (WORD_BITS + BEAT_BITS - 1) / BEAT_BITS;
    localparam PADDED_BITS    = BEATS_PER_WORD * BEAT_BITS;

    wire [PADDED_BITS-1:0] padded;
    generate
        if (PADDED_BITS > WORD_BITS) begin : g_pad
            assign padded = {{(PADDED_BITS-WORD_BITS){1'b0}}, s_axis_tdata};
        end else begin : g_no_pad
            assign padded = s_axis_tdata;
        end
    endgenerate

    assign m_axis_tkeep  = {(BEAT_BITS/8){1'b1}};
    assign m_axis_tvalid = s_axis_tvalid;

    generate
        if (BEATS_PER_WORD == 1) begin : g_one
            assign m_axis_tdata  = padded;
            assign s_axis_tready = m_axis_tready;
            assign m_axis_tlast  = s_axis_tlast;
        end else begin : g_many
            localparam BW = $clog2(BEATS_PER_WORD);
            localparam LAST_I = BEATS_PER_WORD - 1;
            localparam [BW-1:0] LAST = LAST_I[BW-1:0];
            localparam [BW-1:0] ONE  = 1;

            reg  [BW-1:0] beat_q;
            wire          last_beat = (beat_q == LAST);

            always @(posedge clk) begin
                if (rst)
                    beat_q <= {BW{1'b0}};
                else if (s_axis_tvalid & m_axis_tready)
                    beat_q <= last_beat ? {BW{1'b0}} : beat_q + ONE;
            end

            // beat mux: chunk b of the padded word
            wire [BEAT_BITS-1:0] chunk [0:BEATS_PER_WORD-1];
            genvar b;
            for (b = 0; b < BEATS_PER_WORD; b = b + 1) begin : g_chunk
                assign chunk[b] = padded[b*BEAT_BITS +: BEAT_BITS];
            end

            assign m_axis_tdata  = chunk[beat_q];
            assign s_axis_tready = m_axis_tready & last_beat;
            assign m_axis_tlast  = s_axis_tlast & last_beat;
        end
    endgenerate

endmodule
