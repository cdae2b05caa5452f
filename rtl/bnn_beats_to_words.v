// bnn_beats_to_words: DMA beats in, engine words out (docs/ACCEL.md "Streams").
//
// A WORD_BITS-bit engine word arrives as BEATS_PER_WORD = ceil(WORD_BITS /
// BEAT_BITS) consecutive beats of BEAT_BITS, lowest bits in the first beat.
// The bits of the last beat above the word (bits [LAST_BITS, BEAT_BITS),
// LAST_BITS = WORD_BITS - (BEATS_PER_WORD-1)*BEAT_BITS) are padding: they are
// dropped, and a nonzero padding bit, or any TKEEP bit clear on any beat, sets
// the sticky flag err (the word is still passed on). err_clear clears err
// (a clear wins over a bad beat in the same cycle; the run controller clears
// at the start of a run, when no beat can arrive).
// TLAST: the word carries the TLAST of its last beat; TLAST on the other beats
// of a word is ignored.
//
// No extra latency and no bubbles: beats 0..BEATS_PER_WORD-2 are held in a
// register, the last beat is combined with them combinationally, so the word
// is valid while the last beat is and a word per BEATS_PER_WORD beats flows at
// full rate. With one beat per word the module is wires plus the check.
// m_axis_tvalid does not depend on m_axis_tready; s_axis_tready does
// (combinationally, on the last beat of a word).
//
// Reset: rst is synchronous and active-high; it clears the beat index and err.

module bnn_beats_to_words #(
    parameter BEAT_BITS = 32,   // TDATA width of the DMA side, a multiple of 8
    parameter WORD_BITS = 20    // engine word width
) (
    input  wire                   clk,
    input  wire                   rst,

    // beats in (DMA side)
    input  wire [BEAT_BITS-1:0]   s_axis_tdata,
    input  wire [BEAT_BITS/8-1:0] s_axis_tkeep,
    input  wire                   s_axis_tvalid,
    output wire                   s_axis_tready,
    input  wire                   s_axis_tlast,

    // words out (engine side)
    output wire [WORD_BITS-1:0]   m_axis_tdata,
    output wire                   m_axis_tvalid,
    input  wire                   m_axis_tready,
    output wire                   m_axis_tlast,

    // sticky format error
    input  wire                   err_clear,
    output wire                   err
);

    localparam BEATS_PER_WORD = (WORD_BITS + BEAT_BITS - 1) / BEAT_BITS;
    localparam LAST_BITS      = WORD_BITS - (BEATS_PER_WORD - 1) * BEAT_BITS;   // 1..BEAT_BITS

    wire last_beat;                 // the beat on s_axis is its word's last
    wire s_fire = s_axis_tvalid & s_axis_tready;

    // padding bits of the last beat
    wire pad_bad;
    generate
        if (LAST_BITS < BEAT_BITS) begin : g_pad
            assign pad_bad = |s_axis_tdata[BEAT_BITS-1:LAST_BITS];
        end else begin : g_no_pad
            assign pad_bad = 1'b0;
        end
    endgenerate

    reg err_q;
    always @(posedge clk) begin
        if (rst | err_clear)
            err_q <= 1'b0;
        else if (s_fire & (~&s_axis_tkeep | (last_beat & pad_bad)))
            err_q <= 1'b1;
    end
    assign err = err_q;

    generate
        if (BEATS_PER_WORD == 1) begin : g_one
            assign last_beat     = 1'b1;
            assign m_axis_tdata  = s_axis_tdata[WORD_BITS-1:0];
            assign m_axis_tvalid = s_axis_tvalid;
            assign s_axis_tready = m_axis_tready;
            assign m_axis_tlast  = s_axis_tlast;
        end else begin : g_many
            localparam BW = $clog2(BEATS_PER_WORD);
            localparam LAST_I = BEATS_PER_WORD - 1;
            localparam [BW-1:0] LAST = LAST_I[BW-1:0];
            localparam [BW-1:0] ONE  = 1;

            reg [BW-1:0]                        beat_q;
            reg [(BEATS_PER_WORD-1)*BEAT_BITS-1:0] held_q;   // beats 0..BEATS_PER_WORD-2 of the word

            assign last_beat = (beat_q == LAST);

            always @(posedge clk) begin
                if (rst)
                    beat_q <= {BW{1'b0}};
                else if (s_fire)
                    beat_q <= last_beat ? {BW{1'b0}} : beat_q + ONE;
            end

            genvar b;
            for (b = 0; b < BEATS_PER_WORD - 1; b = b + 1) begin : g_hold
                localparam integer  BI  = b;
                localparam [BW-1:0] IDX = BI[BW-1:0];
                always @(posedge clk) begin
                    if (s_fire & (beat_q == IDX))
                        held_q[b*BEAT_BITS +: BEAT_BITS] <= s_axis_tdata;
                end
            end

            assign m_axis_tdata  = {s_axis_tdata[LAST_BITS-1:0], held_q};
            assign m_axis_tvalid = s_axis_tvalid & last_beat;
            assign s_axis_tready = ~last_beat | m_axis_tready;
            assign m_axis_tlast  = s_axis_tlast;
        end
    endgenerate

endmodule
